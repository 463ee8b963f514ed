//go:build linux

package nic

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Link is an opened NIC: a Linux interface given over to the user-space
// stack.
type Link struct {
	name    string
	mac     net.HardwareAddr
	driver  string
	mode    string
	notices []string
	ep      *endpoint

	stateMu sync.Mutex
	state   LinkState

	watchDone chan struct{}
	watcher   sync.WaitGroup
	closeOnce sync.Once
}

// Open takes over the interface cfg.Interface in the calling thread's
// network namespace and opens the driver on it.
//
// The kernel keeps the interface but must not take part in its traffic, so
// Open disables the kernel's IPv6 on it and removes every address it holds
// before bringing it up; otherwise the kernel would answer ARP, neighbour
// discovery and connections that belong to the user-space stack.
//
// With DriverAFXDP, Open fails with the reason if AF_XDP cannot work here
// (32-bit ARM, a kernel without AF_XDP or BPF, an MTU too large for the
// UMEM's frames); with DriverAuto it then falls back to AF_PACKET and
// Notices says why.
func Open(cfg Config) (*Link, error) {
	switch cfg.Driver {
	case "", DriverAFPacket, DriverAFXDP, DriverAuto:
	default:
		return nil, fmt.Errorf("nic: unknown driver %q (want %q, %q or %q)", cfg.Driver, DriverAFPacket, DriverAFXDP, DriverAuto)
	}
	switch cfg.XDPMode {
	case "", XDPModeAuto, XDPModeNative, XDPModeGeneric:
	default:
		return nil, fmt.Errorf("nic: unknown XDP mode %q (want %q, %q or %q)", cfg.XDPMode, XDPModeAuto, XDPModeNative, XDPModeGeneric)
	}
	attrs, notices, err := setUp(cfg)
	if err != nil {
		return nil, fmt.Errorf("nic: interface %q: %w", cfg.Interface, err)
	}
	l := &Link{watchDone: make(chan struct{})}
	// Subscribe before reading the carrier: a change in between then
	// shows in both, and watch counts only changes against what it knows.
	updates := make(chan netlink.LinkUpdate, 16)
	if err := netlink.LinkSubscribeWithOptions(updates, l.watchDone, netlink.LinkSubscribeOptions{}); err != nil {
		return nil, fmt.Errorf("nic: subscribe to link events: %w", err)
	}
	fail := func(err error) (*Link, error) {
		close(l.watchDone)
		for range updates {
		}
		return nil, fmt.Errorf("nic: interface %q: %w", cfg.Interface, err)
	}
	if now, err := netlink.LinkByIndex(attrs.Index); err == nil {
		l.state.Up = carrier(now.Attrs())
	}
	l.name, l.mac, l.notices = attrs.Name, attrs.HardwareAddr, notices

	var p port
	switch cfg.Driver {
	case "", DriverAFPacket:
		p, err = openAFPacket(attrs.Index)
		l.driver = DriverAFPacket
	case DriverAFXDP:
		var x *afxdp
		if x, err = openAFXDP(attrs, cfg.XDPMode); err == nil {
			p, l.driver, l.mode = x, DriverAFXDP, x.mode
		}
	case DriverAuto:
		x, xerr := openAFXDP(attrs, cfg.XDPMode)
		if xerr == nil {
			p, l.driver, l.mode = x, DriverAFXDP, x.mode
			break
		}
		l.notices = append(l.notices, fmt.Sprintf("AF_XDP cannot work here, falling back to AF_PACKET: %v", xerr))
		p, err = openAFPacket(attrs.Index)
		l.driver = DriverAFPacket
	}
	if err != nil {
		return fail(err)
	}
	l.ep = newEndpoint(p, tcpip.LinkAddress(attrs.HardwareAddr), uint32(attrs.MTU))
	l.watcher.Add(1)
	go l.watch(attrs.Index, updates)
	return l, nil
}

// carrier reports whether the link is up and has a carrier.
func carrier(a *netlink.LinkAttrs) bool {
	return a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
}

// watch follows netlink's link updates for the interface with index
// ifindex until the subscription ends.
func (l *Link) watch(ifindex int, updates <-chan netlink.LinkUpdate) {
	defer l.watcher.Done()
	for u := range updates {
		if int(u.Index) != ifindex || u.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		up := carrier(u.Link.Attrs())
		l.stateMu.Lock()
		switch {
		case up && !l.state.Up:
			l.state.Ups++
		case !up && l.state.Up:
			l.state.Downs++
		}
		l.state.Up = up
		l.stateMu.Unlock()
	}
}

