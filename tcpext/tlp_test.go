package tcpext_test

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/synfin/synfin/tcpext"
)

// Tail loss probes (RFC 8985 section 7) on a connection like recoveryConn's
// (MSS 1000, SACK, no timestamps, segments 0-9 in flight) whose handshake
// took tlpRTT, so that SRTT is tlpRTT and the PTO two of it.
const tlpRTT = 30 * time.Millisecond

func tlpConn(t *testing.T, sack bool) (d *dut, ep tcpip.Endpoint, port uint16, iss uint32) {
	return tlpConnWith(t, testOptions(), sack)
}

func tlpConnWith(t *testing.T, opts tcpext.Options, sack bool) (d *dut, ep tcpip.Endpoint, port uint16, iss uint32) {
	d = newDUT(t, opts)
	ep, _ = d.endpoint()
	if err := ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: 80}); err == nil {
		t.Fatal("Connect returned nil")
	}
	s := d.expect(syn, anySeq, 0)
	port, iss = s.SrcPort, uint32(s.Seq)
	d.clock.Advance(tlpRTT)
	d.injectOpts(seg{srcPort: 80, dstPort: port, seq: 100, ack: iss + 1, flags: synAck, window: 65535},
		tcpext.SegmentOptions{MSS: 1000, WindowScale: -1, SACKPermitted: sack})
	d.expect(ack, uint64(iss+1), 101)
	write(t, ep, bytes.Repeat([]byte("d"), 10000))
	if got := d.drain(iss); len(got) != 10 {
		t.Fatalf("sent segments %v, want 0-9", got)
	}
	if tcb := d.proto.TCBs()[0]; tcb.SRTTus != tlpRTT.Microseconds() {
		t.Fatalf("srtt %d µs, want %d", tcb.SRTTus, tlpRTT.Microseconds())
	}
	return d, ep, port, iss
}

// The last three segments are lost: no duplicate ACK comes back, and two
// round trips after the last ACK the probe resends the last segment. Its
// SACK shows the two below it lost (RACK), and fast recovery resends them
// without waiting for the retransmission timer.
func TestTailLossProbeFindsTailLoss(t *testing.T) {
	d, _, port, iss := tlpConn(t, true)
	d.clock.Advance(tlpRTT)
	d.sackAck(port, iss, 7)
	d.clock.Advance(2*tlpRTT - time.Millisecond)
	d.expectNone()
	d.clock.Advance(time.Millisecond)
	if got := d.drain(iss); len(got) != 1 || got[0] != 9 {
		t.Fatalf("at the PTO sent segments %v, want the probe, segment 9 again", got)
	}
	d.sackAck(port, iss, 7, [2]int{9, 10})
	if got := d.drain(iss); len(got) != 2 || got[0] != 7 || got[1] != 8 {
		t.Fatalf("after the probe's SACK sent segments %v, want 7 and 8 again", got)
	}
	tcb := d.proto.TCBs()[0]
	st := d.proto.Stats()
	if !tcb.Recovery || tcb.Counters.FastRetransmits != 1 || tcb.Counters.LossProbes != 1 || st.RetransmitTimeouts != 0 {
		t.Fatalf("recovery=%v fast_retransmits=%d loss_probes=%d retransmit_timeouts=%d, want recovery by one probe and no timeout",
			tcb.Recovery, tcb.Counters.FastRetransmits, tcb.Counters.LossProbes, st.RetransmitTimeouts)
	}
	d.sackAck(port, iss, 10)
	if tcb := d.proto.TCBs()[0]; tcb.Recovery {
		t.Fatal("recovery goes on after everything was acknowledged")
	}
}

// With data waiting behind the congestion window, the probe is new data
// (RFC 8985 section 7.3), beyond cwnd. When the whole flight was lost, its
// SACK shows all of it lost.
func TestTailLossProbeSendsNewData(t *testing.T) {
	d, ep, port, iss := tlpConn(t, true)
	write(t, ep, bytes.Repeat([]byte("n"), 5000)) // segments 10-14 wait for cwnd
	d.expectNone()
	d.clock.Advance(2 * tlpRTT)
	if got := d.drain(iss); len(got) != 1 || got[0] != 10 {
		t.Fatalf("at the PTO sent segments %v, want the probe, new segment 10", got)
	}
	d.sackAck(port, iss, 0, [2]int{10, 11})
	got := d.drain(iss)
	if len(got) == 0 || got[0] != 0 {
		t.Fatalf("after the probe's SACK sent segments %v, want segment 0 first", got)
	}
	if st := d.proto.Stats(); st.FastRetransmits != 1 || st.RetransmitTimeouts != 0 {
		t.Fatalf("fast_retransmits=%d retransmit_timeouts=%d, want 1 and 0", st.FastRetransmits, st.RetransmitTimeouts)
	}
}

