package impair

import (
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Line carries the packets of one direction through an Impairer: Send
// decides each packet's fate and hands its copies to deliver, at once or,
// when delayed, from a timer on the Impairer's clock. Copies due at the
// same time are handed on in the order they were sent, so without jitter a
// Line keeps the packet order.
//
// deliver gets a reference it does not own: it must IncRef (or Clone) a
// packet it keeps beyond the call. It runs on the sender's goroutine or the
// clock's timer goroutine (on a manual clock, the one advancing it), one
// call at a time for delayed copies.
type Line struct {
	im      *Impairer
	deliver func(*stack.PacketBuffer)

	mu       sync.Mutex
	q        pendingHeap
	seq      uint64
	timer    tcpip.Timer
	draining bool
	closed   bool
}

// NewLine returns a Line through im to deliver.
func NewLine(im *Impairer, deliver func(*stack.PacketBuffer)) *Line {
	return &Line{im: im, deliver: deliver}
}

// Impairer returns the Line's Impairer.
func (l *Line) Impairer() *Impairer { return l.im }

// Send offers one packet. The caller keeps its reference. Bits are flipped
// only in a copy, never in pkt's own buffer, which the sending stack may
// still share (its retransmission queue, say); the link header, as far as
// pkt has one pushed or consumed, is left alone.
func (l *Line) Send(pkt *stack.PacketBuffer) {
	skip := len(pkt.LinkHeader().Slice())
	clock := l.im.Clock()
	now := clock.NowMonotonic()
	var dbuf [2]Delivery
	ds := l.im.AppendDecisions(dbuf[:0], now, pkt.Size()-skip)
	if len(ds) == 0 {
		return
	}
	var pbuf [2]*stack.PacketBuffer
	direct := pbuf[:0]
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	for _, d := range ds {
		var p *stack.PacketBuffer
		if d.Flip >= 0 {
			p = corruptCopy(pkt, skip, d.Flip)
		} else {
			p = pkt.Clone()
		}
		// A copy due now goes at once, unless copies due no later are
		// still waiting: it must not overtake them.
		if !d.At.After(now) && !l.draining && (len(l.q) == 0 || l.q[0].at.After(d.At)) {
			direct = append(direct, p)
			continue
		}
		l.seq++
		l.q.push(pending{at: d.At, seq: l.seq, pkt: p})
		if l.q[0].pkt == p {
			l.armLocked(now)
		}
	}
	l.mu.Unlock()
	for _, p := range direct {
		l.deliver(p)
		p.DecRef()
	}
}

// armLocked sets the timer for the earliest waiting copy.
func (l *Line) armLocked(now tcpip.MonotonicTime) {
	d := l.q[0].at.Sub(now)
	if l.timer == nil {
		l.timer = l.im.Clock().AfterFunc(d, l.fire)
		return
	}
	l.timer.Reset(d)
}

// fire hands on every copy that is due, one at a time and in order.
func (l *Line) fire() {
	l.mu.Lock()
	if l.draining {
		// The running drain takes whatever became due meanwhile.
		l.mu.Unlock()
		return
	}
	l.draining = true
	clock := l.im.Clock()
	for {
		now := clock.NowMonotonic()
		if l.closed || len(l.q) == 0 {
			break
		}
		if l.q[0].at.After(now) {
			l.armLocked(now)
			break
		}
		p := l.q.pop()
		l.mu.Unlock()
		l.deliver(p.pkt)
		p.pkt.DecRef()
		l.mu.Lock()
	}
	l.draining = false
	l.mu.Unlock()
}

// Pending returns the number of copies waiting for their time.
func (l *Line) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.q)
}

// NextDue returns when the earliest waiting copy is due, if any.
func (l *Line) NextDue() (tcpip.MonotonicTime, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.q) == 0 {
		return tcpip.MonotonicTime{}, false
	}
	return l.q[0].at, true
}

// Close drops every waiting copy and every packet sent from now on.
func (l *Line) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	for _, p := range l.q {
		p.pkt.DecRef()
	}
	l.q = nil
}

// corruptCopy returns a fresh packet holding pkt's bytes with one bit of
// its network-layer part flipped, and pkt's link header (skip bytes)
// consumed again so that the copy looks to the next layer like pkt.
func corruptCopy(pkt *stack.PacketBuffer, skip, bit int) *stack.PacketBuffer {
	v := pkt.ToView()
	b := v.AsSlice()
	b[skip+bit/8] ^= 0x80 >> (bit % 8)
	p := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	if skip > 0 {
		p.LinkHeader().Consume(skip)
	}
	p.NetworkProtocolNumber = pkt.NetworkProtocolNumber
	p.TransportProtocolNumber = pkt.TransportProtocolNumber
	p.PktType = pkt.PktType
	p.EgressRoute = pkt.EgressRoute
	p.NICID = pkt.NICID
	p.Hash = pkt.Hash
	p.Owner = pkt.Owner
	return p
}

// pending is a copy waiting for its time; seq keeps copies due at the same
// time in the order they were sent.
type pending struct {
	at  tcpip.MonotonicTime
	seq uint64
	pkt *stack.PacketBuffer
}

// pendingHeap is a min-heap by (at, seq). It does its own sifting rather
// than use container/heap, whose interface would box every element it
// pushes and pops: an allocation per packet.
type pendingHeap []pending

func (h pendingHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}

func (h *pendingHeap) push(p pending) {
	*h = append(*h, p)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q.less(i, parent) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

func (h *pendingHeap) pop() pending {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = pending{}
	q = q[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(q) && q.less(l, small) {
			small = l
		}
		if r < len(q) && q.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		q[i], q[small] = q[small], q[i]
		i = small
	}
	*h = q
	return top
}
