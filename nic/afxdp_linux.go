//go:build linux && (amd64 || arm64)

package nic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/xdp"
)

const (
	// xdpFrameSize is one UMEM frame. In copy mode the kernel puts a
	// frame XDP_PACKET_HEADROOM (256) bytes into its UMEM frame, so an
	// MTU of up to 1778 fits.
	xdpFrameSize = 2048
	// xdpFrames is the UMEM's size in frames (8 MiB); the fill ring holds
	// at most half of them, leaving the other half for transmit.
	xdpFrames = 4096
	// xdpRingSize is the size of each of the four rings.
	xdpRingSize = 2048
	// xdpHeadroom is XDP_PACKET_HEADROOM.
	xdpHeadroom = 256

	// xdpProgName names the XDP program, so that bpftool shows whose it is.
	xdpProgName = "synfin_xdp"

	xdpPass = 2 // XDP_PASS

	// xdpBusyWait is how long binding waits for the queue while the
	// kernel still tears down the socket of a crashed predecessor.
	xdpBusyWait = 5 * time.Second
)

// afxdp is a port on an AF_XDP socket bound to queue 0 of the interface,
// fed by an XDP program that redirects the firmware's frames (IPv4 and ARP
// to its MAC or to broadcast) to the socket and passes everything else to
// the kernel.
type afxdp struct {
	ns   netns.NsHandle // the link's network namespace
	link netlink.Link
	mode string // "native" or "generic"
	prog *ebpf.Program
	xsks *ebpf.Map
	flag int // the XDP attach flag of mode
	// partial collects the pieces of a frame that came in several
	// (XDP_USE_SG).
	partial []byte

	file *os.File
	conn syscall.RawConn
	fd   int
	cb   *xdp.ControlBlock

	txMu   sync.Mutex
	closed atomic.Bool
	// kicks wakes the kicker, which has the kernel send what the TX ring
	// holds; done stops it.
	kicks  chan struct{}
	done   chan struct{}
	kicker sync.WaitGroup

	rxFrames, rxBytes            atomic.Uint64
	txFrames, txBytes, completed atomic.Uint64
	kernel                       atomic.Pointer[unix.XDPStatistics]

	closeOnce sync.Once
	closeErr  error
}

