package tcpext_test

import (
	"encoding/binary"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/synfin/synfin/tcpext"
)

// Addresses of the in-process tests, in the benchmarking range.
var (
	dutAddr  = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	peerAddr = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
)

const testMTU = 1500

// newTestStack builds a stack on a channel link at addr, driven by clock,
// with transport as its TCP.
func newTestStack(t *testing.T, clock tcpip.Clock, addr tcpip.Address, transport stack.TransportProtocolFactory) (*stack.Stack, *channel.Endpoint) {
	t.Helper()
	return newLinkedStack(t, clock, addr, testMTU, transport)
}

// newLinkedStack is newTestStack with a chosen MTU.
func newLinkedStack(t *testing.T, clock tcpip.Clock, addr tcpip.Address, mtu uint32, transport stack.TransportProtocolFactory) (*stack.Stack, *channel.Endpoint) {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{transport},
		Clock:              clock,
	})
	link := channel.New(1<<14, mtu, "")
	if err := s.CreateNIC(1, link); err != nil {
		t.Fatalf("CreateNIC: %v", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: addr.WithPrefix()}
	pa.AddressWithPrefix.PrefixLen = 24
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		t.Fatalf("AddProtocolAddress: %v", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	t.Cleanup(func() {
		s.Close()
		link.Close()
		s.Wait()
	})
	return s, link
}

// dut is a tcpext stack whose wire the test drives segment by segment: it
// injects exact segments from a scripted peer and reads exact segments back.
type dut struct {
	t     *testing.T
	clock *faketime.ManualClock
	s     *stack.Stack
	link  *channel.Endpoint
	proto *tcpext.Protocol
}

func newDUT(t *testing.T, opts tcpext.Options) *dut {
	clock := faketime.NewManualClock()
	s, link := newTestStack(t, clock, dutAddr, tcpext.NewProtocolFactory(opts))
	return &dut{t: t, clock: clock, s: s, link: link, proto: tcpext.ProtocolOf(s)}
}

func testOptions() tcpext.Options {
	o := tcpext.DefaultOptions()
	o.MSL = 2 * time.Second
	return o
}

// seg describes a segment from the scripted peer.
type seg struct {
	srcPort, dstPort uint16
	seq, ack         uint32
	flags            header.TCPFlags
	window           uint16
	mss              uint16
	payload          []byte
}

// inject delivers a segment from the peer to the DUT.
func (d *dut) inject(s seg) {
	d.t.Helper()
	d.injectRaw(encodeSegment(s), false)
}

// injectRaw delivers TCP bytes (header and payload) in an IPv4 packet,
// optionally with a corrupted checksum.
func (d *dut) injectRaw(tcp []byte, corrupt bool) {
	ip := ipPacket(tcp, corrupt)
	d.injectIP(ip, len(ip))
}

// ipPacket puts TCP bytes from the peer to the DUT in an IPv4 packet,
// filling in the checksum (a wrong one if corrupt).
func ipPacket(tcp []byte, corrupt bool) []byte {
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, peerAddr, dutAddr, uint16(len(tcp)))
	binary.BigEndian.PutUint16(tcp[16:], 0)
	sum := ^checksum.Checksum(tcp, xsum)
	if corrupt {
		sum++
	}
	binary.BigEndian.PutUint16(tcp[16:], sum)
	ip := make([]byte, header.IPv4MinimumSize+len(tcp))
	header.IPv4(ip).Encode(&header.IPv4Fields{
		TotalLength: uint16(len(ip)),
		TTL:         64,
		Protocol:    uint8(header.TCPProtocolNumber),
		SrcAddr:     peerAddr,
		DstAddr:     dutAddr,
	})
	header.IPv4(ip).SetChecksum(^header.IPv4(ip).CalculateChecksum())
	copy(ip[header.IPv4MinimumSize:], tcp)
	return ip
}

// injectIP delivers an IPv4 packet whose bytes lie in two views, split at
// the given offset (the whole packet in one view if split is its length).
func (d *dut) injectIP(ip []byte, split int) {
	buf := buffer.MakeWithData(ip[:split])
	if split < len(ip) {
		buf.Append(buffer.NewViewWithData(ip[split:]))
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buf})
	d.link.InjectInbound(ipv4.ProtocolNumber, pkt)
	pkt.DecRef()
}

func encodeSegment(s seg) []byte {
	ts := tcpext.Segment{
		SrcPort: s.srcPort, DstPort: s.dstPort,
		Seq: seqnum.Value(s.seq), Ack: seqnum.Value(s.ack),
		Flags: s.flags, Window: s.window, Payload: s.payload,
	}
	ts.Options.WindowScale = -1
	ts.Options.MSS = s.mss
	b := make([]byte, ts.HeaderLen()+len(s.payload))
	ts.EncodeHeader(b)
	copy(b[ts.HeaderLen():], s.payload)
	return b
}

// next returns the next segment the DUT sent, failing if there is none.
func (d *dut) next() tcpext.Segment {
	d.t.Helper()
	s, ok := d.poll()
	if !ok {
		d.t.Fatalf("expected a segment from the DUT, got none")
	}
	return s
}

// poll returns the next segment the DUT sent, if any.
func (d *dut) poll() (tcpext.Segment, bool) {
	d.t.Helper()
	pkt := d.link.Read()
	if pkt == nil {
		return tcpext.Segment{}, false
	}
	defer pkt.DecRef()
	b := pkt.ToView().AsSlice()
	ip := header.IPv4(b)
	if !ip.IsValid(len(b)) || ip.TransportProtocol() != header.TCPProtocolNumber {
		d.t.Fatalf("DUT sent a non-TCP packet: %x", b)
	}
	tcp := b[ip.HeaderLength():ip.TotalLength()]
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
	if checksum.Checksum(tcp, xsum) != 0xffff {
		d.t.Fatalf("DUT sent a segment with a bad checksum")
	}
	s, err := tcpext.ParseSegment(tcp)
	if err != nil {
		d.t.Fatalf("DUT sent a malformed segment: %v", err)
	}
	s.Payload = append([]byte(nil), s.Payload...)
	return s, true
}

// expectNone fails if the DUT sent anything.
func (d *dut) expectNone() {
	d.t.Helper()
	if s, ok := d.poll(); ok {
		d.t.Fatalf("expected silence, DUT sent %s", describe(s))
	}
}

// anySeq stands for the DUT's yet unknown ISS in expect.
const anySeq = ^uint64(0)

// expect checks a segment's flags, sequence and acknowledgment numbers;
// seq may be anySeq.
func (d *dut) expect(flags header.TCPFlags, seq uint64, ack uint32) tcpext.Segment {
	d.t.Helper()
	s := d.next()
	if s.Flags != flags || (seq != anySeq && uint64(s.Seq) != seq) || (flags&header.TCPFlagAck != 0 && uint32(s.Ack) != ack) {
		d.t.Fatalf("got %s, want flags=%s seq=%d ack=%d", describe(s), flags, seq, ack)
	}
	return s
}

func describe(s tcpext.Segment) string {
	return fmtSeg(s.SrcPort, s.DstPort, s.Flags, uint32(s.Seq), uint32(s.Ack), s.Window, len(s.Payload))
}

// state returns the state of the TCB with the given local port and remote
// port, or "" if none.
func (d *dut) state(local, remote uint16) string {
	for _, tcb := range d.proto.TCBs() {
		if hasPort(tcb.Local, local) && (remote == 0 || hasPort(tcb.Remote, remote)) {
			return tcb.State
		}
	}
	return ""
}
