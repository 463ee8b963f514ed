//go:build linux

package nic

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const (
	peerAddr  = "198.18.1.1"
	stackAddr = "198.18.1.2"
	testMTU   = 1400
)

func TestOpenNonexistentInterface(t *testing.T) {
	const name = "nic-no-such0"
	_, err := Open(Config{Interface: name})
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("Open(%q) = %v, want an error naming the interface", name, err)
	}
}

// TestOpenAFXDPRefused opens AF_XDP where it cannot work (an MTU larger
// than its UMEM frames hold): afxdp fails with the reason, auto falls back
// to AF_PACKET and says why.
func TestOpenAFXDPRefused(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("AF_XDP is not built on", runtime.GOARCH)
	}
	p := newVethPair(t)
	var l *Link
	err := inNamespace(t, p.dutNSh, func() error {
		_, err := Open(Config{Interface: p.dutIf, Driver: DriverAFXDP, MTU: 9000})
		if err == nil || !strings.Contains(err.Error(), "MTU 9000") {
			t.Errorf("Open afxdp with MTU 9000 = %v, want an error about the MTU", err)
		}
		l, err = Open(Config{Interface: p.dutIf, Driver: DriverAuto, MTU: 9000})
		return err
	})
	if err != nil {
		t.Fatalf("Open auto: %v", err)
	}
	defer l.Close()
	if l.Driver() != DriverAFPacket {
		t.Errorf("auto picked %q, want %q", l.Driver(), DriverAFPacket)
	}
	if n := strings.Join(l.Notices(), "\n"); !strings.Contains(n, "falling back to AF_PACKET") || !strings.Contains(n, "MTU 9000") {
		t.Errorf("notices %q do not say why AF_XDP was not used", n)
	}
}