// openAFXDP opens an AF_XDP socket on the interface and attaches the XDP
// program that feeds it in mode (see attach). Its error says why AF_XDP
// cannot work here.
func openAFXDP(attrs *netlink.LinkAttrs, mode string) (*afxdp, error) {
	// Transmitted frames must fit one UMEM frame.
	if max := xdpFrameSize - xdpHeadroom - header.EthernetMinimumSize - vlanTagLen; attrs.MTU > max {
		return nil, fmt.Errorf("AF_XDP: MTU %d is larger than the %d its UMEM frames hold", attrs.MTU, max)
	}
	if n := rxQueues(attrs.Name); n > 1 {
		return nil, fmt.Errorf("AF_XDP: the interface has %d receive queues and the driver binds queue 0 only (ethtool -L %s combined 1)", n, attrs.Name)
	}
	// The program is detached at Close, which may run on a thread in
	// another network namespace than this one.
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("AF_XDP: network namespace: %w", err)
	}
	x := &afxdp{ns: ns}
	ok := false
	defer func() {
		if !ok {
			x.release()
		}
	}()
	if x.link, err = netlink.LinkByIndex(attrs.Index); err != nil {
		return nil, fmt.Errorf("AF_XDP: %w", err)
	}

	x.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_XDP: socket (kernel without CONFIG_XDP_SOCKETS?): %w", err)
	}
	x.cb, err = xdp.NewFromSocket(x.fd, uint32(attrs.Index), 0, xdp.Opts{
		NFrames:      xdpFrames,
		FrameSize:    xdpFrameSize,
		NDescriptors: xdpRingSize,
	})
	if err != nil {
		unix.Close(x.fd)
		x.fd = -1
		return nil, fmt.Errorf("AF_XDP: %w", err)
	}
	// Multi-buffer receive (Linux 6.6) takes a frame larger than a UMEM
	// frame in pieces, so that in generic mode a veth peer's TSO
	// super-segments arrive whole, as they do over AF_PACKET. Where the
	// socket cannot take pieces, the program must not accept them either.
	bind := func(flags uint16) error {
		// A socket of a firmware that just crashed holds the queue
		// until the kernel has finished tearing it down, which it does
		// in the background.
		deadline := time.Now().Add(xdpBusyWait)
		for {
			err := unix.Bind(x.fd, &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(attrs.Index)})
			if err != unix.EBUSY || time.Now().After(deadline) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var progFlags uint32
	// Without XDP_USE_NEED_WAKEUP the ring code never makes a system call
	// of its own; the kicker goroutine makes all of them.
	switch err := bind(unix.XDP_USE_SG); err {
	case nil:
		progFlags = unix.BPF_F_XDP_HAS_FRAGS
	case unix.EBUSY:
		return nil, fmt.Errorf("AF_XDP: bind to queue 0: another AF_XDP socket holds it: %w", err)
	default:
		if err := bind(0); err != nil {
			return nil, fmt.Errorf("AF_XDP: bind to queue 0: %w", err)
		}
	}

	x.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "synfin_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("AF_XDP: create XSKMAP (is BPF available?): %w", err)
	}
	x.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         xdpProgName,
		Type:         ebpf.XDP,
		Flags:        progFlags,
		License:      "Dual MIT/GPL",
		Instructions: xdpProgram(attrs.HardwareAddr, x.xsks.FD()),
	})
	if err != nil {
		return nil, fmt.Errorf("AF_XDP: load XDP program: %w", err)
	}
	x.file = os.NewFile(uintptr(x.fd), fmt.Sprintf("afxdp:%d", attrs.Index))
	if x.conn, err = x.file.SyscallConn(); err != nil {
		return nil, fmt.Errorf("AF_XDP: %w", err)
	}
	x.cb.UMEM.Lock()
	x.cb.Fill.FillAll(&x.cb.UMEM)
	x.cb.UMEM.Unlock()
	if err := x.xsks.Put(uint32(0), uint32(x.fd)); err != nil {
		return nil, fmt.Errorf("AF_XDP: register the socket in the XSKMAP: %w", err)
	}

	if err := x.attach(mode); err != nil {
		return nil, err
	}
	x.kicks, x.done = make(chan struct{}, 1), make(chan struct{})
	x.kicker.Add(1)
	go x.runKicker()
	ok = true
	return x, nil
}

// attach attaches the program in mode (an XDPMode): native runs it in the
// NIC driver, generic on socket buffers; auto tries native first, for
// drivers without XDP support fall back on generic.
func (x *afxdp) attach(mode string) error {
	try := func(flag int, name string) error {
		err := netlink.LinkSetXdpFdWithFlags(x.link, x.prog.FD(), flag|unix.XDP_FLAGS_UPDATE_IF_NOEXIST)
		if err == nil {
			x.mode, x.flag = name, flag
		}
		return err
	}
	switch mode {
	case XDPModeNative:
		if err := try(unix.XDP_FLAGS_DRV_MODE, XDPModeNative); err != nil {
			return fmt.Errorf("AF_XDP: attach XDP program in native mode: %w", err)
		}
	case XDPModeGeneric:
		if err := try(unix.XDP_FLAGS_SKB_MODE, XDPModeGeneric); err != nil {
			return fmt.Errorf("AF_XDP: attach XDP program in generic mode: %w", err)
		}
	default:
		if nerr := try(unix.XDP_FLAGS_DRV_MODE, XDPModeNative); nerr != nil {
			if gerr := try(unix.XDP_FLAGS_SKB_MODE, XDPModeGeneric); gerr != nil {
				return fmt.Errorf("AF_XDP: attach XDP program: native mode: %v; generic mode: %w", nerr, gerr)
			}
		}
	}
	return nil
}

// rxQueues counts the interface's receive queues in sysfs; 0 if it cannot
// tell.
func rxQueues(ifname string) int {
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", ifname, "queues", "rx-*"))
	return len(m)
}

