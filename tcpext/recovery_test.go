package tcpext_test

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"github.com/synfin/synfin/tcpext"
)

// injectOpts delivers a segment from the peer with the given options.
func (d *dut) injectOpts(s seg, o tcpext.SegmentOptions) {
	d.t.Helper()
	ts := tcpext.Segment{
		SrcPort: s.srcPort, DstPort: s.dstPort,
		Seq: seqnum.Value(s.seq), Ack: seqnum.Value(s.ack),
		Flags: s.flags, Window: s.window, Options: o, Payload: s.payload,
	}
	b := make([]byte, ts.HeaderLen()+len(s.payload))
	ts.EncodeHeader(b)
	copy(b[ts.HeaderLen():], s.payload)
	d.injectRaw(b, false)
}

// recoveryConn opens a connection from the DUT whose peer announces MSS
// 1000 (and SACK-permitted if sack), and sends ten full segments.
func recoveryConn(t *testing.T, sack bool) (d *dut, port uint16, iss uint32) {
	d, _, port, iss = recoveryConnEP(t, sack)
	return d, port, iss
}

// recoveryConnEP is recoveryConn that also returns the endpoint.
func recoveryConnEP(t *testing.T, sack bool) (d *dut, ep tcpip.Endpoint, port uint16, iss uint32) {
	d = newDUT(t, testOptions())
	ep, _ = d.endpoint()
	if err := ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: 80}); err == nil {
		t.Fatal("Connect returned nil")
	}
	s := d.expect(syn, anySeq, 0)
	if !s.Options.SACKPermitted {
		t.Fatal("our SYN does not offer SACK")
	}
	port, iss = s.SrcPort, uint32(s.Seq)
	d.injectOpts(seg{srcPort: 80, dstPort: port, seq: 100, ack: iss + 1, flags: synAck, window: 65535},
		tcpext.SegmentOptions{MSS: 1000, WindowScale: -1, SACKPermitted: sack})
	d.expect(ack, uint64(iss+1), 101)
	write(t, ep, bytes.Repeat([]byte("d"), 10000))
	for i := 0; i < 10; i++ {
		if got := d.next(); uint32(got.Seq) != iss+1+uint32(i)*1000 || len(got.Payload) != 1000 {
			t.Fatalf("segment %d: %s", i, describe(got))
		}
	}
	d.expectNone()
	return d, ep, port, iss
}

// seq of segment i (0-based) of the ten.
func segAt(iss uint32, i int) uint32 { return iss + 1 + uint32(i)*1000 }

func (d *dut) expectRetransmit(iss uint32, i int) {
	d.t.Helper()
	got := d.next()
	if uint32(got.Seq) != segAt(iss, i) || len(got.Payload) != 1000 {
		d.t.Fatalf("got %s, want the retransmission of segment %d (seq %d)", describe(got), i, segAt(iss, i))
	}
}

// Three duplicate ACKs trigger exactly one fast retransmit; NewReno's
// partial ACK retransmits the next hole at once; the full ACK ends
// recovery with cwnd deflated to ssthresh.
func TestFastRetransmitAndNewRenoPartialAck(t *testing.T) {
	d, port, iss := recoveryConn(t, false)
	dup := seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 1), flags: ack, window: 65535}
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 1), flags: ack, window: 65535}) // segment 0 arrived
	for i := 0; i < 2; i++ {
		d.inject(dup)
		d.expectNone() // limited transmit has nothing new to send
	}
	d.inject(dup)
	d.expectRetransmit(iss, 1)
	d.expectNone()
	tcb := d.proto.TCBs()[0]
	if !tcb.Recovery || tcb.Ssthresh != 4500 || tcb.Counters.FastRetransmits != 1 {
		t.Fatalf("recovery=%v ssthresh=%d fast_retransmits=%d, want true, 4500 (flight 9000 / 2), 1",
			tcb.Recovery, tcb.Ssthresh, tcb.Counters.FastRetransmits)
	}
	d.inject(dup)
	d.expectNone()

	// Partial ACK: segments 1-4 arrived, 5 was lost too.
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 5), flags: ack, window: 65535})
	d.expectRetransmit(iss, 5)
	if !d.proto.TCBs()[0].Recovery {
		t.Fatal("a partial ACK ended recovery")
	}
	// Full ACK.
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 10), flags: ack, window: 65535})
	tcb = d.proto.TCBs()[0]
	// RFC 6582 step 3: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
	if tcb.Recovery || tcb.Cwnd != 2000 {
		t.Fatalf("after the full ACK: recovery=%v cwnd=%d ssthresh=%d", tcb.Recovery, tcb.Cwnd, tcb.Ssthresh)
	}
	if tcb.Counters.Retransmits != 2 {
		t.Fatalf("%d retransmissions, want 2", tcb.Counters.Retransmits)
	}
}

func sackOpts(blocks ...[2]uint32) tcpext.SegmentOptions {
	o := tcpext.SegmentOptions{WindowScale: -1}
	for _, b := range blocks {
		o.SACK[o.NumSACK] = tcpext.SACKBlock{Start: b[0], End: b[1]}
		o.NumSACK++
	}
	return o
}

