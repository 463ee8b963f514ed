package tcpext

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// Urgent data is inline, as RFC 6093 section 6 asks of new applications:
// the urgent pointer marks where it ends (the sequence number of the byte
// after the last urgent byte, RFC 6093 section 4) but the bytes stay in the
// stream.

// WriteUrgent queues p as urgent data on a tcpext endpoint: segments sent
// before the end of p carry URG and the urgent pointer.
func WriteUrgent(ep tcpip.Endpoint, p tcpip.Payloader) (int64, tcpip.Error) {
	e, ok := ep.(*endpoint)
	if !ok {
		return 0, &tcpip.ErrNotSupported{}
	}
	return e.write(p, true)
}

// markUrgent sets URG and the pointer on a segment below SND.UP.
func (e *endpoint) markUrgent(seg *Segment) {
	if e.sndUrgent && seg.Seq.LessThan(e.sndUp) && seg.Flags&header.TCPFlagRst == 0 {
		seg.Flags |= header.TCPFlagUrg
		seg.Urgent = uint16(min(seg.Seq.Size(e.sndUp), 0xffff))
	}
}

// urgentAcked ends urgent mode once SND.UNA passes SND.UP.
func (e *endpoint) urgentAcked() {
	if e.sndUrgent && !e.sndUna.LessThan(e.sndUp) {
		e.sndUrgent = false
	}
}

// receiveUrgent advances RCV.UP from a segment with URG (RFC 9293 section
// 3.10.7.4, sixth step); the data itself is delivered inline.
func (e *endpoint) receiveUrgent(seg *Segment) {
	if !seg.has(header.TCPFlagUrg) {
		return
	}
	switch e.state {
	case StateEstablished, StateFinWait1, StateFinWait2:
	default:
		return
	}
	up := seg.Seq.Add(seqnum.Size(seg.Urgent))
	if !e.rcvUrgent || e.rcvUp.LessThan(up) {
		e.rcvUp, e.rcvUrgent = up, true
		e.counters.UrgentIn++
	}
}
