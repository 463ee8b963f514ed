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
	// highRxt is the end of the last hole retransmitted in this SACK
	// recovery (HighRxt of RFC 6675).
	highRxt seqnum.Value
	// partial is set once a partial ACK restarted the timer (RFC 6582 5).
	partial bool
}

// now is the clock reading the congestion controllers use.
func (e *endpoint) now() time.Duration {
	return e.monoNow().Sub(e.proto.epoch)
}

// isDupAck is the duplicate ACK of RFC 5681 section 2, also counting an ACK
// that brings SACK information (RFC 6675 section 2). Behind a closed window
// the repeated ACKs answer window probes, and say nothing of loss.
func (e *endpoint) isDupAck(seg *Segment) bool {
	if seg.Ack != e.sndUna || e.sndUna == e.sndMax || e.sndWnd == 0 || len(seg.Payload) > 0 ||
		seg.Flags&(header.TCPFlagSyn|header.TCPFlagFin) != 0 {
		return false
	}
	return seqnum.Size(seg.Window)<<e.sndWScale == e.sndWnd || (e.sackOK && seg.Options.NumSACK > 0)
}

// onDupAck counts a duplicate ACK and acts on it.
func (e *endpoint) onDupAck() {
	e.rec.dupAcks++
	switch {
	case e.rec.active:
		if !e.sackOK {
			// Each further duplicate means a segment left the network
			// (RFC 6582 section 3.2 step 4).
			e.cc.SetCwnd(e.cc.Cwnd() + e.sndMSS)
		}
	case e.rec.dupAcks < dupThresh:
		// Limited transmit: new data is sent by sendPending's extra
		// allowance below.
	case !e.sndUna.LessThan(e.rec.point) || e.rec.point == 0:
		e.enterRecovery()
	}
	e.sendRecovery()
}

// enterRecovery is fast retransmit (RFC 6582 section 3.2 step 2 / RFC 6675
// section 5): one congestion response per window of data.
func (e *endpoint) enterRecovery() {
	flight := int(e.sndUna.Size(e.sndMax))
	e.cc.OnLoss(flight, e.now())
	e.rec = recovery{active: true, point: e.sndMax, dupAcks: e.rec.dupAcks, highRxt: e.sndUna}
	e.counters.FastRetransmits++
	e.proto.stats.FastRetransmits.Add(1)
	e.rec.highRxt = e.retransmitAt(e.sndUna, e.sndMax)
	if e.sackOK {
		e.cc.SetCwnd(e.cc.Ssthresh())
	} else {
		e.cc.SetCwnd(e.cc.Ssthresh() + dupThresh*e.sndMSS)
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
			e.cc.SetCwnd(min(e.cc.Ssthresh(), max(flight, e.sndMSS)+e.sndMSS))
		}
		e.rec = recovery{point: e.rec.point}
		e.recordCC("recovery-exit")
		return
	}
	// Partial ACK: the next hole is lost too.
	if e.sackOK {
		if e.rec.highRxt.LessThan(e.sndUna) {
			e.rec.highRxt = e.sndUna
		}
	} else {
		e.retransmitAt(e.sndUna, e.sndMax)
		e.cc.SetCwnd(max(e.cc.Cwnd()-acked, 0) + e.sndMSS) // step 5
	}
	if !e.rec.partial {
		e.rec.partial = true
		e.restartRTO()
	}
}

// sendRecovery retransmits SACK holes while the pipe allows (RFC 6675
// section 5, NextSeg rule 1), then new data goes out through sendPending
// (rule 2), which measures its window against the pipe too.
func (e *endpoint) sendRecovery() {
	if e.rec.active && e.sackOK {
		for e.pipe() < e.cc.Cwnd() {
			hole, ok := e.sb.nextHole(e.retransmitFrom())
			if !ok {
				break
			}
			e.rec.highRxt = e.retransmitAt(hole.Start, hole.End)
		}
	}
	e.sendPending()
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
	return flight - e.sb.sackedBytes() - e.sb.lostBytes(e.retransmitFrom(), e.sndMSS)
}

// limitedTransmit is the extra window RFC 3042 grants on the first two
// duplicate ACKs.
func (e *endpoint) limitedTransmit() int {
	if e.rec.active || e.rec.dupAcks == 0 || e.rec.dupAcks >= dupThresh {
		return 0
	}
	return e.rec.dupAcks * e.sndMSS
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
	e.counters.Retransmits++
	e.proto.stats.Retransmits.Add(1)
	e.rtt.sent(seq, seq.Add(l), true, e.monoNow())
	return seq.Add(l)
}
