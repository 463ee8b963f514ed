package tcpext

import (
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// SACK (RFC 2018): on when both SYNs carried SACK-permitted. As receiver
// we report the out-of-order data we hold; as sender we keep the blocks the
// peer reports in a scoreboard for loss recovery (RFC 6675).

// sackBlocks fills o with the blocks to send: a D-SACK block first if a
// duplicate just arrived (RFC 2883), then the block holding the most
// recently received segment (RFC 2018 section 4), then the others, as many
// as fit beside the other options. A D-SACK is reported once.
func (e *endpoint) sackBlocks(o *SegmentOptions) {
	e.addSACKBlocks(o)
	e.dsackPending = false
}

// addSACKBlocks is sackBlocks without using up the D-SACK.
func (e *endpoint) addSACKBlocks(o *SegmentOptions) {
	if !e.sackOK || (len(e.ooo) == 0 && !e.dsackPending) {
		return
	}
	room := (maxOptionsLen - o.Len() - 4) / 8
	add := func(start, end seqnum.Value) {
		if o.NumSACK < min(room, maxSACKBlocks) {
			o.SACK[o.NumSACK] = SACKBlock{uint32(start), uint32(end)}
			o.NumSACK++
		}
	}
	if e.dsackPending {
		add(e.dsack.Start, e.dsack.End)
	}
	ranges := e.oooRanges()
	for _, r := range ranges {
		if r.contains(e.lastOOO) {
			add(r.Start, r.End)
		}
	}
	for _, r := range ranges {
		if !r.contains(e.lastOOO) {
			add(r.Start, r.End)
		}
	}
}

// seqRange is [Start, End) in sequence space.
type seqRange struct{ Start, End seqnum.Value }

func (r seqRange) contains(v seqnum.Value) bool { return v.InRange(r.Start, r.End) }

// oooRanges merges the held out-of-order segments into contiguous ranges.
func (e *endpoint) oooRanges() []seqRange {
	var rs []seqRange
	for _, s := range e.ooo {
		if n := len(rs); n > 0 && !rs[n-1].End.LessThan(s.seq) {
			if rs[n-1].End.LessThan(s.end()) {
				rs[n-1].End = s.end()
			}
			continue
		}
		rs = append(rs, seqRange{s.seq, s.end()})
	}
	return rs
}

// noteDuplicate remembers a duplicate segment for a D-SACK report.
func (e *endpoint) noteDuplicate(seg *Segment) {
	if e.sackOK && len(seg.Payload) > 0 {
		e.dsack = seqRange{seg.Seq, seg.Seq.Add(seqnum.Size(len(seg.Payload)))}
		e.dsackPending = true
	}
}

// scoreboard is the sender's record of SACKed ranges above SND.UNA,
// sorted and merged (RFC 6675 section 2), and of the retransmissions still
// awaiting their ACK.
type scoreboard struct {
	blocks []seqRange
	// rxt marks the latest retransmissions, oldest first, each with
	// SND.MAX when it was sent. Everything sent after a retransmission
	// lies above that mark (new data goes out in sequence order), so data
	// SACKed well above the mark shows the retransmission was lost: the
	// sequence-ordered form of RACK's rule (RFC 8985 section 6.2).
	rxt  [maxRxtMarks]rxtMark
	nrxt uint8
	// lostBelow: the holes below lostTo are lost, whatever DupThresh
	// says, as RACK found them once a segment sent after them was SACKed
	// (tlp.go).
	lostBelow bool
	lostTo    seqnum.Value
}

// maxRxtMarks bounds the retransmissions watched for loss: the holes of
// one window rarely number more. Those beyond it fall back to the
// retransmission timer.
const maxRxtMarks = 4

// rxtMark is a retransmission from seq, sent when SND.MAX was high.
type rxtMark struct{ seq, high seqnum.Value }

// update adds the peer's SACK blocks, ignoring D-SACKs and anything at or
// below SND.UNA or beyond what was sent. It reports whether they SACKed
// octets the scoreboard did not hold (what makes an ACK a duplicate ACK
// under RFC 6675 section 2).
func (sb *scoreboard) update(o *SegmentOptions, una, max seqnum.Value) bool {
	before := sb.sackedBytes()
	for _, b := range o.SACK[:o.NumSACK] {
		r := seqRange{seqnum.Value(b.Start), seqnum.Value(b.End)}
		if !una.LessThan(r.End) || max.LessThan(r.End) || !r.Start.LessThan(r.End) {
			continue
		}
		if r.Start.LessThan(una) {
			r.Start = una
		}
		sb.insert(r)
	}
	return sb.sackedBytes() != before
}

// insert merges r into the sorted blocks in place.
func (sb *scoreboard) insert(r seqRange) {
	i := 0
	for i < len(sb.blocks) && sb.blocks[i].End.LessThan(r.Start) {
		i++
	}
	j := i
	for j < len(sb.blocks) && !r.End.LessThan(sb.blocks[j].Start) {
		if sb.blocks[j].Start.LessThan(r.Start) {
			r.Start = sb.blocks[j].Start
		}
		if r.End.LessThan(sb.blocks[j].End) {
			r.End = sb.blocks[j].End
		}
		j++
	}
	switch {
	case j > i: // r absorbed blocks i..j-1
		sb.blocks[i] = r
		sb.blocks = append(sb.blocks[:i+1], sb.blocks[j:]...)
	default:
		sb.blocks = append(sb.blocks, seqRange{})
		copy(sb.blocks[i+1:], sb.blocks[i:])
		sb.blocks[i] = r
	}
}

// ack drops what the cumulative ACK now covers.
func (sb *scoreboard) ack(una seqnum.Value) {
	i := 0
	for _, b := range sb.blocks {
		if !una.LessThan(b.End) {
			continue
		}
		if b.Start.LessThan(una) {
			b.Start = una
		}
		sb.blocks[i] = b
		i++
	}
	sb.blocks = sb.blocks[:i]
	n := 0
	for _, m := range sb.rxt[:sb.nrxt] {
		if !m.seq.LessThan(una) {
			sb.rxt[n] = m
			n++
		}
	}
	sb.nrxt = uint8(n)
	if sb.lostBelow && !una.LessThan(sb.lostTo) {
		sb.lostBelow = false
	}
}

// markLost deems every hole below seq lost.
func (sb *scoreboard) markLost(seq seqnum.Value) {
	if !sb.lostBelow || sb.lostTo.LessThan(seq) {
		sb.lostBelow, sb.lostTo = true, seq
	}
}

// nextHole returns the first unSACKed range at or after from, below the
// highest SACKed sequence (RFC 6675 NextSeg rule 1), if any.
func (sb *scoreboard) nextHole(from seqnum.Value) (seqRange, bool) {
	for _, b := range sb.blocks {
		if from.LessThan(b.Start) {
			return seqRange{from, b.Start}, true
		}
		if from.LessThan(b.End) {
			from = b.End
		}
	}
	return seqRange{}, false
}

// sackedAt returns the SACKed block holding seq, if any.
func (sb *scoreboard) sackedAt(seq seqnum.Value) (seqRange, bool) {
	for _, b := range sb.blocks {
		if b.contains(seq) {
			return b, true
		}
	}
	return seqRange{}, false
}

// nextSACKed is the start of the first SACKed block above seq, or limit.
func (sb *scoreboard) nextSACKed(seq, limit seqnum.Value) seqnum.Value {
	for _, b := range sb.blocks {
		if seq.LessThan(b.Start) && b.Start.LessThan(limit) {
			return b.Start
		}
	}
	return limit
}

// isLost is RFC 6675's IsLost (section 4) for the octet at seq: more than
// (DupThresh-1)*SMSS bytes SACKed above it; or RACK found it lost.
func (sb *scoreboard) isLost(seq seqnum.Value, smss int) bool {
	return sb.lostBelow && seq.LessThan(sb.lostTo) || sb.sackedAbove(seq) > (dupThresh-1)*smss
}

// sackedAbove is how much is SACKed beyond seq.
func (sb *scoreboard) sackedAbove(seq seqnum.Value) int {
	n := 0
	for _, b := range sb.blocks {
		switch {
		case seq.LessThan(b.Start):
			n += int(b.Start.Size(b.End))
		case seq.LessThan(b.End):
			n += int(seq.Size(b.End))
		}
	}
	return n
}

// sackedBelow is how much is SACKed before seq.
func (sb *scoreboard) sackedBelow(seq seqnum.Value) int {
	return sb.sackedBytes() - sb.sackedAbove(seq)
}

// lostBytes is how much of the holes at or after from is lost by isLost: a
// hole with more than (DupThresh-1)*SMSS bytes SACKed above it (RFC 6675
// section 4), or the part of one below RACK's mark.
func (sb *scoreboard) lostBytes(from seqnum.Value, smss int) int {
	lost, above := 0, 0
	for i := len(sb.blocks) - 1; i >= 0; i-- {
		b := sb.blocks[i]
		above += int(b.Start.Size(b.End))
		start := from
		if i > 0 && start.LessThan(sb.blocks[i-1].End) {
			start = sb.blocks[i-1].End
		}
		switch {
		case !start.LessThan(b.Start):
		case above > (dupThresh-1)*smss:
			lost += int(start.Size(b.Start))
		case sb.lostBelow && start.LessThan(sb.lostTo):
			end := b.Start
			if sb.lostTo.LessThan(end) {
				end = sb.lostTo
			}
			lost += int(start.Size(end))
		}
	}
	return lost
}

// sackedBytes is how much of the flight the peer holds.
func (sb *scoreboard) sackedBytes() int {
	n := 0
	for _, b := range sb.blocks {
		n += int(b.Start.Size(b.End))
	}
	return n
}

// markRetransmit notes a retransmission from seq, sent at SND.MAX high.
func (sb *scoreboard) markRetransmit(seq, high seqnum.Value) {
	for i := range sb.rxt[:sb.nrxt] {
		if sb.rxt[i].seq == seq {
			sb.rxt[i].high = high
			return
		}
	}
	if int(sb.nrxt) < len(sb.rxt) {
		sb.rxt[sb.nrxt] = rxtMark{seq, high}
		sb.nrxt++
	}
}

// retransmitLost reports whether the retransmission from seq is lost:
// more than (DupThresh-1)*SMSS bytes sent after it have been SACKed, as
// IsLost judges an original transmission.
func (sb *scoreboard) retransmitLost(seq seqnum.Value, smss int) bool {
	for _, m := range sb.rxt[:sb.nrxt] {
		if m.seq == seq {
			return sb.isLost(m.high, smss)
		}
	}
	return false
}
