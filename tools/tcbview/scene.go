package main

import (
	"fmt"
	"image/color"
	"math"
	"strconv"
)

// A scene is the picture as a list of primitives in pixel coordinates.
// The SVG and the PNG are both drawn from it, so they show the same thing.
type scene struct {
	w, h  float64
	prims []prim
}

type primKind int

const (
	primLine     primKind = iota // a polyline: pts
	primRect                     // filled: pts[0] is the top left, pts[1] the bottom right
	primDiamond                  // a filled marker centred on pts[0], radius width
	primText                     // text at pts[0] (baseline), anchored by anchor
	primTextVert                 // text rotated to read upwards, centred on pts[0]
)

type pt struct{ x, y float64 }

type prim struct {
	kind   primKind
	class  string // the SVG class: what the primitive shows
	pts    []pt
	color  color.RGBA
	width  float64
	dash   bool
	text   string
	anchor string // start, middle, end
	title  string // an SVG tooltip
}

// Colours of the time-sequence graph, after tcptrace's: data black,
// retransmissions red, ACKs green, the receive window yellow-brown, SACKs
// purple, cwnd blue.
var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colAxis       = color.RGBA{60, 60, 60, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colData       = color.RGBA{20, 20, 20, 255}
	colRetransmit = color.RGBA{220, 20, 20, 255}
	colACK        = color.RGBA{0, 150, 0, 255}
	colWindow     = color.RGBA{200, 150, 0, 255}
	colSACK       = color.RGBA{150, 60, 200, 255}
	colCwnd       = color.RGBA{30, 100, 230, 255}
	colZeroWin    = color.RGBA{255, 60, 60, 50}
	colRTO        = color.RGBA{220, 20, 20, 255}
	colFastRetx   = color.RGBA{240, 130, 0, 255}
	colState      = color.RGBA{110, 110, 110, 255}
	colText       = color.RGBA{0, 0, 0, 255}
)

func (s *scene) add(p prim) { s.prims = append(s.prims, p) }

func (s *scene) line(class string, c color.RGBA, width float64, dash bool, pts ...pt) {
	s.add(prim{kind: primLine, class: class, pts: pts, color: c, width: width, dash: dash})
}

func (s *scene) text(class string, x, y float64, anchor, text string) {
	s.add(prim{kind: primText, class: class, pts: []pt{{x, y}}, color: colText, text: text, anchor: anchor})
}

// Layout of the graph.
const (
	canvasW      = 1280
	canvasH      = 760
	marginLeft   = 100
	marginRight  = 100
	marginTop    = 70
	marginBottom = 120
)

