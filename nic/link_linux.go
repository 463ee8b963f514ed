//go:build linux

package nic

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Link is an opened NIC: a Linux interface given over to the user-space
// stack.
type Link struct {
	name string
	mac  net.HardwareAddr
	ep   *endpoint
}

// Open takes over the interface cfg.Interface in the calling thread's
// network namespace and opens the driver on it.
//
// The kernel keeps the interface but must not take part in its traffic, so
// Open disables the kernel's IPv6 on it and removes every address it holds
// before bringing it up; otherwise the kernel would answer ARP, neighbour
// discovery and connections that belong to the user-space stack.
func Open(cfg Config) (*Link, error) {
	switch cfg.Driver {
	case "", DriverAFPacket:
	case DriverAFXDP:
		return nil, fmt.Errorf("nic: driver %q: not implemented yet", cfg.Driver)
	default:
		return nil, fmt.Errorf("nic: unknown driver %q (want %q or %q)", cfg.Driver, DriverAFPacket, DriverAFXDP)
	}

	attrs, err := setUp(cfg)
	if err != nil {
		return nil, fmt.Errorf("nic: interface %q: %w", cfg.Interface, err)
	}
	ep, err := openAFPacket(attrs.Index, attrs.HardwareAddr, uint32(attrs.MTU))
	if err != nil {
		return nil, fmt.Errorf("nic: interface %q: %w", cfg.Interface, err)
	}
	return &Link{name: attrs.Name, mac: attrs.HardwareAddr, ep: ep}, nil
}

// setUp prepares the interface through netlink and returns its attributes
// as they are once it is up.
func setUp(cfg Config) (*netlink.LinkAttrs, error) {
	link, err := netlink.LinkByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("find link: %w", err)
	}
	attrs := link.Attrs()
	if attrs.EncapType != "ether" || len(attrs.HardwareAddr) != 6 {
		return nil, fmt.Errorf("not an ethernet interface (link type %q)", attrs.EncapType)
	}
	// IPv6 goes first: while it is enabled, bringing the link up would give
	// it a link-local address and start neighbour discovery.
	if err := disableIPv6(attrs.Name); err != nil {
		return nil, err
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if err := netlink.AddrDel(link, &a); err != nil {
			return nil, fmt.Errorf("remove address %s: %w", a.IPNet, err)
		}
	}
	if cfg.MTU != 0 {
		if err := netlink.LinkSetMTU(link, int(cfg.MTU)); err != nil {
			return nil, fmt.Errorf("set MTU %d: %w", cfg.MTU, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	// Read the link again: the MTU may have changed.
	link, err = netlink.LinkByIndex(attrs.Index)
	if err != nil {
		return nil, fmt.Errorf("read link back: %w", err)
	}
	return link.Attrs(), nil
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

// Endpoint returns the ethernet link endpoint to pass to stack.CreateNIC.
func (l *Link) Endpoint() stack.LinkEndpoint { return l.ep }

// Name returns the Linux interface name.
func (l *Link) Name() string { return l.name }

// MAC returns the interface's hardware address, which the stack uses as its
// own.
func (l *Link) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), l.mac...) }

// MTU returns the link's MTU (the largest IP packet, without the ethernet
// header).
func (l *Link) MTU() uint32 { return l.ep.MTU() }

// Stats returns the frame counters.
func (l *Link) Stats() Stats { return l.ep.stats() }

// Close stops the receive goroutine and closes the socket. The interface is
// left up and without addresses. Close is safe to call more than once, and
// also after the stack closed the endpoint.
func (l *Link) Close() error {
	if err := l.ep.close(); err != nil {
		return fmt.Errorf("nic: close %q: %w", l.name, err)
	}
	return nil
}