// xdpProgram builds the XDP program: an IPv4 or ARP frame addressed to mac
// or to broadcast goes to the socket in slot rx_queue_index of the XSKMAP
// with file descriptor xsks; every other frame, and every frame while the
// slot is empty, passes to the kernel.
func xdpProgram(mac []byte, xsks int) asm.Instructions {
	// Loads from the packet are in host byte order; so are the constants.
	macHead := int64(binary.NativeEndian.Uint32(mac[0:4]))
	macTail := int32(binary.NativeEndian.Uint16(mac[4:6]))
	ipv4 := int32(binary.NativeEndian.Uint16([]byte{0x08, 0x00}))
	arp := int32(binary.NativeEndian.Uint16([]byte{0x08, 0x06}))
	return asm.Instructions{
		// r2 = data, r3 = data_end (struct xdp_md)
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, header.EthernetMinimumSize),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JEq.Imm(asm.R5, ipv4, "dst"),
		asm.JNE.Imm(asm.R5, arp, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 0, asm.Word).WithSymbol("dst"),
		asm.LoadMem(asm.R6, asm.R2, 4, asm.Half),
		asm.LoadImm(asm.R7, macHead, asm.DWord),
		asm.JNE.Reg(asm.R5, asm.R7, "broadcast"),
		asm.JEq.Imm(asm.R6, macTail, "redirect"),
		asm.LoadImm(asm.R7, 0xffffffff, asm.DWord).WithSymbol("broadcast"),
		asm.JNE.Reg(asm.R5, asm.R7, "pass"),
		asm.JNE.Imm(asm.R6, 0xffff, "pass"),
		// bpf_redirect_map(xsks, ctx->rx_queue_index, XDP_PASS)
		asm.LoadMem(asm.R2, asm.R1, 16, asm.Word).WithSymbol("redirect"),
		asm.LoadMapPtr(asm.R1, xsks),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
}

// run takes received frames off the RX ring until the socket is closed,
// returning their UMEM frames to the fill ring after each batch.
func (x *afxdp) run(rx func([]byte), _, batchEnd func()) {
	for {
		var n, idx uint32
		err := x.conn.Read(func(uintptr) bool {
			n, idx = x.cb.RX.Peek()
			return n > 0
		})
		if err != nil {
			// The poller fails only once the socket is closed.
			return
		}
		for i := range n {
			desc := x.cb.RX.Get(idx + i)
			frame := x.cb.UMEM.Get(desc)
			if desc.Options&unix.XDP_PKT_CONTD != 0 || len(x.partial) > 0 {
				x.partial = append(x.partial, frame...)
				if desc.Options&unix.XDP_PKT_CONTD != 0 {
					continue
				}
				frame = x.partial
			}
			x.rxFrames.Add(1)
			x.rxBytes.Add(uint64(len(frame)))
			fixPartialChecksum(frame)
			rx(frame)
			x.partial = x.partial[:0]
		}
		x.cb.UMEM.Lock()
		for i := range n {
			x.cb.UMEM.FreeFrame(x.cb.RX.Get(idx + i).Addr)
		}
		x.cb.RX.Release(n)
		x.cb.Fill.FillAll(&x.cb.UMEM)
		x.cb.UMEM.Unlock()
		batchEnd()
	}
}