// layout lays c out as a time-sequence graph.
func layout(c *conn) *scene {
	s := &scene{w: canvasW, h: canvasH}
	s.add(prim{kind: primRect, class: "background", pts: []pt{{0, 0}, {canvasW, canvasH}}, color: colBackground})
	x0, x1 := float64(marginLeft), float64(canvasW-marginRight)
	y0, y1 := float64(canvasH-marginBottom), float64(marginTop) // y grows down
	tmax := c.end
	if tmax <= 0 {
		tmax = 0.001
	}
	lo, hi := c.seqRange()
	X := func(t float64) float64 { return x0 + (x1-x0)*t/tmax }
	Y := func(v int64) float64 { return y0 - (y0-y1)*float64(v-lo)/float64(hi-lo) }

	// Zero-window stalls first, as a band behind everything.
	for _, z := range c.zeroWins {
		right := max(X(z.to), X(z.from)+3)
		s.add(prim{kind: primRect, class: "zero-window", pts: []pt{{X(z.from), y1}, {right, y0}}, color: colZeroWin,
			title: fmt.Sprintf("zero window for %s", seconds(z.to-z.from))})
		s.text("zero-window-label", (X(z.from)+right)/2, y1+14, "middle", "zero window "+seconds(z.to-z.from))
	}

	// Grid and axes.
	for _, t := range ticks(0, tmax, 10) {
		s.line("grid", colGrid, 1, false, pt{X(t), y0}, pt{X(t), y1})
		s.line("axis", colAxis, 1, false, pt{X(t), y0}, pt{X(t), y0 + 5})
		s.text("axis", X(t), y0+18, "middle", seconds(t))
	}
	for _, v := range ticks(float64(lo), float64(hi), 8) {
		y := Y(int64(v))
		s.line("grid", colGrid, 1, false, pt{x0, y}, pt{x1, y})
		s.line("axis", colAxis, 1, false, pt{x0 - 5, y}, pt{x0, y})
		s.text("axis", x0-8, y+4, "end", byteCount(int64(v)))
	}
	s.line("axis", colAxis, 1.5, false, pt{x0, y1}, pt{x0, y0}, pt{x1, y0})
	s.text("axis", (x0+x1)/2, y0+40, "middle", "time since the first event")
	s.add(prim{kind: primTextVert, class: "axis", pts: []pt{{22, (y0 + y1) / 2}}, color: colText,
		text: "relative sequence number (bytes)"})

	// Receive window edge and ACKs as step lines.
	if len(c.acks) > 0 {
		var win, ack []pt
		for i, a := range c.acks {
			if i > 0 {
				win = append(win, pt{X(a.t), win[len(win)-1].y})
				ack = append(ack, pt{X(a.t), ack[len(ack)-1].y})
			}
			win = append(win, pt{X(a.t), Y(a.winEdge)})
			ack = append(ack, pt{X(a.t), Y(a.ack)})
		}
		win = append(win, pt{x1, win[len(win)-1].y})
		ack = append(ack, pt{x1, ack[len(ack)-1].y})
		s.line("window", colWindow, 1.5, false, win...)
		s.line("ack", colACK, 1.5, false, ack...)
	}

	// SACKed ranges: purple bars at the time of the ACK that carried them.
	for _, r := range c.sacks {
		x := X(r.t)
		s.add(prim{kind: primLine, class: "sack", pts: []pt{{x + 2, Y(r.start)}, {x + 2, Y(r.end)}}, color: colSACK, width: 3,
			title: fmt.Sprintf("SACK %d-%d at %s", r.start, r.end, seconds(r.t))})
	}

	// Data segments: a vertical bar from seq to seq+len, with ticks at the
	// ends; retransmissions red with a marker, so storms stand out.
	for _, d := range c.segs {
		x := X(d.t)
		col, class, w := colData, "segment", 1.5
		if d.retransmit {
			col, class, w = colRetransmit, "retransmit", 2.5
		}
		title := fmt.Sprintf("%s: %d-%d (%d bytes)", seconds(d.t), d.seq, d.end, d.end-d.seq)
		s.add(prim{kind: primLine, class: class, pts: []pt{{x, Y(d.seq)}, {x, Y(d.end)}}, color: col, width: w, title: title})
		s.line(class+"-tick", col, 1, false, pt{x - 3, Y(d.end)}, pt{x + 3, Y(d.end)})
		if d.retransmit {
			s.add(prim{kind: primDiamond, class: "retransmit-marker", pts: []pt{{x, Y(d.end) - 7}}, color: colRetransmit, width: 4, title: "retransmission " + title})
			s.line("retransmit-rug", colRetransmit, 2, false, pt{x, y0}, pt{x, y0 - 10})
		}
	}

	// Congestion window on its own axis, on the right.
	if len(c.cwnd) > 0 {
		var cmax int64 = 1
		for _, p := range c.cwnd {
			cmax = max(cmax, p.cwnd)
		}
		top := float64(cmax) * 1.1
		C := func(v int64) float64 { return y0 - (y0-y1)*float64(v)/top }
		var pts []pt
		for i, p := range c.cwnd {
			if i > 0 {
				pts = append(pts, pt{X(p.t), pts[len(pts)-1].y})
			}
			pts = append(pts, pt{X(p.t), C(p.cwnd)})
		}
		pts = append(pts, pt{x1, pts[len(pts)-1].y})
		s.line("cwnd", colCwnd, 1.5, true, pts...)
		for _, v := range ticks(0, top, 6) {
			y := C(int64(v))
			s.line("cwnd-axis", colCwnd, 1, false, pt{x1, y}, pt{x1 + 5, y})
			s.add(prim{kind: primText, class: "cwnd-axis", pts: []pt{{x1 + 8, y + 4}}, color: colCwnd, text: byteCount(int64(v)), anchor: "start"})
		}
		s.line("cwnd-axis", colCwnd, 1.5, false, pt{x1, y1}, pt{x1, y0})
		s.add(prim{kind: primTextVert, class: "cwnd-axis", pts: []pt{{canvasW - 18, (y0 + y1) / 2}}, color: colCwnd, text: "cwnd (bytes)"})
	}

	// RTOs and fast retransmits as labelled vertical lines; resets too.
	for i, m := range c.marks {
		x := X(m.t)
		col := colRTO
		switch m.kind {
		case "fast-retransmit":
			col = colFastRetx
		case "persist", "rst":
			col = colState
		}
		s.add(prim{kind: primLine, class: m.kind, pts: []pt{{x, y1}, {x, y0}}, color: col, width: 1, dash: true, title: m.label + " at " + seconds(m.t)})
		s.add(prim{kind: primText, class: m.kind + "-label", pts: []pt{{x + 3, y1 + 30 + 13*float64(i%3)}}, color: col, text: m.label, anchor: "start"})
	}
	// State changes along the top.
	for i, m := range c.states {
		x := X(m.t)
		s.line("state", colState, 1, false, pt{x, y1 - 4}, pt{x, y1})
		s.add(prim{kind: primText, class: "state", pts: []pt{{x, y1 - 8 - float64(i%2)*12}}, color: colState, text: m.label, anchor: "middle"})
	}

	// Title and legend.
	t := c.dump.TCB
	dir := "firmware -> peer"
	if !c.out {
		dir = "peer -> firmware"
	}
	closed := ""
	if c.dump.Closed {
		closed = ", closed"
	}
	s.text("title", x0, 22, "start", fmt.Sprintf("TCB %d  %s <-> %s  (%s%s)  data %s", t.ID, t.Local, t.Remote, t.State, closed, dir))
	s.text("subtitle", x0, 40, "start", summary(c))
	legend := []struct {
		class string
		col   color.RGBA
		dash  bool
		label string
	}{
		{"segment", colData, false, "segment (seq..seq+len)"},
		{"retransmit", colRetransmit, false, "retransmission"},
		{"ack", colACK, false, "ACK"},
		{"window", colWindow, false, "receive window edge"},
		{"sack", colSACK, false, "SACKed range"},
		{"cwnd", colCwnd, true, "cwnd (right axis)"},
		{"zero-window", colZeroWin, false, "zero window"},
	}
	lx, ly := x0, float64(canvasH-30)
	for _, l := range legend {
		s.line("legend", l.col, 4, l.dash, pt{lx, ly - 4}, pt{lx + 24, ly - 4})
		s.text("legend", lx+30, ly, "start", l.label)
		lx += 30 + 7*float64(len(l.label)) + 24
	}
	return s
}

