package tcpext_test

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/synfin/synfin/tcpext"
)

// Loss detection from the SACK scoreboard (RFC 6675 sections 2 and 5),
// lost retransmissions, and the go-back after a timeout, on recoveryConn's
// connection: MSS 1000, no timestamps, segments 0-9 in flight.

// sackAck injects an ACK of everything before segment ackSeg with SACK
// blocks given in segment numbers, [from, to).
func (d *dut) sackAck(port uint16, iss uint32, ackSeg int, blocks ...[2]int) {
	d.t.Helper()
	var bs [][2]uint32
	for _, b := range blocks {
		bs = append(bs, [2]uint32{segAt(iss, b[0]), segAt(iss, b[1])})
	}
	d.injectOpts(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, ackSeg), flags: ack, window: 65535}, sackOpts(bs...))
}

// drain returns the segment numbers of the data segments the DUT sent.
func (d *dut) drain(iss uint32) []int {
	var out []int
	for {
		s, ok := d.poll()
		if !ok {
			return out
		}
		if len(s.Payload) > 0 {
			out = append(out, int(uint32(s.Seq)-iss-1)/1000)
		}
	}
}

// An ACK that SACKs nothing new is not a duplicate ACK (RFC 6675 section
// 2): neither a repeated block nor a D-SACK below the cumulative ACK
// says anything more about loss, so no fast retransmit follows them.
func TestRepeatedAndDSACKBlocksAreNotDupAcks(t *testing.T) {
	d, port, iss := recoveryConn(t, true)
	d.sackAck(port, iss, 1)               // segment 0 arrived
	d.sackAck(port, iss, 1, [2]int{2, 3}) // the first duplicate ACK
	d.sackAck(port, iss, 1, [2]int{2, 3}) // the same block again
	d.sackAck(port, iss, 1, [2]int{0, 1}) // a D-SACK
	d.sackAck(port, iss, 1, [2]int{0, 1}, [2]int{2, 3})
	d.expectNone()
	if tcb := d.proto.TCBs()[0]; tcb.Recovery || tcb.Counters.FastRetransmits != 0 {
		t.Fatalf("recovery=%v fast_retransmits=%d after one new SACK block and three repeats, want no recovery",
			tcb.Recovery, tcb.Counters.FastRetransmits)
	}
	d.sackAck(port, iss, 1, [2]int{2, 4})
	d.sackAck(port, iss, 1, [2]int{2, 5})
	d.expectRetransmit(iss, 1)
}

// When the SACKs show more than two segments above SND.UNA, the first
// unacknowledged segment is lost (IsLost) and recovery starts at once,
// even if the duplicate ACKs that would have counted up to three were
// lost on the way.
func TestSACKedAboveStartsRecoveryWithoutThreeDupAcks(t *testing.T) {
	d, port, iss := recoveryConn(t, true)
	d.sackAck(port, iss, 1, [2]int{2, 5})
	d.expectRetransmit(iss, 1)
	if tcb := d.proto.TCBs()[0]; !tcb.Recovery || tcb.Counters.FastRetransmits != 1 {
		t.Fatalf("recovery=%v fast_retransmits=%d, want recovery after one ACK SACKing three segments",
			tcb.Recovery, tcb.Counters.FastRetransmits)
	}
}

// A retransmission is lost when data sent after it is SACKed (RFC 8985's
// rule, in sequence order): it goes again at once, not after a timeout,
// and once only.
func TestLostRetransmissionResentWithoutTimeout(t *testing.T) {
	d, ep, port, iss := recoveryConnEP(t, true)
	write(t, ep, bytes.Repeat([]byte("n"), 20000)) // segments 10-29
	d.expectNone()
	// Segment 0 is lost; 1-9 arrive, and what recovery sends after them.
	sent := map[int]int{}
	high := 9
	note := func(segs []int) {
		for _, s := range segs {
			sent[s]++
			high = max(high, s)
		}
	}
	for i := 1; i <= 9; i++ {
		d.sackAck(port, iss, 0, [2]int{1, i + 1})
		note(d.drain(iss))
	}
	if sent[0] != 1 {
		t.Fatalf("segment 0 sent %d times in recovery, want once", sent[0])
	}
	// The retransmission of segment 0 is lost too; everything sent after
	// it arrives.
	for i := 10; i <= high && sent[0] < 2; i++ {
		d.sackAck(port, iss, 0, [2]int{1, i + 1})
		note(d.drain(iss))
	}
	if sent[0] != 2 {
		t.Fatalf("segment 0 sent %d times once all later segments were SACKed, want twice (the lost retransmission again)", sent[0])
	}
	tcb := d.proto.TCBs()[0]
	if tcb.Counters.LostRetransmits != 1 || d.proto.Stats().RetransmitTimeouts != 0 {
		t.Fatalf("lost_retransmits=%d retransmit_timeouts=%d, want 1 and 0", tcb.Counters.LostRetransmits, d.proto.Stats().RetransmitTimeouts)
	}
	// The second retransmission arrives: the ACK ends the recovery.
	// Segment 0 is not sent a third time.
	d.sackAck(port, iss, high+1)
	note(d.drain(iss))
	if sent[0] != 2 {
		t.Fatalf("segment 0 sent %d times, want twice", sent[0])
	}
}

