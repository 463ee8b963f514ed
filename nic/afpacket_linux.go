//go:build linux

package nic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const (
	// vlanTagLen is the size of an 802.1Q tag the kernel may leave in a
	// frame.
	vlanTagLen = 4

	// maxDatagram bounds what one read returns: the virtio-net header and
	// a frame. Frames can be far larger than the MTU: a veth peer's TCP
	// hands over whole TSO super-segments, and GRO merges received ones,
	// each up to a 64 KiB IP packet.
	maxDatagram = vnetHdrLen + header.EthernetMinimumSize + vlanTagLen + 1<<16

	// rcvBufSize is the socket receive buffer. The kernel charges each
	// queued frame at its full size, so the default (about 200 KiB) holds
	// only a few super-segments before it starts dropping.
	rcvBufSize = 4 << 20
)

// endpoint is an ethernet stack.LinkEndpoint over an AF_PACKET socket bound
// to one interface. One goroutine reads frames and delivers them to the
// stack; writes go straight to the socket from the caller's goroutine.
type endpoint struct {
	file *os.File        // the socket, registered with Go's poller
	conn syscall.RawConn // file's raw access
	mtu  atomic.Uint32

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
	linkAddr   tcpip.LinkAddress
	onClose    func()

	closeOnce sync.Once
	closeErr  error
	reader    sync.WaitGroup

	rxFrames, rxBytes, rxDrops  atomic.Uint64
	txFrames, txBytes, txErrors atomic.Uint64
}

var _ stack.LinkEndpoint = (*endpoint)(nil)

// openAFPacket opens a socket on the interface with index ifindex and starts
// reading from it.
func openAFPacket(ifindex int, mac net.HardwareAddr, mtu uint32) (*endpoint, error) {
	// Protocol 0 receives nothing until bind, so no frame of another
	// interface slips in before the socket is bound to ours.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := configureSocket(fd, ifindex); err != nil {
		unix.Close(fd)
		return nil, err
	}
	file := os.NewFile(uintptr(fd), fmt.Sprintf("afpacket:%d", ifindex))
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	e := &endpoint{file: file, conn: conn, linkAddr: tcpip.LinkAddress(mac)}
	e.mtu.Store(mtu)
	e.reader.Add(1)
	go e.readLoop()
	return e, nil
}

func configureSocket(fd, ifindex int) error {
	// The virtio-net header is how the kernel says that a frame's TCP or
	// UDP checksum is unfinished and where it lies; see completeChecksum.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fmt.Errorf("set PACKET_VNET_HDR: %w", err)
	}
	// Our own transmissions would otherwise come back to us. Kernels older
	// than 4.20 lack the option; readLoop filters those frames anyway.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	// SO_RCVBUFFORCE passes the rmem_max limit but needs CAP_NET_ADMIN;
	// without it take what SO_RCVBUF grants.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufSize)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind AF_PACKET socket: %w", err)
	}
	return nil
}

