package main

import (
	"strings"
	"time"

	"github.com/synfin/synfin/tcpext"
)

// conn is a dump seen from the side of one direction of data: the sender's
// segments and the receiver's ACKs, windows and SACK blocks, with sequence
// numbers relative to the sender's initial sequence number, as Wireshark
// shows them.
type conn struct {
	dump tcpext.TCBDump
	// out is true when the data is the firmware's (seg_out), false when
	// it is the peer's (seg_in).
	out   bool
	start time.Time
	end   float64 // seconds from start to the last event

	segs     []dataSeg
	acks     []ackPoint
	sacks    []sackRange
	cwnd     []cwndPoint
	zeroWins []span
	marks    []mark
	states   []mark

	retransmits, rtos, fastRetransmits int
}

// dataSeg is one segment of the data direction.
type dataSeg struct {
	t          float64
	seq, end   int64 // relative; end is exclusive
	syn, fin   bool
	retransmit bool
	ev         int // index into the dump's events
}

// ackPoint is the receiver's acknowledgement and window at a moment.
type ackPoint struct {
	t       float64
	ack     int64
	winEdge int64 // ack + window: the right edge of the receive window
}

type sackRange struct {
	t          float64
	start, end int64
}

type cwndPoint struct {
	t    float64
	cwnd int64
}

// span is a stretch of time, such as a zero-window stall.
type span struct{ from, to float64 }

// mark is a labelled moment: an RTO, a fast retransmit, a RST, a state
// change.
type mark struct {
	t     float64
	kind  string // "rto", "fast-retransmit", "rst", "state", "persist"
	label string
}

// rel is the distance from base to seq in sequence space, so wrapping does
// not matter.
func rel(seq, base uint32) int64 { return int64(seq - base) }

func hasFlag(flags, name string) bool {
	for f := range strings.SplitSeq(flags, "|") {
		if f == name {
			return true
		}
	}
	return false
}

// bytesEachWay counts the payload the firmware sent and received.
func bytesEachWay(d tcpext.TCBDump) (out, in int64) {
	for _, ev := range d.Events {
		if ev.Seg == nil {
			continue
		}
		switch ev.Kind {
		case tcpext.EventSegOut:
			out += int64(ev.Seg.Len)
		case tcpext.EventSegIn:
			in += int64(ev.Seg.Len)
		}
	}
	return out, in
}

// analyze reads a dump for the data flowing out (from the firmware) or in.
func analyze(d tcpext.TCBDump, out bool) *conn {
	c := &conn{dump: d, out: out}
	if len(d.Events) == 0 {
		return c
	}
	c.start = d.Events[0].At
	// Sequence numbers of data count from the sender's ISN, ACKs of it
	// too; the receiver's window is scaled by the shift it announced. The
	// ISN is the TCB's, so the numbers agree with show tcb even when the
	// handshake has left the ring.
	dataKind, ackKind := tcpext.EventSegOut, tcpext.EventSegIn
	base, shift := d.TCB.ISS, d.TCB.SndWScale
	if !out {
		dataKind, ackKind = tcpext.EventSegIn, tcpext.EventSegOut
		base, shift = d.TCB.IRS, d.TCB.RcvWScale
	}
	shift = max(shift, 0)
	var (
		highest  int64 = -1 << 62
		zeroFrom       = -1.0
	)
	for i, ev := range d.Events {
		t := ev.At.Sub(c.start).Seconds()
		c.end = max(c.end, t)
		switch {
		case ev.Kind == dataKind && ev.Seg != nil:
			s := ev.Seg
			seq := rel(s.Seq, base)
			syn, fin := hasFlag(s.Flags, "SYN"), hasFlag(s.Flags, "FIN")
			end := seq + int64(s.Len)
			if syn {
				end++
			}
			if fin {
				end++
			}
			if end > seq {
				retx := s.Retransmit || (!out && s.Len > 0 && seq < highest)
				c.segs = append(c.segs, dataSeg{t: t, seq: seq, end: end, syn: syn, fin: fin, retransmit: retx, ev: i})
				if retx {
					c.retransmits++
				}
				highest = max(highest, end)
			}
			if out && ev.Cwnd != 0 {
				c.cwnd = append(c.cwnd, cwndPoint{t, int64(ev.Cwnd)})
			}
			if hasFlag(s.Flags, "RST") {
				c.marks = append(c.marks, mark{t, "rst", "RST " + dirWord(ev.Kind)})
			}
		case ev.Kind == ackKind && ev.Seg != nil:
			s := ev.Seg
			if hasFlag(s.Flags, "RST") {
				c.marks = append(c.marks, mark{t, "rst", "RST " + dirWord(ev.Kind)})
				continue
			}
			if !hasFlag(s.Flags, "ACK") {
				continue
			}
			win := int64(s.Window)
			if !hasFlag(s.Flags, "SYN") {
				win <<= shift
			}
			a := rel(s.Ack, base)
			c.acks = append(c.acks, ackPoint{t: t, ack: a, winEdge: a + win})
			for _, b := range s.SACK {
				c.sacks = append(c.sacks, sackRange{t, rel(b[0], base), rel(b[1], base)})
			}
			switch {
			case win == 0 && zeroFrom < 0:
				zeroFrom = t
			case win > 0 && zeroFrom >= 0:
				c.zeroWins = append(c.zeroWins, span{zeroFrom, t})
				zeroFrom = -1
			}
		case ev.Kind == tcpext.EventCC:
			if out && ev.Cwnd != 0 {
				c.cwnd = append(c.cwnd, cwndPoint{t, int64(ev.Cwnd)})
			}
			switch ev.Cause {
			case "rto":
				c.rtos++
				c.marks = append(c.marks, mark{t, "rto", "RTO"})
			case "fast-retransmit":
				c.fastRetransmits++
				c.marks = append(c.marks, mark{t, "fast-retransmit", "fast retransmit"})
			}
		case ev.Kind == tcpext.EventTimer && ev.Timer == "persist":
			c.marks = append(c.marks, mark{t, "persist", "persist"})
		case ev.Kind == tcpext.EventState:
			c.states = append(c.states, mark{t, "state", ev.To})
		}
	}
	if zeroFrom >= 0 {
		c.zeroWins = append(c.zeroWins, span{zeroFrom, c.end})
	}
	return c
}

func dirWord(kind string) string {
	if kind == tcpext.EventSegOut {
		return "sent"
	}
	return "received"
}

// seqRange is the span of sequence space the picture must show.
func (c *conn) seqRange() (lo, hi int64) {
	lo, hi = 0, 1
	first := true
	grow := func(v int64) {
		if first {
			lo, hi, first = v, v+1, false
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	for _, s := range c.segs {
		grow(s.seq)
		grow(s.end)
	}
	for _, a := range c.acks {
		grow(a.ack)
		grow(a.winEdge)
	}
	for _, s := range c.sacks {
		grow(s.start)
		grow(s.end)
	}
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

// longestStall is the longest zero-window span.
func (c *conn) longestStall() float64 {
	var m float64
	for _, z := range c.zeroWins {
		m = max(m, z.to-z.from)
	}
	return m
}