// After a retransmission timeout, the segments the peer SACKs are not
// sent again: the go-back-N resends only the holes (RFC 6675 section 5.1).
func TestGoBackAfterTimeoutSkipsSACKed(t *testing.T) {
	d, port, iss := recoveryConn(t, true)
	rto := time.Duration(d.proto.TCBs()[0].RTOms) * time.Millisecond
	d.clock.Advance(rto)
	d.expectRetransmit(iss, 9) // the tail loss probe, which is lost too
	d.expectNone()
	d.clock.Advance(rto)
	d.expectRetransmit(iss, 0)
	d.expectNone()
	// Segment 0's retransmission arrives; the peer holds 2-9, not 1.
	d.sackAck(port, iss, 1, [2]int{2, 10})
	d.expectRetransmit(iss, 1)
	d.expectNone()
	if st := d.proto.Stats(); st.RetransmitTimeouts != 1 || st.Retransmits != 3 || st.LossProbes != 1 {
		t.Fatalf("retransmit_timeouts=%d retransmits=%d loss_probes=%d, want 1, 3 and 1",
			st.RetransmitTimeouts, st.Retransmits, st.LossProbes)
	}
}

// With timestamps on every segment, the congestion window counts in the
// segments actually sent (SMSS is the MSS less 12 bytes of options, RFC
// 5681 section 2): the loss window after a timeout is one whole segment,
// with no 12-byte runt beside it.
func TestCongestionWindowInSegmentsWithTimestamps(t *testing.T) {
	d := newDUT(t, testOptions())
	ep, _ := d.endpoint()
	if err := ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: 80}); err == nil {
		t.Fatal("Connect returned nil")
	}
	s := d.expect(syn, anySeq, 0)
	port, iss := s.SrcPort, uint32(s.Seq)
	d.injectOpts(seg{srcPort: 80, dstPort: port, seq: 100, ack: iss + 1, flags: synAck, window: 65535},
		tcpext.SegmentOptions{MSS: 1460, WindowScale: -1, Timestamps: true, TSVal: 1, TSEcr: s.Options.TSVal})
	d.expect(ack, uint64(iss+1), 101)
	write(t, ep, bytes.Repeat([]byte("t"), 30000))
	for i := 0; i < 10; i++ {
		if got := d.next(); len(got.Payload) != 1448 {
			t.Fatalf("segment %d: %s, want 1448 bytes", i, describe(got))
		}
	}
	d.expectNone()
	if tcb := d.proto.TCBs()[0]; tcb.Cwnd != 10*1448 {
		t.Fatalf("initial cwnd %d, want ten segments of 1448", tcb.Cwnd)
	}
	d.clock.Advance(time.Duration(d.proto.TCBs()[0].RTOms) * time.Millisecond)
	if got := d.next(); uint32(got.Seq) != iss+1 || len(got.Payload) != 1448 {
		t.Fatalf("after the timeout: %s, want the first segment again", describe(got))
	}
	d.expectNone()
}

// A recovery that ends while one of its retransmissions is still on the
// way, and that the SACKs start again at once (the retransmitted segment
// lies beyond the old RecoveryPoint, so its loss is a new congestion
// event), does not send that segment a second time.
func TestRecoveryReenteredKeepsRetransmissionInFlight(t *testing.T) {
	d, ep, port, iss := recoveryConnEP(t, true)
	write(t, ep, bytes.Repeat([]byte("n"), 20000)) // segments 10-29
	sent := map[int]int{}
	high := 9
	note := func() {
		for _, s := range d.drain(iss) {
			sent[s]++
			high = max(high, s)
		}
	}
	// Segment 0 is lost: recovery, with limited transmit's 10 and 11
	// before it, so the RecoveryPoint is segment 12.
	for i := 1; i <= 9; i++ {
		d.sackAck(port, iss, 0, [2]int{1, i + 1})
		note()
	}
	if sent[0] != 1 || sent[12] != 1 {
		t.Fatalf("segment 0 sent %d times, 12 %d times, want once each", sent[0], sent[12])
	}
	// Segment 12, the first sent in recovery, is lost too: the segments
	// after it show it, and it is retransmitted within this recovery.
	sacked := 12
	for sacked < high && sent[12] < 2 {
		sacked++
		d.sackAck(port, iss, 0, [2]int{1, 12}, [2]int{13, sacked + 1})
		note()
	}
	if sent[12] != 2 {
		t.Fatalf("segment 12 sent %d times, want twice", sent[12])
	}
	// Segment 0's retransmission arrives, before anything sent after 12's
	// retransmission: the recovery ends and a new one begins for segment
	// 12, whose retransmission is on its way.
	d.sackAck(port, iss, 12, [2]int{13, sacked + 1})
	note()
	tcb := d.proto.TCBs()[0]
	if !tcb.Recovery || tcb.Counters.FastRetransmits != 2 || sent[12] != 2 {
		t.Fatalf("recovery=%v fast_retransmits=%d, segment 12 sent %d times; want a second recovery that does not resend 12",
			tcb.Recovery, tcb.Counters.FastRetransmits, sent[12])
	}
}