// setUp prepares the interface through netlink and returns its attributes
// as they are once it is up, and what it had to clean up.
func setUp(cfg Config) (*netlink.LinkAttrs, []string, error) {
	link, err := netlink.LinkByName(cfg.Interface)
	if err != nil {
		return nil, nil, fmt.Errorf("find link: %w", err)
	}
	attrs := link.Attrs()
	if attrs.EncapType != "ether" || len(attrs.HardwareAddr) != 6 {
		return nil, nil, fmt.Errorf("not an ethernet interface (link type %q)", attrs.EncapType)
	}
	var notices []string
	// An earlier run that crashed leaves its XDP program attached; it
	// would go on redirecting frames away from whichever driver we open.
	if x := attrs.Xdp; x != nil && x.Attached {
		if err := detachXDP(link, x.AttachMode); err != nil {
			return nil, nil, fmt.Errorf("remove the XDP program (id %d) attached to the link: %w", x.ProgId, err)
		}
		notices = append(notices, fmt.Sprintf("removed XDP program id %d (mode %s) left attached by an earlier run", x.ProgId, xdpModeName(x.AttachMode)))
	}
	// IPv6 goes first: while it is enabled, bringing the link up would give
	// it a link-local address and start neighbour discovery.
	if err := disableIPv6(attrs.Name); err != nil {
		return nil, nil, err
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if err := netlink.AddrDel(link, &a); err != nil {
			return nil, nil, fmt.Errorf("remove address %s: %w", a.IPNet, err)
		}
	}
	if cfg.MTU != 0 {
		if err := netlink.LinkSetMTU(link, int(cfg.MTU)); err != nil {
			return nil, nil, fmt.Errorf("set MTU %d: %w", cfg.MTU, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, nil, fmt.Errorf("set up: %w", err)
	}
	// Read the link again: the MTU may have changed.
	link, err = netlink.LinkByIndex(attrs.Index)
	if err != nil {
		return nil, nil, fmt.Errorf("read link back: %w", err)
	}
	return link.Attrs(), notices, nil
}

// detachXDP removes the XDP program attached to link in mode (an
// IFLA_XDP_ATTACHED value).
func detachXDP(link netlink.Link, mode uint32) error {
	var flags []int
	switch mode {
	case nl.XDP_ATTACHED_DRV:
		flags = []int{unix.XDP_FLAGS_DRV_MODE}
	case nl.XDP_ATTACHED_SKB:
		flags = []int{unix.XDP_FLAGS_SKB_MODE}
	case nl.XDP_ATTACHED_HW:
		flags = []int{unix.XDP_FLAGS_HW_MODE}
	default:
		flags = []int{unix.XDP_FLAGS_DRV_MODE, unix.XDP_FLAGS_SKB_MODE, unix.XDP_FLAGS_HW_MODE}
	}
	var errs []error
	for _, f := range flags {
		if err := netlink.LinkSetXdpFdWithFlags(link, -1, f); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(flags) {
		return errors.Join(errs...)
	}
	return nil
}

func xdpModeName(mode uint32) string {
	switch mode {
	case nl.XDP_ATTACHED_DRV:
		return "native"
	case nl.XDP_ATTACHED_SKB:
		return "generic"
	case nl.XDP_ATTACHED_HW:
		return "offload"
	}
	return "several"
}

// disableIPv6 turns the kernel's IPv6 off on the interface. A kernel built
// without IPv6 has no such file and nothing to turn off.
func disableIPv6(ifname string) error {
	path := filepath.Join("/proc/sys/net/ipv6/conf", ifname, "disable_ipv6")
	err := os.WriteFile(path, []byte("1"), 0o644)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disable IPv6: %w", err)
	}
	return nil
}

// OnReceiveBatch has fn called on the receiving goroutine each time the
// driver has delivered a batch of frames (one ring block, or what one
// wake-up found on the RX ring): tcpext acknowledges a batch at its end
// (tcpext.Protocol.BatchACKs).
func (l *Link) OnReceiveBatch(fn func()) { l.ep.onBatch.Store(&fn) }

// Endpoint returns the ethernet link endpoint to pass to stack.CreateNIC.
func (l *Link) Endpoint() stack.LinkEndpoint { return l.ep }

// Name returns the Linux interface name.
func (l *Link) Name() string { return l.name }

// Driver returns the driver in use, DriverAFPacket or DriverAFXDP; with
// DriverAuto it tells which one Open picked.
func (l *Link) Driver() string { return l.driver }

// Notices returns what Open had to do or give up that the operator should
// know: a stale XDP program removed, a fallback from AF_XDP and its reason.
func (l *Link) Notices() []string { return append([]string(nil), l.notices...) }

// MAC returns the interface's hardware address, which the stack uses as its
// own.
func (l *Link) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), l.mac...) }

// MTU returns the link's MTU (the largest IP packet, without the ethernet
// header).
func (l *Link) MTU() uint32 { return l.ep.MTU() }

// Stats returns the counters, per ring, and the carrier.
func (l *Link) Stats() Stats {
	st := l.ep.stats()
	st.Driver, st.Mode = l.driver, l.mode
	l.stateMu.Lock()
	st.Link = l.state
	l.stateMu.Unlock()
	return st
}

// StartCapture starts writing the frames that pass filter, in both
// directions, to a new pcap file at path. Only one capture runs at a time.
func (l *Link) StartCapture(path string, filter CaptureFilter) error {
	c, err := newCapture(path, filter)
	if err != nil {
		return err
	}
	if !l.ep.capture.CompareAndSwap(nil, c) {
		c.close()
		os.Remove(path)
		return errors.New("capture: one is already running")
	}
	return nil
}

// StopCapture ends the running capture, flushes its file and returns what
// it wrote.
func (l *Link) StopCapture() (CaptureStats, error) {
	c := l.ep.capture.Swap(nil)
	if c == nil {
		return CaptureStats{}, errors.New("capture: none is running")
	}
	return c.close()
}

// Close stops the receive goroutine, closes the driver (detaching its XDP
// program) and the link-event subscription. The interface is left up and
// without addresses. Close is safe to call more than once, and also after
// the stack closed the endpoint.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		close(l.watchDone)
		l.watcher.Wait()
		if c := l.ep.capture.Swap(nil); c != nil {
			c.close()
		}
	})
	if err := l.ep.close(); err != nil {
		return fmt.Errorf("nic: close %q: %w", l.name, err)
	}
	return nil
}
