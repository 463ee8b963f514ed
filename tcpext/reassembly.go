package tcpext

import (
	"sort"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/waiter"
)

// maxOOOSegments bounds the out-of-order queue by count; its bytes are
// bounded by the receive buffer, since only in-window data is held.
const maxOOOSegments = 512

// oooSegment is data received beyond a gap, held until the gap fills.
type oooSegment struct {
	seq  seqnum.Value
	data []byte
	fin  bool
}

func (s *oooSegment) end() seqnum.Value { return s.seq.Add(seqnum.Size(len(s.data))) }

// holdOutOfOrder keeps a copy of an in-window segment that arrived beyond
// RCV.NXT (RFC 9293 section 3.10.7.4: "segments with higher beginning
// sequence numbers ... may be held for later processing").
func (e *endpoint) holdOutOfOrder(seq seqnum.Value, payload []byte, fin bool) {
	e.counters.OOOSegsIn++
	if len(e.ooo) >= maxOOOSegments || e.oooBytes+len(payload) > e.rcvBufMax-e.rcvQueued() {
		e.counters.OOODropped++
		e.proto.stats.DroppedOOOFull.Add(1)
		return
	}
	e.lastOOO = seq
	s := oooSegment{seq: seq, data: append([]byte(nil), payload...), fin: fin}
	i := sort.Search(len(e.ooo), func(i int) bool { return s.seq.LessThan(e.ooo[i].seq) })
	e.ooo = append(e.ooo, oooSegment{})
	copy(e.ooo[i+1:], e.ooo[i:])
	e.ooo[i] = s
	e.oooBytes += len(payload)
}

// drainOutOfOrder delivers held data that RCV.NXT has now reached, trimming
// overlaps. It reports whether a held FIN was reached.
func (e *endpoint) drainOutOfOrder() (fin bool) {
	i := 0
	for ; i < len(e.ooo); i++ {
		s := &e.ooo[i]
		if e.rcvNxt.LessThan(s.seq) {
			break
		}
		e.oooBytes -= len(s.data)
		if e.rcvNxt.LessThan(s.end()) {
			e.deliver(s.data[s.seq.Size(e.rcvNxt):], nil)
		}
		if s.fin && s.end() == e.rcvNxt {
			fin = true
		}
	}
	e.ooo = e.ooo[:copy(e.ooo, e.ooo[i:])]
	return fin
}

// minSharedPayload is the smallest payload the receive buffer keeps in the
// packet's memory rather than copies: a smaller one would pin a chunk (of a
// NIC frame, or of a sender's buffer in the same process) much larger than
// itself.
const minSharedPayload = 1024

// deliver appends in-order data to the receive buffer and advances RCV.NXT.
// It returns how much fitted. p is part of seg's payload, or of held data
// when seg is nil; a large p is kept by reference to the packet's memory
// (Segment.share).
func (e *endpoint) deliver(p []byte, seg *Segment) int {
	n := min(len(p), e.rcvBufMax-e.rcvQueued())
	if !e.rcvShut && n > 0 {
		if b, ok := seg.share(p[:n]); ok {
			e.rcvBuf.Merge(&b)
		} else {
			e.rcvBuf.Append(buffer.NewViewWithData(p[:n]))
		}
		e.events |= waiter.ReadableEvents
	}
	e.rcvNxt = e.rcvNxt.Add(seqnum.Size(n))
	return n
}

// rcvQueued is how many bytes the receive buffer holds.
func (e *endpoint) rcvQueued() int { return int(e.rcvBuf.Size()) }