// TestAFXDPAttachesAndDetaches checks that AF_XDP's program is on the
// link while the Link is open and gone once it is closed, so the kernel
// has the link's traffic back.
func TestAFXDPAttachesAndDetaches(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("AF_XDP is not built on", runtime.GOARCH)
	}
	p := newVethPair(t)
	h, err := netlink.NewHandleAt(p.dutNSh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	attached := func() bool {
		t.Helper()
		nl, err := h.LinkByName(p.dutIf)
		if err != nil {
			t.Fatal(err)
		}
		return nl.Attrs().Xdp != nil && nl.Attrs().Xdp.Attached
	}
	var l *Link
	if err := inNamespace(t, p.dutNSh, func() (err error) {
		l, err = Open(Config{Interface: p.dutIf, Driver: DriverAFXDP})
		return err
	}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !attached() {
		t.Error("no XDP program on the link while AF_XDP is open")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if attached() {
		t.Error("the XDP program is still attached after Close")
	}
}

func TestOpenUnknownDriver(t *testing.T) {
	_, err := Open(Config{Interface: "lo", Driver: "dpdk"})
	if err == nil || !strings.Contains(err.Error(), `"dpdk"`) {
		t.Errorf("Open with an unknown driver = %v, want an error naming it", err)
	}
	_, err = Open(Config{Interface: "lo", Driver: DriverAFXDP, XDPMode: "offload"})
	if err == nil || !strings.Contains(err.Error(), `"offload"`) {
		t.Errorf("Open with an unknown XDP mode = %v, want an error naming it", err)
	}
}

// vethPair is a veth pair between two fresh network namespaces: dut, whose
// end the test gives to Open, and peer, whose end carries Linux's own
// stack at peerAddr.
type vethPair struct {
	dutNS, peerNS   string
	dutIf, peerIf   string
	dutNSh, peerNSh netns.NsHandle
}

func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and opens AF_PACKET sockets")
	}
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	tag := hex.EncodeToString(id)
	p := &vethPair{
		dutNS: "nictest-" + tag + "-dut", peerNS: "nictest-" + tag + "-peer",
		dutIf: "nicd-" + tag, peerIf: "nicp-" + tag,
	}
	for _, ns := range []string{p.dutNS, p.peerNS} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("delete namespace %s: %v: %s", ns, err, out)
			}
		})
	}
	run(t, "ip", "link", "add", p.dutIf, "netns", p.dutNS, "type", "veth", "peer", "name", p.peerIf, "netns", p.peerNS)
	run(t, "ip", "-n", p.peerNS, "addr", "add", peerAddr+"/24", "dev", p.peerIf)
	run(t, "ip", "-n", p.peerNS, "link", "set", p.peerIf, "up")
	run(t, "ip", "-n", p.peerNS, "link", "set", "lo", "up")
	// An address the kernel holds before Open, which Open must remove.
	run(t, "ip", "-n", p.dutNS, "addr", "add", "198.18.1.99/24", "dev", p.dutIf)

	var err error
	if p.dutNSh, err = netns.GetFromName(p.dutNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.dutNSh.Close() })
	if p.peerNSh, err = netns.GetFromName(p.peerNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.peerNSh.Close() })
	return p
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// inNamespace runs fn on an OS thread switched into ns. Sockets fn creates
// stay in ns after the thread switches back.
func inNamespace(t *testing.T, ns netns.NsHandle, fn func() error) error {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime then retires it instead of
		// reusing a thread stuck in the wrong namespace.
		t.Fatal(err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// newStack builds a gVisor stack on the link with stackAddr/24.
func newStack(t *testing.T, l *Link) *stack.Stack {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{icmp.NewProtocol4, udp.NewProtocol, tcp.NewProtocol},
	})
	t.Cleanup(func() {
		s.Close()
		s.Wait()
	})
	if err := s.CreateNIC(1, l.Endpoint()); err != nil {
		t.Fatalf("CreateNIC: %v", err)
	}
	// Removing the NIC closes the endpoint, as the firmware's shutdown
	// will; Link.Close afterwards must still succeed.
	t.Cleanup(func() {
		if err := s.RemoveNIC(1); err != nil {
			t.Errorf("RemoveNIC: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close after RemoveNIC: %v", err)
		}
	})
	addr := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: stackIP(), PrefixLen: 24},
	}
	if err := s.AddProtocolAddress(1, addr, stack.AddressProperties{}); err != nil {
		t.Fatalf("AddProtocolAddress: %v", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	return s
}

func stackIP() tcpip.Address { return tcpip.AddrFrom4Slice(net.ParseIP(stackAddr).To4()) }

// driverConfigs are the drivers (and XDP modes) the tests run over.
var driverConfigs = []Config{
	{Driver: DriverAFPacket},
	{Driver: DriverAFXDP, XDPMode: XDPModeNative},
	{Driver: DriverAFXDP, XDPMode: XDPModeGeneric},
}

func driverName(c Config) string {
	if c.XDPMode == "" {
		return c.Driver
	}
	return c.Driver + "-" + c.XDPMode
}

func TestLinkWithLinuxPeer(t *testing.T) {
	for _, c := range driverConfigs {
		t.Run(driverName(c), func(t *testing.T) { testLinkWithLinuxPeer(t, c) })
	}
}

func testLinkWithLinuxPeer(t *testing.T, cfg Config) {
	p := newVethPair(t)

	var l *Link
	err := inNamespace(t, p.dutNSh, func() error {
		var err error
		cfg.Interface, cfg.MTU = p.dutIf, testMTU
		l, err = Open(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	s := newStack(t, l)

	t.Run("link set-up", func(t *testing.T) {
		h, err := netlink.NewHandleAt(p.dutNSh)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		nl, err := h.LinkByName(p.dutIf)
		if err != nil {
			t.Fatal(err)
		}
		if addrs, err := h.AddrList(nl, netlink.FAMILY_ALL); err != nil || len(addrs) != 0 {
			t.Errorf("kernel addresses on %s after Open: %v (err %v), want none", p.dutIf, addrs, err)
		}
		if nl.Attrs().OperState != netlink.OperUp && nl.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is not up", p.dutIf)
		}
		if got := l.MTU(); got != testMTU || nl.Attrs().MTU != testMTU {
			t.Errorf("MTU: Link %d, kernel %d, want %d", got, nl.Attrs().MTU, testMTU)
		}
		if !bytes.Equal(l.MAC(), nl.Attrs().HardwareAddr) {
			t.Errorf("MAC %v, kernel has %v", l.MAC(), nl.Attrs().HardwareAddr)
		}
		if l.Name() != p.dutIf {
			t.Errorf("Name %q, want %q", l.Name(), p.dutIf)
		}
		out, err := exec.Command("ip", "netns", "exec", p.dutNS, "cat", "/proc/sys/net/ipv6/conf/"+p.dutIf+"/disable_ipv6").Output()
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Errorf("disable_ipv6 = %q (err %v), want 1", out, err)
		}
	})

	t.Run("ping from peer", func(t *testing.T) {
		if _, err := exec.LookPath("ping"); err != nil {
			t.Skip("ping not installed (Debian: iputils-ping)")
		}
		out, err := exec.Command("ip", "netns", "exec", p.peerNS, "ping", "-c", "2", "-W", "2", stackAddr).CombinedOutput()
		if err != nil {
			t.Fatalf("ping %s: %v\n%s", stackAddr, err, out)
		}
	})

	// Linux sends these with transmit checksum offload on (the veth
	// default): they arrive with unfinished UDP and TCP checksums, and the
	// TCP stream as super-frames larger than the MTU.
	t.Run("capture", func(t *testing.T) {
		if _, err := l.StopCapture(); err == nil {
			t.Error("StopCapture with no capture running succeeded")
		}
		path := t.TempDir() + "/c.pcap"
		filter, _ := ParseCaptureFilter(peerAddr)
		if err := l.StartCapture(path, filter); err != nil {
			t.Fatal(err)
		}
		if err := l.StartCapture(path+"2", filter); err == nil {
			t.Error("a second capture started while one runs")
		}
		if out, err := exec.Command("ip", "netns", "exec", p.peerNS, "ping", "-c", "1", "-W", "2", stackAddr).CombinedOutput(); err != nil {
			t.Skipf("ping: %v: %s", err, out)
		}
		if got := l.Stats().Capture; got == nil || got.Frames < 2 {
			t.Errorf("show interfaces during the capture: %+v, want the echo request and reply", got)
		}
		st, err := l.StopCapture()
		if err != nil {
			t.Fatal(err)
		}
		// Request and reply, and ARP unless the stack still knew the peer.
		if st.Frames < 2 || st.File != path || st.Filter != peerAddr {
			t.Errorf("capture wrote %+v", st)
		}
		if l.Stats().Capture != nil {
			t.Error("a stopped capture still shows")
		}
	})

	t.Run("UDP from peer", func(t *testing.T) {
		conn, err := gonet.DialUDP(s, &tcpip.FullAddress{NIC: 1, Addr: stackIP(), Port: 5353}, nil, ipv4.ProtocolNumber)
		if err != nil {
			t.Fatalf("DialUDP: %v", err)
		}
		defer conn.Close()

		var peer net.Conn
		if err := inNamespace(t, p.peerNSh, func() (err error) {
			peer, err = net.Dial("udp", net.JoinHostPort(stackAddr, "5353"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		want := []byte("datagram from the Linux peer")
		if _, err := peer.Write(want); err != nil {
			t.Fatal(err)
		}

		buf := make([]byte, 2048)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("ReadFrom: %v", err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Errorf("got %q, want %q", buf[:n], want)
		}
		if host, _, _ := net.SplitHostPort(from.String()); host != peerAddr {
			t.Errorf("datagram from %v, want %s", from, peerAddr)
		}

		// And back: Linux accepts what the stack sent through the link.
		if _, err := conn.WriteTo([]byte("reply"), from); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err = peer.Read(buf)
		if err != nil || string(buf[:n]) != "reply" {
			t.Errorf("peer read %q, %v; want \"reply\"", buf[:n], err)
		}
	})

	t.Run("TCP echo with peer", func(t *testing.T) {
		ln, err := gonet.ListenTCP(s, tcpip.FullAddress{NIC: 1, Addr: stackIP(), Port: 7}, ipv4.ProtocolNumber)
		if err != nil {
			t.Fatalf("ListenTCP: %v", err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.Copy(c, c)
		}()

		var peer net.Conn
		if err := inNamespace(t, p.peerNSh, func() (err error) {
			peer, err = net.DialTimeout("tcp", net.JoinHostPort(stackAddr, "7"), 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		peer.SetDeadline(time.Now().Add(30 * time.Second))

		want := make([]byte, 4<<20)
		if _, err := rand.Read(want); err != nil {
			t.Fatal(err)
		}
		writeErr := make(chan error, 1)
		go func() {
			_, err := peer.Write(want)
			writeErr <- err
		}()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(peer, got); err != nil {
			t.Fatalf("reading the echo: %v", err)
		}
		if err := <-writeErr; err != nil {
			t.Fatalf("writing: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("echoed stream differs from what was sent")
		}
	})

	t.Run("stats", func(t *testing.T) {
		st := l.Stats()
		if st.RxFrames == 0 || st.RxBytes == 0 || st.TxFrames == 0 || st.TxBytes == 0 {
			t.Errorf("counters did not move: %+v", st)
		}
		if st.TxErrors != 0 {
			t.Errorf("TxErrors = %d, want 0", st.TxErrors)
		}
		if st.RxBytes < 4<<20 || st.TxBytes < 4<<20 {
			t.Errorf("byte counters smaller than the TCP stream: %+v", st)
		}
		// Well above the MTU when the peer's TSO super-segments came
		// through whole.
		t.Logf("%+v, %d bytes per received frame", st, st.RxBytes/st.RxFrames)
	})
}

func TestCloseStopsReader(t *testing.T) {
	p := newVethPair(t)
	var l *Link
	if err := inNamespace(t, p.dutNSh, func() (err error) {
		l, err = Open(Config{Interface: p.dutIf})
		return err
	}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		err := l.Close()
		l.Endpoint().Wait()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the reader")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// A write after Close fails instead of blocking or panicking.
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{ReserveHeaderBytes: header.EthernetMinimumSize})
	l.Endpoint().AddHeader(pkt)
	var pkts stack.PacketBufferList
	pkts.PushBack(pkt)
	defer pkts.Reset()
	if n, err := l.Endpoint().WritePackets(pkts); n != 0 || err == nil {
		t.Errorf("WritePackets after Close = %d, %v; want 0 and an error", n, err)
	}
}