// A probe of new data that reaches the end of what the application wrote
// before closing carries the FIN: the peer learns of the close a round
// trip sooner.
func TestNewDataProbeCarriesFIN(t *testing.T) {
	d, ep, _, iss := tlpConn(t, true)
	write(t, ep, bytes.Repeat([]byte("n"), 500))
	ep.Close()
	d.expectNone() // the window is full
	d.clock.Advance(2 * tlpRTT)
	probe := d.next()
	if probe.Flags != ack|psh|fin || uint32(probe.Seq) != iss+10001 || len(probe.Payload) != 500 {
		t.Fatalf("probe %s, want the last 500 bytes with PSH and FIN", describe(probe))
	}
	d.expectNone()
}

// One probe per flight: when it is lost too, the retransmission timer,
// restarted when the probe went, finds the loss.
func TestLostProbeLeavesLossToTimer(t *testing.T) {
	d, _, _, iss := tlpConn(t, true)
	rto := time.Duration(d.proto.TCBs()[0].RTOms) * time.Millisecond
	d.clock.Advance(2 * tlpRTT)
	if got := d.drain(iss); len(got) != 1 || got[0] != 9 {
		t.Fatalf("at the PTO sent segments %v, want segment 9", got)
	}
	d.clock.Advance(rto - time.Millisecond)
	d.expectNone()
	d.clock.Advance(time.Millisecond)
	if got := d.drain(iss); len(got) != 1 || got[0] != 0 {
		t.Fatalf("at the RTO sent segments %v, want segment 0", got)
	}
	if st := d.proto.Stats(); st.LossProbes != 1 || st.RetransmitTimeouts != 1 {
		t.Fatalf("loss_probes=%d retransmit_timeouts=%d, want 1 and 1", st.LossProbes, st.RetransmitTimeouts)
	}
}

// The probe resent the last segment, which had been lost: once the ACK
// moves past the probe without a D-SACK for it, the loss it repaired gets
// the response of fast recovery (RFC 8985 section 7.4.2). When the
// original arrived too, the peer's D-SACK says so and the window stays.
func TestProbeRepairedLossHalvesWindow(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dsack      bool
		wantHalved bool
	}{
		{"last segment lost", false, true},
		{"original and probe arrived", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ep, port, iss := tlpConn(t, true)
			d.clock.Advance(tlpRTT)
			d.sackAck(port, iss, 8)
			d.clock.Advance(2 * tlpRTT)
			if got := d.drain(iss); len(got) != 1 || got[0] != 9 {
				t.Fatalf("at the PTO sent segments %v, want segment 9", got)
			}
			d.sackAck(port, iss, 10)
			cwnd := d.proto.TCBs()[0].Cwnd
			if tc.dsack {
				d.sackAck(port, iss, 10, [2]int{9, 10})
			}
			write(t, ep, []byte("more"))
			if got := d.next(); uint32(got.Seq) != segAt(iss, 10) {
				t.Fatalf("got %s, want the new data", describe(got))
			}
			d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: segAt(iss, 10) + 4, flags: ack, window: 65535})
			tcb := d.proto.TCBs()[0]
			if halved := tcb.Ssthresh == cwnd/2 && tcb.Cwnd <= tcb.Ssthresh; halved != tc.wantHalved {
				t.Fatalf("cwnd %d ssthresh %d after the episode (cwnd %d before), want halved=%v",
					tcb.Cwnd, tcb.Ssthresh, cwnd, tc.wantHalved)
			}
		})
	}
}

// TLP needs SACK to tell what the probe found: without it, the tail is
// the retransmission timer's.
func TestNoProbeWithoutSACK(t *testing.T) {
	d, _, _, iss := tlpConn(t, false)
	rto := time.Duration(d.proto.TCBs()[0].RTOms) * time.Millisecond
	d.clock.Advance(rto - time.Millisecond)
	d.expectNone()
	d.clock.Advance(time.Millisecond)
	if got := d.drain(iss); len(got) != 1 || got[0] != 0 {
		t.Fatalf("at the RTO sent segments %v, want segment 0", got)
	}
	if st := d.proto.Stats(); st.LossProbes != 0 {
		t.Fatalf("loss_probes=%d without SACK, want 0", st.LossProbes)
	}
}

// A lone segment in flight may wait for the peer's delayed-ACK timer, so
// its PTO allows for the worst of those, 200 ms (WCDelAckT, RFC 8985
// section 7.2). The retransmission timer is set long here, so that the
// PTO comes first.
func TestProbeWaitsForDelayedACKOfLoneSegment(t *testing.T) {
	opts := testOptions()
	opts.MinRTO = time.Second
	d, _, port, iss := tlpConnWith(t, opts, true)
	d.clock.Advance(tlpRTT)
	d.sackAck(port, iss, 9)
	d.clock.Advance(2*tlpRTT + 200*time.Millisecond - time.Millisecond)
	d.expectNone()
	d.clock.Advance(time.Millisecond)
	if got := d.drain(iss); len(got) != 1 || got[0] != 9 {
		t.Fatalf("at the PTO sent segments %v, want the probe, segment 9 again", got)
	}
}
