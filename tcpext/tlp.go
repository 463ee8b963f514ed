package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// Tail loss probe (RFC 8985 section 7). When the last segments of a flight
// are lost, no duplicate ACK comes back to start fast recovery and only the
// retransmission timer, at least 200 ms, would find the loss. Instead, a
// probe timeout (PTO) of about two round trips sends one probe segment:
// new data if there is some, else the last segment again. Its ACK either
// shows all was well, or SACKs the probe above the holes, which RACK's
// rule then finds lost (sendRecovery retransmits them), or acknowledges a
// lost last segment that the probe itself repaired, which is answered as a
// loss (section 7.4). Like RACK, TLP needs SACK.

const (
	// wcDelAckT is WCDelAckT of RFC 8985 section 7.2, the receiver's
	// worst-case delayed-ACK timer: a lone segment's ACK may wait that
	// long.
	wcDelAckT = 200 * time.Millisecond
	// minPTO keeps the probe from racing ACKs that a receiver or its NIC
	// batches when the round trip is far below the clock's reach (Linux's
	// floor, tcp_schedule_loss_probe).
	minPTO = 10 * time.Millisecond
	// initialPTO is the PTO before any RTT sample (RFC 8985 section 7.2).
	initialPTO = time.Second
)

// lossProbe is the TLP state of RFC 8985 section 7.
type lossProbe struct {
	timer timer
	// episode is set from a probe until its ACK settles whether it
	// repaired a loss; one probe per episode (section 7.3).
	episode bool
	// retrans: the probe resent the last segment (TLP.is_retrans).
	retrans bool
	// len is the probe's length in sequence space, at most one segment.
	len uint16
	// end is TLP.end_seq, SND.NXT after the probe.
	end seqnum.Value
}

// start is the probe's first sequence number.
func (p *lossProbe) start() seqnum.Value { return p.end - seqnum.Value(p.len) }

// probeAllowed is the condition of RFC 8985 section 7.2 for a PTO: data in
// flight on a synchronized connection with SACK, not in fast recovery or
// RTO recovery, nothing SACKed (limited transmit and fast recovery deal
// with that), and no probe still unsettled.
func (e *endpoint) probeAllowed() bool {
	switch e.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	default:
		return false
	}
	return e.sackOK && !e.tlp.episode && !e.rec.active && e.mayEnterRecovery() &&
		e.sndUna != e.sndMax && e.sndNxt == e.sndMax && e.sndWnd > 0 &&
		len(e.sb.blocks) == 0 && e.rtt.backoff == 0
}

// schedulePTO (re)starts the probe timer after new data went out or the
// cumulative ACK advanced (RFC 8985 section 7.2), or stops it where no
// probe is due. A PTO that would not fire before the retransmission timer
// is not armed: the timer then finds the loss.
func (e *endpoint) schedulePTO() {
	if !e.probeAllowed() {
		e.tlp.timer.stop()
		return
	}
	pto := initialPTO
	if e.rtt.measured {
		pto = 2 * e.rtt.srtt
		if int(e.sndUna.Size(e.sndMax)) <= e.smss() {
			pto += wcDelAckT
		}
		pto = max(pto, minPTO)
	}
	if !e.monoNow().Add(pto).Before(e.rtoTimer.deadline) {
		e.tlp.timer.stop()
		return
	}
	e.tlp.timer.set(e, pto)
}

// onPTO sends the probe (RFC 8985 section 7.3) and leaves the rest to the
// retransmission timer, restarted from now.
func (e *endpoint) onPTO() {
	e.mu.Lock()
	defer e.unlock()
	if !e.expired(&e.tlp.timer, "tail-loss-probe") || !e.probeAllowed() {
		return
	}
	start, retrans := e.sndMax, !e.newDataAllowed()
	if !retrans {
		end := e.finSeq()
		n := min(start.Size(end), start.Size(e.sndUna.Add(e.sndWnd)), seqnum.Size(e.maxPayload()))
		e.transmit(e.dataFlags(start.Add(n), end, false), start, int(n))
	} else {
		start -= seqnum.Value(min(int(e.sndUna.Size(e.sndMax)), e.smss()))
		e.retransmitAt(start, e.sndMax)
	}
	e.tlp.episode, e.tlp.retrans = true, retrans
	e.tlp.end, e.tlp.len = e.sndMax, uint16(start.Size(e.sndMax))
	e.counters.LossProbes++
	e.proto.stats.LossProbes.Add(1)
	e.restartRTO()
}

// onProbeAck follows the unsettled probe through an arriving ACK, after the
// scoreboard took the ACK's SACK blocks and before SND.UNA moves.
func (e *endpoint) onProbeAck(seg *Segment) {
	if !e.tlp.episode {
		return
	}
	start := e.tlp.start()
	if _, ok := e.sb.sackedAt(start); ok {
		// RACK (RFC 8985 section 6.2): what is not SACKed below the probe
		// was sent before it, at least a PTO ago, more than a round trip
		// and a reordering window, so it is lost.
		e.sb.markLost(start)
	}
	if seg.Ack.LessThan(e.tlp.end) {
		return
	}
	// Section 7.4.2: has the probe repaired a loss?
	switch {
	case !e.tlp.retrans:
		// New data: any loss below it is RACK's to find.
	case e.dsackCovers(seg, start, e.tlp.end):
		// The original and the probe both arrived.
	case e.tlp.end.LessThan(seg.Ack):
		// Only the probe arrived: the last segment was lost, and the
		// response is that of fast recovery. A probe goes when the flight
		// is a tail, so the window it halves is cwnd's, as Linux's
		// response (tcp_process_tlp_ack) takes it.
		e.cc.OnLoss(e.cc.Cwnd(), e.now())
		e.cc.SetCwnd(min(e.cc.Cwnd(), e.cc.Ssthresh()))
		e.recordCC("tail-loss-repaired")
	case seg.Ack == e.sndUna && len(seg.Payload) == 0 && seg.Options.NumSACK == 0:
		// A pure duplicate ACK at TLP.end_seq: the peer got both copies
		// but reports no D-SACK.
	default:
		// The ACK up to TLP.end_seq itself: either copy may have made it.
		return
	}
	e.tlp.episode = false
}

// dsackCovers reports whether seg's first SACK block is a D-SACK (RFC 2883
// section 4) for all of [start, end).
func (e *endpoint) dsackCovers(seg *Segment, start, end seqnum.Value) bool {
	if seg.Options.NumSACK == 0 {
		return false
	}
	b := seg.Options.SACK[0]
	r := seqRange{seqnum.Value(b.Start), seqnum.Value(b.End)}
	isDSACK := !seg.Ack.LessThan(r.End) ||
		(seg.Options.NumSACK > 1 && inside(r, seqRange{seqnum.Value(seg.Options.SACK[1].Start), seqnum.Value(seg.Options.SACK[1].End)}))
	return isDSACK && !start.LessThan(r.Start) && !r.End.LessThan(end)
}

// inside reports whether r lies within s.
func inside(r, s seqRange) bool {
	return !r.Start.LessThan(s.Start) && !s.End.LessThan(r.End)
}

// endProbe forgets the probe when a fast recovery or a timeout takes over
// the loss it was looking for.
func (e *endpoint) endProbe() {
	e.tlp.episode = false
	e.tlp.timer.stop()
}
