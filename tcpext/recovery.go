package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// Loss recovery on duplicate ACKs: fast retransmit and fast recovery with
// NewReno's partial ACKs (RFC 5681 section 3.2, RFC 6582), or, when SACK is
// on, retransmission of the scoreboard's holes only (RFC 6675). Limited
// transmit (RFC 3042) keeps the ACK clock going on the first two duplicate
// ACKs. The window arithmetic is the connection's cc.Controller.

// dupThresh is DupThresh of RFC 5681 and RFC 6675.
const dupThresh = 3

type recovery struct {
	active  bool
	point   seqnum.Value // RecoveryPoint: SND.MAX when recovery began
	dupAcks int
	// preLimited is SND.MAX at the first duplicate ACK, before limited
	// transmit sent anything: RFC 5681 section 3.2 step 2 leaves what
	// limited transmit sent out of the FlightSize that sets ssthresh.
	preLimited seqnum.Value
	// highRxt is the end of the last hole retransmitted (HighRxt of RFC
	// 6675). It outlives the recovery that set it, so that a recovery
	// entered while those retransmissions are still on their way does
	// not send them again.
	highRxt seqnum.Value
	// partial is set once a partial ACK restarted the timer (RFC 6582 5).
	partial bool
}

// now is the clock reading the congestion controllers use.
func (e *endpoint) now() time.Duration {
	return e.monoNow().Sub(e.proto.epoch)
}

// smss is the sender maximum segment size of RFC 5681 section 2, the unit
// of the congestion window: the MSS less the options every segment carries
// (RFC 9293 section 3.7.1), so that cwnd is a whole number of the segments
// actually sent and leaves no runt to send.
func (e *endpoint) smss() int {
	o := SegmentOptions{WindowScale: -1, Timestamps: e.tsOK}
	return e.sndMSS - o.Len()
}

// isDupAck is the duplicate ACK of RFC 5681 section 2: the same ACK and
// window, no data, while data is outstanding. When the ACK carries SACK
// blocks, RFC 6675 section 2's definition holds instead: it must SACK
// octets not SACKed before (newlySACKed), so a D-SACK or a repeated block
// says nothing of loss. Behind a closed window the repeated ACKs answer
// window probes, and say nothing of loss either.
func (e *endpoint) isDupAck(seg *Segment, newlySACKed bool) bool {
	if seg.Ack != e.sndUna || e.sndUna == e.sndMax || e.sndWnd == 0 || len(seg.Payload) > 0 ||
		seg.Flags&(header.TCPFlagSyn|header.TCPFlagFin) != 0 {
		return false
	}
	if e.sackOK && seg.Options.NumSACK > 0 {
		return newlySACKed
	}
	return seqnum.Size(seg.Window)<<e.sndWScale == e.sndWnd
}

// onDupAck counts a duplicate ACK and acts on it.
func (e *endpoint) onDupAck() {
	e.rec.dupAcks++
	if e.rec.dupAcks == 1 && !e.rec.active {
		e.rec.preLimited = e.sndMax
	}
	switch {
	case e.rec.active:
		if !e.sackOK {
			// Each further duplicate means a segment left the network
			// (RFC 6582 section 3.2 step 4).
			e.cc.SetCwnd(e.cc.Cwnd() + e.smss())
		}
	case e.rec.dupAcks < dupThresh:
		// Limited transmit: new data is sent by sendPending's extra
		// allowance below, unless the SACKs already show the first
		// segment lost.
		e.checkLoss()
	case e.mayEnterRecovery():
		e.enterRecovery()
	}
	e.sendRecovery()
}

// trail keeps RecoveryPoint and HighRxt from falling behind SND.UNA, so
// that comparing sequence numbers with them stays meaningful however much
// is sent after a recovery (sequence space wraps at 4 GiB).
func (r *recovery) trail(una seqnum.Value) {
	if !r.active && r.point.LessThan(una) {
		r.point = una
	}
	if r.highRxt.LessThan(una) {
		r.highRxt = una
	}
}

// mayEnterRecovery is the condition of RFC 6582 section 3.2 step 2 and RFC
// 6675 section 5: the cumulative ACK has reached the RecoveryPoint of the
// last recovery or timeout, so that one window of losses gets one
// response.
func (e *endpoint) mayEnterRecovery() bool {
	return !e.sndUna.LessThan(e.rec.point)
}

// checkLoss starts SACK recovery without waiting for the third duplicate
// ACK when the scoreboard already shows the first unacknowledged segment
// lost (RFC 6675 section 5, step 2 of the duplicate-ACK rules: IsLost
// (HighACK + 1)). That happens when duplicate ACKs were themselves lost,
// or when a cumulative ACK arrives with enough SACKed above it.
func (e *endpoint) checkLoss() {
	if e.sackOK && !e.rec.active && e.sndUna != e.sndMax && e.mayEnterRecovery() &&
		e.sb.isLost(e.sndUna, e.smss()) {
		e.enterRecovery()
	}
}

// enterRecovery is fast retransmit (RFC 6582 section 3.2 step 2 / RFC 6675
// section 5): one congestion response per window of data.
func (e *endpoint) enterRecovery() {
	high := e.sndMax
	if e.rec.dupAcks > 0 {
		high = e.rec.preLimited
	}
	e.cc.OnLoss(int(e.sndUna.Size(high)), e.now())
	e.rec = recovery{active: true, point: e.sndMax, dupAcks: e.rec.dupAcks, highRxt: e.rec.highRxt}
	e.counters.FastRetransmits++
	e.proto.stats.FastRetransmits.Add(1)
	e.endProbe()
	if e.sackOK {
		e.cc.SetCwnd(e.cc.Ssthresh())
		// RFC 6675 section 5 step 4.3: the first segment presumed lost
		// goes at once, unless an earlier recovery's retransmission of it
		// is still on its way (sendRecovery then finds the next hole).
		if !e.sndUna.LessThan(e.rec.highRxt) {
			e.rec.highRxt = e.retransmitAt(e.sndUna, e.sndMax)
		}
	} else {
		e.rec.highRxt = e.retransmitAt(e.sndUna, e.sndMax)
		e.cc.SetCwnd(e.cc.Ssthresh() + dupThresh*e.smss())
	}
	e.recordCC("fast-retransmit")
	e.restartRTO()
}

