package tcpext

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Zero-window probing (RFC 9293 section 3.8.6.1, RFC 1122 section
// 4.2.2.17). The retransmission timer doubles as the persist timer: while
// the peer's window is closed and data waits, each expiry sends one byte
// past the window so the answer carries the current window. The probes back
// off exponentially and go on without limit as long as the peer answers
// them; only a peer that stops answering fails the connection.

// zeroWindowStall reports whether data waits behind a closed window with
// nothing in flight but, at most, the probe byte.
func (e *endpoint) zeroWindowStall() bool {
	return e.state.synchronized() && e.sndWnd == 0 &&
		e.sndUna.Size(e.sndMax) <= 1 && e.sndUna.LessThan(e.finSeq())
}

// onPersist is a persist-timer expiry.
func (e *endpoint) onPersist() {
	if e.probing && e.ka.lastRecv.Before(e.probeSentAt) && e.rtt.backoff >= maxRetries {
		e.timeout("zero-window probes unanswered")
		return
	}
	e.rtt.backoff = min(e.rtt.backoff+1, maxRetries)
	e.sendZeroWindowProbe()
}

// sendZeroWindowProbe sends the first waiting byte past the closed window.
func (e *endpoint) sendZeroWindowProbe() {
	e.sndNxt = e.sndUna
	e.transmit(header.TCPFlagAck, e.sndNxt, 1)
	e.probeSentAt, e.probing = e.monoNow(), true
	e.counters.WindowProbes++
	e.armRTO()
}

// windowOpened resumes sending when a closed window opens: a probe byte the
// peer did not take is sent again at once, with whatever follows it.
func (e *endpoint) windowOpened() {
	if !e.probing {
		return
	}
	e.probing = false
	if e.sndUna.Size(e.sndNxt) == 1 {
		e.sndNxt = e.sndUna
	}
	e.rtt.backoff = 0
}
