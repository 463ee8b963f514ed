package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// enterTimeWait starts TIME-WAIT: the TCB keeps its 4-tuple for 2*MSL so
// that a retransmitted FIN can still be ACKed and old duplicates die out
// (RFC 9293 section 3.6.1).
func (e *endpoint) enterTimeWait(cause string) {
	e.stopRTO()
	e.stopFinWait2()
	e.setState(StateTimeWait, cause)
	e.restartTimeWait()
}

func (e *endpoint) restartTimeWait() {
	d := 2 * e.proto.opts.MSL
	e.twDeadline = e.stack.Clock().Now().Add(d)
	if e.timeWaitTimer == nil {
		e.timeWaitTimer = e.stack.Clock().AfterFunc(d, e.onTimeWait)
		return
	}
	e.timeWaitTimer.Reset(d)
}

func (e *endpoint) stopTimeWait() {
	if e.timeWaitTimer != nil {
		e.timeWaitTimer.Stop()
	}
	e.twDeadline = time.Time{}
}

func (e *endpoint) onTimeWait() {
	e.mu.Lock()
	defer e.unlock()
	if e.state != StateTimeWait || e.stack.Clock().Now().Before(e.twDeadline) {
		return
	}
	e.setState(StateClosed, "2*MSL elapsed in TIME-WAIT")
}

// handleTimeWait is segment arrival in TIME-WAIT (RFC 9293 3.10.7.4):
// a RST is ignored (RFC 1337, against TIME-WAIT assassination); a
// retransmitted FIN is ACKed again and restarts the 2*MSL timer; anything
// else gets an ACK. A new SYN whose sequence number lies beyond the old
// incarnation's (RFC 9293 section 3.10.7.4 note, RFC 6191 section 2 without
// timestamps) ends TIME-WAIT early: the listener of the port, returned,
// takes it as a new connection.
func (e *endpoint) handleTimeWait(seg *Segment) *endpoint {
	if seg.has(header.TCPFlagRst) {
		return nil
	}
	if seg.Flags&(header.TCPFlagSyn|header.TCPFlagAck) == header.TCPFlagSyn && e.rcvNxt.LessThan(seg.Seq) {
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

// armFinWait2 bounds FIN-WAIT-2 after a full close, so a peer that never
// sends its FIN cannot pin the TCB (the application can no longer read, so
// nothing is lost). A half-close keeps FIN-WAIT-2 without limit.
func (e *endpoint) armFinWait2() {
	if !e.closed || e.state != StateFinWait2 || e.proto.opts.FinWait2Timeout <= 0 {
		return
	}
	d := e.proto.opts.FinWait2Timeout
	e.fw2Deadline = e.stack.Clock().Now().Add(d)
	if e.finWait2Timer == nil {
		e.finWait2Timer = e.stack.Clock().AfterFunc(d, e.onFinWait2)
		return
	}
	e.finWait2Timer.Reset(d)
}

func (e *endpoint) stopFinWait2() {
	if e.finWait2Timer != nil {
		e.finWait2Timer.Stop()
	}
	e.fw2Deadline = time.Time{}
}

func (e *endpoint) onFinWait2() {
	e.mu.Lock()
	defer e.unlock()
	if e.state != StateFinWait2 || e.fw2Deadline.IsZero() || e.stack.Clock().Now().Before(e.fw2Deadline) {
		return
	}
	e.abort("FIN-WAIT-2 timeout")
}