// write copies pkts into UMEM frames, puts them on the TX ring and kicks
// the kernel, waiting while ring or UMEM are full.
func (x *afxdp) write(pkts []*stack.PacketBuffer) (int, tcpip.Error) {
	x.txMu.Lock()
	defer x.txMu.Unlock()
	sent := 0
	for idle := 0; sent < len(pkts); {
		if x.closed.Load() {
			return sent, &tcpip.ErrClosedForSend{}
		}
		// The run of packets that fit a frame.
		want := 0
		for _, pkt := range pkts[sent:] {
			if pkt.Size() > xdpFrameSize {
				break
			}
			want++
		}
		if want == 0 {
			return sent, &tcpip.ErrMessageTooLong{}
		}
		x.cb.UMEM.Lock()
		x.reapCompletions()
		var n, idx uint32
		for w := uint32(want); w > 0 && n == 0; w /= 2 {
			n, idx = x.cb.TX.Reserve(&x.cb.UMEM, w)
		}
		for i := range n {
			pkt := pkts[sent+int(i)]
			desc := unix.XDPDesc{Addr: x.cb.UMEM.AllocFrame(), Len: uint32(pkt.Size())}
			buf := x.cb.UMEM.Get(desc)
			vl, off := pkt.AsViewList()
			for v := vl.Front(); v != nil; v = v.Next() {
				b := v.AsSlice()
				if off >= len(b) {
					off -= len(b)
					continue
				}
				buf = buf[copy(buf, b[off:]):]
				off = 0
			}
			x.cb.TX.Set(idx+i, desc)
			x.txBytes.Add(uint64(desc.Len))
		}
		x.cb.UMEM.Unlock()
		if n > 0 {
			x.cb.TX.Notify()
			x.txFrames.Add(uint64(n))
			sent += int(n)
			idle = 0
		}
		select {
		case x.kicks <- struct{}{}:
		default:
		}
		if n == 0 {
			// Ring or UMEM full: the kernel frees frames as the copies
			// it made leave; give it a moment.
			idle++
			if idle < 4 {
				runtime.Gosched()
			} else {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	return sent, nil
}

// runKicker kicks the kernel whenever write asks for it. Writers do not
// make the system call themselves: while the kicker is in it, further
// frames pile up on the ring and go out with the next kick.
func (x *afxdp) runKicker() {
	defer x.kicker.Done()
	for {
		select {
		case <-x.kicks:
			x.kick()
		case <-x.done:
			return
		}
	}
}

// kick makes the kernel work through the TX ring. In copy mode it sends
// only a batch of frames per call and answers EAGAIN while more remain.
func (x *afxdp) kick() {
	for range xdpRingSize / 32 {
		var err error
		cerr := x.conn.Write(func(fd uintptr) bool {
			err = unix.Sendto(int(fd), nil, unix.MSG_DONTWAIT, nil)
			return true
		})
		if cerr != nil || err != unix.EAGAIN {
			return
		}
		x.cb.UMEM.Lock()
		x.reapCompletions()
		x.cb.UMEM.Unlock()
	}
}

// reapCompletions returns the frames the kernel has finished sending to
// the UMEM. The UMEM must be locked.
func (x *afxdp) reapCompletions() {
	n, idx := x.cb.Completion.Peek()
	for i := range n {
		x.cb.UMEM.FreeFrame(x.cb.Completion.Get(idx + i))
	}
	x.cb.Completion.Release(n)
	x.completed.Add(uint64(n))
}

// rings returns the counters of the four rings with the kernel's view of
// what it dropped.
func (x *afxdp) rings() []RingStats {
	_ = x.conn.Control(func(fd uintptr) {
		var st unix.XDPStatistics
		if err := getXDPStatistics(int(fd), &st); err == nil {
			x.kernel.Store(&st)
		}
	})
	var k unix.XDPStatistics
	if p := x.kernel.Load(); p != nil {
		k = *p
	}
	return []RingStats{
		{Name: "rx", Direction: "rx", Frames: x.rxFrames.Load(), Bytes: x.rxBytes.Load(), Drops: k.Rx_dropped + k.Rx_invalid_descs + k.Rx_ring_full},
		{Name: "fill", Direction: "rx", Drops: k.Rx_fill_ring_empty_descs},
		{Name: "tx", Direction: "tx", Frames: x.txFrames.Load(), Bytes: x.txBytes.Load(), Drops: k.Tx_invalid_descs},
		{Name: "completion", Direction: "tx", Frames: x.completed.Load()},
	}
}

// close detaches the XDP program, so that the kernel has the link's
// traffic back, and closes the socket, which stops the reader.
func (x *afxdp) close() error {
	x.closeOnce.Do(func() {
		x.closed.Store(true)
		close(x.done)
		x.kicker.Wait()
		x.closeErr = x.release()
	})
	return x.closeErr
}

// release undoes what openAFXDP did, in reverse.
func (x *afxdp) release() error {
	var errs []error
	if x.mode != "" {
		err := inNetns(x.ns, func() error { return netlink.LinkSetXdpFdWithFlags(x.link, -1, x.flag) })
		if err != nil {
			errs = append(errs, fmt.Errorf("detach XDP program: %w", err))
		}
	}
	if x.file != nil {
		errs = append(errs, x.file.Close())
	} else if x.fd > 0 {
		errs = append(errs, unix.Close(x.fd))
	}
	if x.prog != nil {
		errs = append(errs, x.prog.Close())
	}
	if x.xsks != nil {
		errs = append(errs, x.xsks.Close())
	}
	x.ns.Close()
	return errors.Join(errs...)
}

// inNetns runs fn on an OS thread switched into the network namespace ns.
func inNetns(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime then retires it instead of
		// reusing a thread stuck in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("leave network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}
