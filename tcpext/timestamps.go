package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// Timestamps (RFC 7323 sections 3 to 5): on only if both SYNs carried the
// option; then every segment but a RST carries one. They give RTT samples
// that retransmissions cannot make ambiguous, and PAWS.

// pawsIdle is how old TS.Recent may grow before PAWS stops trusting it
// (RFC 7323 section 5.5: 24 days).
const pawsIdle = 24 * 24 * time.Hour

// tsNow is our timestamp clock: milliseconds plus a per-connection offset,
// so the clock's value leaks nothing (RFC 7323 section 5.4).
func (e *endpoint) tsNow() uint32 {
	ms := uint32(e.monoNow().Sub(e.proto.epoch) / time.Millisecond)
	return ms + e.tsOffset
}

// negotiateTimestamps applies the peer's SYN.
func (e *endpoint) negotiateTimestamps(seg *Segment) {
	e.tsOK = seg.Options.Timestamps
	if e.tsOK {
		e.tsRecent = seg.Options.TSVal
		e.tsRecentAt = e.monoNow()
	}
}

// pawsReject is the PAWS test (RFC 7323 section 5.3): a segment whose
// timestamp is older than TS.Recent is an old duplicate.
func (e *endpoint) pawsReject(seg *Segment) bool {
	if !e.tsOK || !seg.Options.Timestamps || seg.has(header.TCPFlagRst) {
		return false
	}
	if int32(seg.Options.TSVal-e.tsRecent) >= 0 || e.disorderedACK(seg) {
		return false
	}
	return e.monoNow().Sub(e.tsRecentAt) < pawsIdle
}

// disorderedACK is a pure duplicate ACK that the network reordered behind
// a newer segment: it changes nothing, so PAWS lets it through rather than
// answer it with an ACK of our own, as Linux does (tcp_disordered_ack).
// PAWS exists to keep old data out (RFC 7323 section 5.1); such an ACK
// carries none, and its timestamp is at most an RTO older than TS.Recent.
func (e *endpoint) disorderedACK(seg *Segment) bool {
	return seg.Flags == header.TCPFlagAck && len(seg.Payload) == 0 &&
		seg.Seq == e.rcvNxt && seg.Ack == e.sndUna &&
		seqnum.Size(seg.Window)<<e.sndWScale == e.sndWnd &&
		int64(e.tsRecent-seg.Options.TSVal) <= e.rtt.current().Milliseconds()
}

// updateTSRecent keeps the timestamp to echo (RFC 7323 section 4.3): the
// newest one from a segment that covers the last ACK we sent.
func (e *endpoint) updateTSRecent(seg *Segment) {
	if !e.tsOK || !seg.Options.Timestamps {
		return
	}
	if int32(seg.Options.TSVal-e.tsRecent) >= 0 && seg.Seq.LessThanEq(e.lastAckSent) {
		e.tsRecent = seg.Options.TSVal
		e.tsRecentAt = e.monoNow()
	}
}

// tsRTT is the round-trip time an echoed timestamp measures, or 0.
func (e *endpoint) tsRTT(seg *Segment) time.Duration {
	if !e.tsOK || !seg.Options.Timestamps || seg.Options.TSEcr == 0 {
		return 0
	}
	d := int32(e.tsNow() - seg.Options.TSEcr)
	if d < 0 {
		return 0
	}
	return max(time.Duration(d)*time.Millisecond, clockGranule)
}
