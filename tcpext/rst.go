package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// resetFor builds the RST answering seg, choosing sequence and
// acknowledgment numbers from it (RFC 9293 section 3.10.7.1):
//
//	ACK off: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
//	ACK on:  <SEQ=SEG.ACK><CTL=RST>
//
// A RST is never answered with a RST, so ok is false for one.
func resetFor(seg *Segment) (rst Segment, ok bool) {
	if seg.has(header.TCPFlagRst) {
		return Segment{}, false
	}
	rst = Segment{SrcPort: seg.DstPort, DstPort: seg.SrcPort}
	rst.Options.WindowScale = -1
	if seg.has(header.TCPFlagAck) {
		rst.Seq = seg.Ack
		rst.Flags = header.TCPFlagRst
	} else {
		rst.Ack = seg.Seq.Add(seg.seqLen())
		rst.Flags = header.TCPFlagRst | header.TCPFlagAck
	}
	return rst, true
}

// replyReset queues the RST answering seg on this TCB's route.
func (e *endpoint) replyReset(seg *Segment) {
	rst, ok := resetFor(seg)
	if !ok || e.route == nil {
		return
	}
	e.recordSegment(&rst, true, false)
	e.route.Acquire()
	e.out = append(e.out, outPacket{e.route, buildSegment(e.route, &rst)})
	e.counters.RSTsOut++
	e.proto.stats.ResetsSent.Add(1)
	e.proto.stats.SegmentsSent.Add(1)
}

// sendReset queues <SEQ=SND.NXT><CTL=RST>, the abort of RFC 9293 section
// 3.10.4 and 3.10.5, numbered from the highest sequence sent (see sendACK).
func (e *endpoint) sendReset() {
	e.emit(header.TCPFlagRst, e.sndMax, 0, nil)
	e.proto.stats.ResetsSent.Add(1)
}

// challengeACK answers a RST or SYN that is in the window but not exact
// (RFC 5961 sections 3.2 and 4.2), so a blind attacker cannot reset the
// connection while a genuine peer learns where we are.
func (e *endpoint) challengeACK() {
	if !e.proto.allowChallengeACK() {
		e.proto.stats.ChallengeACKsSuppressed.Add(1)
		return
	}
	e.counters.ChallengeACKs++
	e.proto.stats.ChallengeACKs.Add(1)
	e.sendACK()
}

// allowChallengeACK is the stack-wide rate limit of RFC 5961 section 7,
// so challenge ACKs cannot be used to flood or, counted, as a side channel.
func (p *Protocol) allowChallengeACK() bool {
	now := p.stack.Clock().NowMonotonic()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.challengeStart) >= time.Second {
		p.challengeStart, p.challengeCount = now, 0
	}
	if p.challengeCount >= p.opts.ChallengeACKLimit {
		return false
	}
	p.challengeCount++
	return true
}