// onRecoveryAck handles an ACK of new data during recovery: a full ACK
// ends it, a partial one sends the next hole.
func (e *endpoint) onRecoveryAck(acked int) {
	if !e.sndUna.LessThan(e.rec.point) {
		if e.sackOK {
			// SACK recovery kept the pipe at cwnd = ssthresh and sent
			// new data all along: the window is already right.
			e.cc.SetCwnd(e.cc.Ssthresh())
		} else {
			// Full ACK: deflate (RFC 6582 section 3.2 step 3, option 1).
			flight := int(e.sndUna.Size(e.sndMax))
			e.cc.SetCwnd(min(e.cc.Ssthresh(), max(flight, e.smss())+e.smss()))
		}
		e.rec = recovery{point: e.rec.point, highRxt: e.rec.highRxt}
		e.recordCC("recovery-exit")
		return
	}
	// Partial ACK: the next hole is lost too.
	if !e.sackOK {
		e.retransmitAt(e.sndUna, e.sndMax)
		e.cc.SetCwnd(max(e.cc.Cwnd()-acked, 0) + e.smss()) // step 5
	}
	if !e.rec.partial {
		e.rec.partial = true
		e.restartRTO()
	}
}

// sendRecovery retransmits SACK holes deemed lost while the pipe allows
// (RFC 6675 section 5, NextSeg rule 1), then new data goes out through
// sendPending (rule 2), which measures its window against the pipe too. First, a
// retransmission of the first hole that the SACKs show lost goes again:
// RFC 6675 alone would leave it to the retransmission timer.
func (e *endpoint) sendRecovery() {
	if e.sackOK {
		smss := e.smss()
		if e.sndUna != e.sndMax && e.sb.retransmitLost(e.sndUna, smss) {
			e.counters.LostRetransmits++
			e.proto.stats.LostRetransmits.Add(1)
			if end := e.retransmitAt(e.sndUna, e.sndMax); e.rec.highRxt.LessThan(end) {
				e.rec.highRxt = end
			}
		}
		if e.rec.active {
			for e.pipe() < e.cc.Cwnd() {
				hole, ok := e.sb.nextHole(e.retransmitFrom())
				if !ok {
					break
				}
				if !e.sb.isLost(hole.Start, smss) && e.newDataAllowed() {
					// NextSeg rule 3 retransmits a hole not yet deemed
					// lost only when rule 2 has no new data to send; the
					// holes above this one are not lost either.
					break
				}
				e.rec.highRxt = e.retransmitAt(hole.Start, hole.End)
			}
		}
	}
	e.sendPending()
}

// newDataAllowed reports whether data never sent is waiting and the peer's
// window has room for it (NextSeg rule 2).
func (e *endpoint) newDataAllowed() bool {
	return e.sndMax.LessThan(e.finSeq()) && e.sndMax.LessThan(e.sndUna.Add(e.sndWnd))
}

// retransmitFrom is where the holes not yet retransmitted in this recovery
// begin.
func (e *endpoint) retransmitFrom() seqnum.Value {
	if e.rec.highRxt.LessThan(e.sndUna) {
		return e.sndUna
	}
	return e.rec.highRxt
}

// pipe is RFC 6675's estimate of the bytes in the network (section 4,
// SetPipe): the flight, less what the peer SACKed, less the holes deemed
// lost that have not been retransmitted yet. Holes below HighRxt were
// retransmitted, so they count once, as RFC 6675 counts a lost segment's
// retransmission.
func (e *endpoint) pipe() int {
	flight := int(e.sndUna.Size(e.sndMax))
	return flight - e.sb.sackedBytes() - e.sb.lostBytes(e.retransmitFrom(), e.smss())
}

// limitedTransmit is the extra window RFC 3042 grants on the first two
// duplicate ACKs.
func (e *endpoint) limitedTransmit() int {
	if e.rec.active || e.rec.dupAcks == 0 || e.rec.dupAcks >= dupThresh {
		return 0
	}
	return e.rec.dupAcks * e.smss()
}

// retransmitAt resends one segment's worth from seq, no further than limit,
// without moving SND.NXT; our FIN goes with it if it was sent and fits. It
// returns the sequence number after what it sent.
func (e *endpoint) retransmitAt(seq, limit seqnum.Value) seqnum.Value {
	fin := e.finSeq()
	n := min(seq.Size(limit), seq.Size(fin), seqnum.Size(e.maxPayload()))
	if fin.LessThan(seq) {
		n = 0
	}
	flags := header.TCPFlagAck
	end := seq.Add(n)
	l := n
	if e.finSent() && end == fin && fin.LessThan(limit) {
		flags |= header.TCPFlagFin
		l++
	}
	if l == 0 {
		return seq
	}
	e.emit(flags, seq, int(n), nil)
	if e.sackOK {
		e.sb.markRetransmit(seq, e.sndMax)
	}
	e.counters.Retransmits++
	e.proto.stats.Retransmits.Add(1)
	e.rtt.sent(seq, seq.Add(l), true, e.monoNow())
	return seq.Add(l)
}