// summary is the subtitle: what happened, in numbers.
func summary(c *conn) string {
	lost := ""
	if c.dump.EventsLost > 0 {
		lost = fmt.Sprintf(" (%d older events lost)", c.dump.EventsLost)
	}
	return fmt.Sprintf("%d events%s over %s: %d segments, %d retransmitted, %d RTOs, %d fast retransmits, %d zero-window stalls (longest %s)",
		len(c.dump.Events), lost, seconds(c.end), len(c.segs), c.retransmits, c.rtos, c.fastRetransmits, len(c.zeroWins), seconds(c.longestStall()))
}

// ticks returns about n round values between lo and hi.
func ticks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

func seconds(s float64) string {
	switch {
	case s == 0:
		return "0s"
	case s < 0.001:
		return strconv.FormatFloat(s*1e6, 'f', 0, 64) + "µs"
	case s < 1:
		return strconv.FormatFloat(s*1e3, 'g', 4, 64) + "ms"
	}
	return strconv.FormatFloat(s, 'g', 5, 64) + "s"
}

// byteCount labels an axis in bytes, with SI prefixes as the ticks are
// round decimal numbers.
func byteCount(v int64) string {
	switch a := max(v, -v); {
	case a >= 1e6:
		return strconv.FormatFloat(float64(v)/1e6, 'g', 4, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(float64(v)/1e3, 'g', 4, 64) + "k"
	}
	return strconv.FormatInt(v, 10)
}
