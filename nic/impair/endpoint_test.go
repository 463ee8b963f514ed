package impair

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// udpStack is a stack at dstAddr on an impaired channel link, with a UDP
// endpoint bound to port 9.
type udpStack struct {
	s     *stack.Stack
	link  *channel.Endpoint
	imp   *Endpoint
	ep    tcpip.Endpoint
	clock *faketime.ManualClock
}

func newUDPStack(t *testing.T, out, in Config) *udpStack {
	t.Helper()
	clock := faketime.NewManualClock()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{udp.NewProtocol},
		Clock:              clock,
	})
	link := channel.New(256, 1500, "")
	imp, err := NewEndpoint(link, clock, out, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateNIC(1, imp); err != nil {
		t.Fatalf("CreateNIC: %v", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: dstAddr.WithPrefix()}
	pa.AddressWithPrefix.PrefixLen = 24
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	var wq waiter.Queue
	ep, terr := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		t.Fatal(terr)
	}
	if err := ep.Bind(tcpip.FullAddress{Port: 9}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ep.Close()
		s.Close()
		s.Wait()
	})
	return &udpStack{s: s, link: link, imp: imp, ep: ep, clock: clock}
}

func (u *udpStack) inject(id uint32) {
	pkt := newPacket(udpPacket(id, 100))
	u.link.InjectInbound(ipv4.ProtocolNumber, pkt)
	pkt.DecRef()
}

func (u *udpStack) received() int {
	n := 0
	for {
		var b bytes.Buffer
		if _, err := u.ep.Read(&b, tcpip.ReadOptions{}); err != nil {
			return n
		}
		n++
	}
}

// The wrapper delays what the stack writes before the wrapped link sees it.
func TestEndpointImpairsOutbound(t *testing.T) {
	u := newUDPStack(t, Config{Delay: 10 * time.Millisecond}, Config{})
	for range 3 {
		var r bytes.Reader
		r.Reset([]byte("hello"))
		if _, err := u.ep.Write(&r, tcpip.WriteOptions{To: &tcpip.FullAddress{Addr: srcAddr, Port: 1000}}); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if n := u.link.NumQueued(); n != 0 {
		t.Fatalf("%d packets on the link before the delay passed", n)
	}
	u.clock.Advance(10 * time.Millisecond)
	if n := u.link.NumQueued(); n != 3 {
		t.Fatalf("%d packets on the link after the delay, want 3", n)
	}
	if s := u.imp.Stats(); s.Out.Passed != 3 || s.Out.Delayed != 3 || s.In.Packets != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// The wrapper delays, drops and corrupts what the link receives before the
// stack sees it; the stack drops corrupted packets by their checksum.
func TestEndpointImpairsInbound(t *testing.T) {
	u := newUDPStack(t, Config{}, Config{Delay: 5 * time.Millisecond})
	for i := range 4 {
		u.inject(uint32(i))
	}
	if n := u.received(); n != 0 {
		t.Fatalf("%d datagrams before the delay passed", n)
	}
	u.clock.Advance(5 * time.Millisecond)
	if n := u.received(); n != 4 {
		t.Fatalf("%d datagrams after the delay, want 4", n)
	}

	lossy := newUDPStack(t, Config{}, Config{Seed: 1, Loss: 1})
	lossy.inject(1)
	if n := lossy.received(); n != 0 || lossy.imp.Stats().In.Dropped != 1 {
		t.Fatalf("at 100%% loss: %d received, stats %+v", n, lossy.imp.Stats())
	}

	bad := newUDPStack(t, Config{}, Config{Seed: 2, Corrupt: 1})
	const n = 200
	for i := range n {
		bad.inject(uint32(i))
	}
	st := bad.s.Stats()
	dropped := st.UDP.ChecksumErrors.Value() + st.IP.MalformedPacketsReceived.Value() + st.IP.InvalidDestinationAddressesReceived.Value() + st.IP.InvalidSourceAddressesReceived.Value()
	if got := bad.received(); got != 0 || bad.imp.Stats().In.Corrupted != n {
		t.Fatalf("with every packet corrupted: %d received; stats %+v", got, bad.imp.Stats())
	}
	t.Logf("the stack's drop counters account for %d of %d corrupted packets (the rest went to other ports or protocols)", dropped, n)
}