// htons converts a 16-bit value to network byte order, as sockaddr_ll wants
// its protocol.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// readLoop reads frames until the endpoint closes.
func (e *endpoint) readLoop() {
	defer e.reader.Done()
	buf := make([]byte, maxDatagram)
	for {
		var (
			n, flags int
			from     unix.Sockaddr
			rerr     error
		)
		err := e.conn.Read(func(fd uintptr) bool {
			n, _, flags, from, rerr = unix.Recvmsg(int(fd), buf, nil, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			// The poller fails only once the socket is closed.
			return
		}
		if rerr != nil {
			// The kernel refuses to describe a super-frame of a GSO type
			// virtio-net has no name for (EINVAL), and reports a link that
			// went down (ENETDOWN); either error costs at most one frame
			// and the socket stays usable.
			e.rxDrops.Add(1)
			continue
		}
		if sa, ok := from.(*unix.SockaddrLinklayer); ok && sa.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		frame, ok := prepareFrame(buf[:n], flags&unix.MSG_TRUNC != 0)
		if !ok {
			e.rxDrops.Add(1)
			continue
		}
		e.deliver(frame)
	}
}

// deliver hands one ethernet frame to the stack.
func (e *endpoint) deliver(frame []byte) {
	e.mu.RLock()
	d, self := e.dispatcher, e.linkAddr
	e.mu.RUnlock()
	if d == nil {
		e.rxDrops.Add(1)
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	defer pkt.DecRef()
	if !e.ParseHeader(pkt) {
		e.rxDrops.Add(1)
		return
	}
	eth := header.Ethernet(pkt.LinkHeader().Slice())
	switch dst := eth.DestinationAddress(); {
	case dst == header.EthernetBroadcastAddress:
		pkt.PktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		pkt.PktType = tcpip.PacketMulticast
	case dst == self:
		pkt.PktType = tcpip.PacketHost
	default:
		pkt.PktType = tcpip.PacketOtherHost
	}
	e.rxFrames.Add(1)
	e.rxBytes.Add(uint64(len(frame)))
	d.DeliverNetworkPacket(eth.Type(), pkt)
}

// WritePackets implements stack.LinkWriter. It blocks while the socket's
// send buffer is full, which holds the stack back instead of losing frames.
func (e *endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	for i, pkt := range pkts.AsSlice() {
		if err := e.writePacket(pkt); err != nil {
			return i, err
		}
	}
	return pkts.Len(), nil
}

func (e *endpoint) writePacket(pkt *stack.PacketBuffer) tcpip.Error {
	// Every write on a PACKET_VNET_HDR socket starts with a virtio-net
	// header; the zero one asks for no offload.
	iov := append([][]byte{zeroVnetHdr[:]}, pkt.AsSlices()...)
	var werr error
	err := e.conn.Write(func(fd uintptr) bool {
		_, werr = unix.Writev(int(fd), iov)
		return werr != unix.EAGAIN
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		e.txErrors.Add(1)
		var errno unix.Errno
		if errors.As(err, &errno) {
			return tcpip.TranslateErrno(errno)
		}
		return &tcpip.ErrClosedForSend{}
	}
	e.txFrames.Add(1)
	e.txBytes.Add(uint64(pkt.Size()))
	return nil
}

// stats returns the counters, first collecting the kernel's count of frames
// it dropped for want of room in the socket's queue.
func (e *endpoint) stats() Stats {
	// Reading PACKET_STATISTICS resets it, so add it up as we go. Once the
	// socket is closed Control fails and the last count stands.
	_ = e.conn.Control(func(fd uintptr) {
		if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			e.rxDrops.Add(uint64(st.Drops))
		}
	})
	return Stats{
		RxFrames: e.rxFrames.Load(),
		RxBytes:  e.rxBytes.Load(),
		RxDrops:  e.rxDrops.Load(),
		TxFrames: e.txFrames.Load(),
		TxBytes:  e.txBytes.Load(),
		TxErrors: e.txErrors.Load(),
	}
}

// close runs the close action, closes the socket (which wakes the reader)
// and waits for the reader to stop.
func (e *endpoint) close() error {
	e.closeOnce.Do(func() {
		e.mu.RLock()
		onClose := e.onClose
		e.mu.RUnlock()
		if onClose != nil {
			onClose()
		}
		e.closeErr = e.file.Close()
		e.reader.Wait()
	})
	return e.closeErr
}

// Close implements stack.LinkEndpoint; the stack calls it when the NIC is
// removed.
func (e *endpoint) Close() { _ = e.close() }

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *endpoint) SetOnCloseAction(action func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onClose = action
}

// Wait implements stack.LinkEndpoint. It returns once the reader has
// stopped, which happens only after Close.
func (e *endpoint) Wait() { e.reader.Wait() }

// Attach implements stack.LinkEndpoint.
func (e *endpoint) Attach(dispatcher stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dispatcher = dispatcher
}

// IsAttached implements stack.LinkEndpoint.
func (e *endpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}

// MTU implements stack.LinkEndpoint.
func (e *endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint. It changes what the stack may send,
// not the kernel's MTU of the interface.
func (e *endpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (*endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *endpoint) LinkAddress() tcpip.LinkAddress {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.linkAddr
}

// SetLinkAddress implements stack.LinkEndpoint.
func (e *endpoint) SetLinkAddress(addr tcpip.LinkAddress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.linkAddr = addr
}

// Capabilities implements stack.LinkEndpoint. The link offloads nothing:
// the stack computes every checksum it sends and verifies every one it
// receives (the reader completes unfinished ones first), because the stack
// overwrites a packet's RXChecksumValidated from these capabilities, so a
// per-frame "already validated" mark cannot reach it.
func (*endpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityResolutionRequired
}

// ARPHardwareType implements stack.LinkEndpoint.
func (*endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (*endpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}
