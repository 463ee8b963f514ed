package tcpext

import "gvisor.dev/gvisor/pkg/tcpip/seqnum"

// Deciding when a segment shorter than a full one may go: the sender side
// of silly window syndrome avoidance (RFC 9293 section 3.8.6.2.1) for
// segments cut short by the window, and Nagle's algorithm (RFC 9293 section
// 3.7.4, RFC 1122 section 4.2.3.4) for segments cut short by the data. Nagle
// is on unless the application asks for no delay (TCP_NODELAY); it uses
// Minshall's refinement, holding a short segment back only while an earlier
// short one is unacknowledged, so a write's tail goes out at once. Once the
// application has closed, no later write can join a short segment, so
// Nagle holds nothing back and the FIN goes with the last data (as Linux
// pushes with Nagle off when it queues its FIN).

// holdShort reports whether a segment of n bytes, shorter than a full one,
// should wait for an ACK. dataLimited says the data ran out before the
// window did.
func (e *endpoint) holdShort(n seqnum.Size, dataLimited bool) bool {
	if int(n) >= e.maxPayload() || e.sndUna == e.sndMax || e.sndNxt.LessThan(e.sndMax) {
		// Full-sized, nothing in flight (no ACK is coming to wait for),
		// or a retransmission, which the rules do not delay.
		return false
	}
	if !dataLimited {
		return n < e.maxSndWnd/2
	}
	return e.ops.GetDelayOption() && !e.finQueued && e.sndUna.LessThan(e.shortEnd)
}

// sentShort records a short data segment for Minshall's rule.
func (e *endpoint) sentShort(end seqnum.Value) {
	e.shortEnd = end
}
