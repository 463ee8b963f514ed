package tcpext

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// close is the CLOSE call of RFC 9293 section 3.10.4 for a full close.
func (e *endpoint) close() {
	switch e.state {
	case StateClosed:
		e.cleanup()
	case StateListen:
		// Lock order is child before listener, so the unaccepted children
		// are reset after the listener's lock is released.
		e.lq.orphans = append(e.lq.orphans, e.closeListener()...)
	case StateSynSent:
		e.setState(StateClosed, "close in SYN-SENT")
	case StateSynReceived:
		// Nothing can be queued before ESTABLISHED, so the FIN goes now
		// (RFC 9293 section 3.10.4, SYN-RECEIVED → FIN-WAIT-1).
		e.finQueued = true
		e.setState(StateFinWait1, "close in SYN-RECEIVED")
		e.stopRTO()
		e.sendPending()
	case StateEstablished, StateCloseWait:
		if e.rcvQueued() > 0 {
			// Data the application will never read: reset rather than
			// pretend an orderly close (RFC 2525 section 2.17).
			e.abort("close with unread data")
			return
		}
		e.queueFIN()
	case StateFinWait2:
		e.armFinWait2()
	}
}

// queueFIN ends our direction of the connection: ESTABLISHED → FIN-WAIT-1,
// CLOSE-WAIT → LAST-ACK. In SYN-RECEIVED the FIN waits for ESTABLISHED.
func (e *endpoint) queueFIN() {
	if e.finQueued {
		return
	}
	e.finQueued = true
	switch e.state {
	case StateEstablished:
		e.setState(StateFinWait1, "close")
	case StateCloseWait:
		e.setState(StateLastAck, "close")
	}
	e.sendPending()
}

// abort is the ABORT call (RFC 9293 section 3.10.5): a RST to a
// synchronized peer, queued data dropped, straight to CLOSED.
func (e *endpoint) abort(cause string) {
	switch e.state {
	case StateListen:
		e.lq.orphans = append(e.lq.orphans, e.closeListener()...)
		return
	case StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait:
		e.sendReset()
	}
	if e.hardError == nil {
		e.hardError = &tcpip.ErrConnectionAborted{}
	}
	e.sndBuf.Release()
	e.setState(StateClosed, cause)
}

// fail ends the connection with err for the application, e.g. a RST from
// the peer (RFC 9293 section 3.10.7.4, second step).
func (e *endpoint) fail(err tcpip.Error, cause string) {
	e.hardError = err
	e.lastError = err
	e.sndBuf.Release()
	e.setState(StateClosed, cause)
}

// cleanup releases everything a CLOSED TCB holds: timers, its demuxer
// entry, its port, its route and its row in the TCB table.
func (e *endpoint) cleanup() {
	e.stopRTO()
	e.stopTimeWait()
	e.stopFinWait2()
	e.stopKeepalive()
	e.delackTimer.stop()
	e.tlp.timer.stop()
	if e.inDemux {
		e.proto.unregister(e)
	}
	if e.portHeld {
		e.proto.releasePort(e, e.tid.LocalPort)
		e.portHeld = false
	}
	if e.route != nil {
		e.route.Release()
		e.route = nil
	}
	if l := e.listener; l != nil {
		e.listener = nil
		l.leaveSynQueue()
	}
	e.proto.untrack(e)
	e.events |= waiter.EventIn | waiter.EventOut | waiter.EventHUp | waiter.EventErr
}