// With SACK, recovery retransmits the holes and nothing the peer holds.
func TestSACKRecoveryRetransmitsOnlyHoles(t *testing.T) {
	d, port, iss := recoveryConn(t, true)
	// Segments 1 and 3 are lost; the others arrive one by one.
	ackOf := func(blocks ...[2]uint32) {
		d.injectOpts(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 1), flags: ack, window: 65535}, sackOpts(blocks...))
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 1), flags: ack, window: 65535})
	ackOf([2]uint32{segAt(iss, 2), segAt(iss, 3)})
	ackOf([2]uint32{segAt(iss, 4), segAt(iss, 5)}, [2]uint32{segAt(iss, 2), segAt(iss, 3)})
	d.expectNone()
	ackOf([2]uint32{segAt(iss, 4), segAt(iss, 6)}, [2]uint32{segAt(iss, 2), segAt(iss, 3)})
	d.expectRetransmit(iss, 1)
	for i := 7; i <= 10; i++ {
		ackOf([2]uint32{segAt(iss, 4), segAt(iss, i)}, [2]uint32{segAt(iss, 2), segAt(iss, 3)})
	}
	d.expectRetransmit(iss, 3)
	d.expectNone()
	tcb := d.proto.TCBs()[0]
	if tcb.Counters.Retransmits != 2 || tcb.SACKBlocks != 2 {
		t.Fatalf("retransmits=%d sack_blocks=%d, want 2 and 2", tcb.Counters.Retransmits, tcb.SACKBlocks)
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 10), flags: ack, window: 65535})
	if tcb := d.proto.TCBs()[0]; tcb.Recovery || tcb.SACKBlocks != 0 {
		t.Fatalf("after the full ACK: recovery=%v sack_blocks=%d", tcb.Recovery, tcb.SACKBlocks)
	}
}

// SACK recovery keeps the pipe full: once the SACKs show enough data has
// left the network, new segments go out during recovery (RFC 6675 section 5,
// NextSeg rule 2) rather than waiting for the cumulative ACK, and recovery
// ends with cwnd at ssthresh.
func TestSACKRecoverySendsNewDataByPipe(t *testing.T) {
	d, ep, port, iss := recoveryConnEP(t, true)
	write(t, ep, bytes.Repeat([]byte("n"), 5000))
	d.expectNone() // ten segments fill the initial window
	sacked := func(upto int) {
		d.injectOpts(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 0), flags: ack, window: 65535},
			sackOpts([2]uint32{segAt(iss, 1), segAt(iss, upto+1)}))
	}
	expectNew := func(i int) {
		t.Helper()
		got := d.next()
		if want := segAt(iss, i); uint32(got.Seq) != want || len(got.Payload) != 1000 {
			t.Fatalf("got %s, want new segment %d (seq %d)", describe(got), i, want)
		}
		d.expectNone()
	}
	// Segment 0 is lost. The first two duplicate ACKs each let a new
	// segment out (limited transmit, RFC 3042).
	sacked(1)
	expectNew(10)
	sacked(2)
	expectNew(11)
	// The third starts recovery: ssthresh = cwnd = 10000/2, the flight
	// before limited transmit (RFC 5681 section 3.2 step 2), and the pipe
	// (9000: twelve segments out, three SACKed) is above it.
	sacked(3)
	d.expectRetransmit(iss, 0)
	d.expectNone()
	// Each further SACKed segment lowers the pipe by 1000; below 5000 a
	// new segment goes out for each.
	for i := 4; i <= 7; i++ {
		sacked(i)
		d.expectNone()
	}
	for i := 8; i <= 9; i++ {
		sacked(i)
		expectNew(i + 4)
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 12), flags: ack, window: 65535})
	tcb := d.proto.TCBs()[0]
	if tcb.Recovery || tcb.Cwnd != 5000 || tcb.Ssthresh != 5000 {
		t.Fatalf("after the full ACK: recovery=%v cwnd=%d ssthresh=%d, want out of recovery with cwnd = ssthresh = 5000", tcb.Recovery, tcb.Cwnd, tcb.Ssthresh)
	}
}

// The default congestion control applies to connections opened after it
// is set; an unknown name is refused.
func TestDefaultCongestionControl(t *testing.T) {
	d := newDUT(t, testOptions())
	if err := d.proto.SetDefaultCongestionControl("vegas"); err == nil {
		t.Fatal("unknown congestion control accepted")
	}
	if err := d.proto.SetDefaultCongestionControl("cubic"); err != nil {
		t.Fatal(err)
	}
	d.connect(100)
	if tcb := d.proto.TCBs()[0]; tcb.CC != "cubic" {
		t.Fatalf("cc %q, want cubic", tcb.CC)
	}
}

// Stack-wide counters follow the per-TCB ones.
func TestStatsCountFastRetransmits(t *testing.T) {
	d, port, iss := recoveryConn(t, false)
	dup := seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 1), flags: ack, window: 65535}
	for i := 0; i < 4; i++ {
		d.inject(dup)
	}
	d.expectRetransmit(iss, 1)
	if st := d.proto.Stats(); st.FastRetransmits != 1 || st.Retransmits != 1 {
		t.Fatalf("fast_retransmits=%d retransmits=%d, want 1 and 1", st.FastRetransmits, st.Retransmits)
	}
}
