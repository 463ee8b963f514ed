package tcpext

import "gvisor.dev/gvisor/pkg/tcpip/header"

// enterTimeWait starts TIME-WAIT: the TCB keeps its 4-tuple for 2*MSL so
// that a retransmitted FIN can still be ACKed and old duplicates die out
// (RFC 9293 section 3.6.1).
func (e *endpoint) enterTimeWait(cause string) {
	e.stopRTO()
	e.stopFinWait2()
	// Nothing is left to send, and nobody reads any more once the
	// application has closed: a TCB that lingers for 2*MSL keeps no buffers.
	e.sndBuf.Release()
	e.ooo, e.oooBytes = nil, 0
	if e.closed {
		e.rcvBuf.Release()
	}
	e.setState(StateTimeWait, cause)
	e.restartTimeWait()
}

func (e *endpoint) restartTimeWait() {
	e.timeWaitTimer.set(e, 2*e.proto.opts.MSL)
}

func (e *endpoint) stopTimeWait() { e.timeWaitTimer.stop() }

func (e *endpoint) onTimeWait() {
	e.mu.Lock()
	defer e.unlock()
	if !e.expired(&e.timeWaitTimer, "time-wait") || e.state != StateTimeWait {
		return
	}
	e.setState(StateClosed, "2*MSL elapsed in TIME-WAIT")
}

// handleTimeWait is segment arrival in TIME-WAIT (RFC 9293 3.10.7.4):
// a RST is ignored (RFC 1337, against TIME-WAIT assassination); a
// retransmitted FIN is ACKed again and restarts the 2*MSL timer; anything
// else gets an ACK. A new SYN that passes the RFC 6191 test ends TIME-WAIT
// early: the listener of the port, returned, takes it as a new connection.
func (e *endpoint) handleTimeWait(seg *Segment) *endpoint {
	if seg.has(header.TCPFlagRst) {
		return nil
	}
	if seg.Flags&(header.TCPFlagSyn|header.TCPFlagAck) == header.TCPFlagSyn && e.newIncarnation(seg) {
		if l := e.proto.listenerFor(e.tid.LocalPort); l != nil {
			e.setState(StateClosed, "new SYN with a greater ISN in TIME-WAIT (RFC 6191)")
			return l
		}
	}
	e.sendACK()
	if seg.has(header.TCPFlagFin) {
		e.restartTimeWait()
	}
	return nil
}

// newIncarnation is the test of RFC 6191 section 2 for a SYN in TIME-WAIT:
// with timestamps in use, its timestamp must be newer than TS.Recent (its
// sequence number does not matter); without, its sequence number must lie
// beyond the old connection's.
func (e *endpoint) newIncarnation(syn *Segment) bool {
	if e.tsOK && syn.Options.Timestamps {
		return int32(syn.Options.TSVal-e.tsRecent) > 0
	}
	return e.rcvNxt.LessThan(syn.Seq)
}

// armFinWait2 bounds FIN-WAIT-2 after a full close, so a peer that never
// sends its FIN cannot pin the TCB (the application can no longer read, so
// nothing is lost). A half-close keeps FIN-WAIT-2 without limit.
func (e *endpoint) armFinWait2() {
	if !e.closed || e.state != StateFinWait2 || e.proto.opts.FinWait2Timeout <= 0 {
		return
	}
	e.finWait2Timer.set(e, e.proto.opts.FinWait2Timeout)
}

func (e *endpoint) stopFinWait2() { e.finWait2Timer.stop() }

func (e *endpoint) onFinWait2() {
	e.mu.Lock()
	defer e.unlock()
	if !e.expired(&e.finWait2Timer, "fin-wait-2") || e.state != StateFinWait2 {
		return
	}
	e.abort("FIN-WAIT-2 timeout")
}
