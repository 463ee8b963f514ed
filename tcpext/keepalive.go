package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// keepalive is the per-connection keepalive state (RFC 9293 section 3.8.4).
// It is off unless the application turns it on (SO_KEEPALIVE); the timers
// default to the protocol's Options.Keepalive.
type keepalive struct {
	idle, interval time.Duration
	count          int
	timer          timer
	probes         int                 // unanswered probes sent
	lastRecv       tcpip.MonotonicTime // last segment from the peer
}

// keepaliveStates are where a silent peer can leave a TCB hanging.
func keepaliveState(s State) bool {
	return s == StateEstablished || s == StateCloseWait || s == StateFinWait2
}

// OnKeepAliveSet implements tcpip.SocketOptionsHandler.
func (e *endpoint) OnKeepAliveSet(bool) {
	e.mu.Lock()
	e.armKeepalive()
	e.unlock()
}

// heard notes that the peer is alive.
func (e *endpoint) heard() {
	e.ka.lastRecv = e.monoNow()
	e.ka.probes = 0
}

// armKeepalive (re)starts the keepalive timer for the idle time left, or
// stops it where keepalive does not apply.
func (e *endpoint) armKeepalive() {
	if !e.ops.GetKeepAlive() || !keepaliveState(e.state) {
		e.stopKeepalive()
		return
	}
	d := e.ka.idle
	if e.ka.probes > 0 {
		d = e.ka.interval
	} else {
		// Keepalive states come after the handshake: the peer was heard.
		d -= e.monoNow().Sub(e.ka.lastRecv)
	}
	d = max(d, time.Millisecond)
	e.ka.timer.set(e, d)
}

func (e *endpoint) stopKeepalive() { e.ka.timer.stop() }

// onKeepalive sends a probe after the idle time, then one per interval;
// when count probes go unanswered the connection has failed. A peer that
// rebooted answers the probe with a RST, which resets the connection.
func (e *endpoint) onKeepalive() {
	e.mu.Lock()
	defer e.unlock()
	now := e.stack.Clock().NowMonotonic()
	if !e.expired(&e.ka.timer, "keepalive") || !keepaliveState(e.state) {
		return
	}
	if e.ka.probes == 0 && now.Sub(e.ka.lastRecv) < e.ka.idle {
		e.armKeepalive() // heard from the peer since the timer was set
		return
	}
	if e.ka.probes >= e.ka.count {
		e.fail(&tcpip.ErrTimeout{}, "keepalive: no answer to probes")
		return
	}
	if e.sndUna == e.sndMax {
		// <SEQ=SND.NXT-1><ACK=RCV.NXT>: an old sequence number the peer
		// must answer with an ACK (RFC 9293 section 3.8.4).
		e.emit(header.TCPFlagAck, e.sndMax-1, 0, nil)
		e.counters.KeepaliveProbes++
	}
	// With data outstanding the retransmission timer probes already;
	// the count still runs so a dead peer is found as promptly.
	e.ka.probes++
	e.armKeepalive()
}
