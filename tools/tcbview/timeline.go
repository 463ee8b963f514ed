package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/synfin/synfin/tcpext"
)

// writeTimeline prints the dump one event a line, oldest first, with
// sequence numbers relative to each side's ISN, windows scaled, and the
// things worth a look flagged in capitals: RETRANSMIT, ZERO WINDOW, RTO.
func writeTimeline(w io.Writer, d tcpext.TCBDump, c *conn) error {
	t := d.TCB
	closed := ""
	if d.Closed {
		closed = " closed at " + d.ClosedAt.Format("2006-01-02T15:04:05.000000Z07:00")
	}
	fmt.Fprintf(w, "TCB %d  %s <-> %s  %s%s\n", t.ID, t.Local, t.Remote, t.State, closed)
	fmt.Fprintf(w, "%s\n", summary(c))
	if d.EventsLost > 0 {
		fmt.Fprintf(w, "(the ring had dropped %d older events)\n", d.EventsLost)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDIR\tEVENT")
	sndShift, rcvShift := max(t.SndWScale, 0), max(t.RcvWScale, 0)
	for _, ev := range d.Events {
		at := "+" + fmt.Sprintf("%.6f", ev.At.Sub(c.start).Seconds())
		switch ev.Kind {
		case tcpext.EventSegOut:
			fmt.Fprintf(tw, "%s\t->\t%s\n", at, segText(ev, t.ISS, t.IRS, rcvShift))
		case tcpext.EventSegIn:
			fmt.Fprintf(tw, "%s\t<-\t%s\n", at, segText(ev, t.IRS, t.ISS, sndShift))
		case tcpext.EventState:
			fmt.Fprintf(tw, "%s\t\tstate %s -> %s (%s)\n", at, ev.From, ev.To, ev.Cause)
		case tcpext.EventTimer:
			fmt.Fprintf(tw, "%s\t\ttimer %s fired\n", at, ev.Timer)
		case tcpext.EventCC:
			cause := ev.Cause
			if cause == "rto" || cause == "fast-retransmit" {
				cause = strings.ToUpper(cause)
			}
			fmt.Fprintf(tw, "%s\t\tcc %s: cwnd=%d ssthresh=%d\n", at, cause, ev.Cwnd, ev.Ssthresh)
		default:
			fmt.Fprintf(tw, "%s\t\t%s\n", at, ev.Kind)
		}
	}
	return tw.Flush()
}

// segText describes a segment; seqBase is its sender's ISN, ackBase the
// other side's, shift the window scale its sender announced.
func segText(ev tcpext.Event, seqBase, ackBase uint32, shift int) string {
	s := ev.Seg
	var b strings.Builder
	seq := rel(s.Seq, seqBase)
	fmt.Fprintf(&b, "%-8s seq=%d", s.Flags, seq)
	if s.Len > 0 {
		fmt.Fprintf(&b, ":%d (%d)", seq+int64(s.Len), s.Len)
	}
	if hasFlag(s.Flags, "ACK") {
		fmt.Fprintf(&b, " ack=%d", rel(s.Ack, ackBase))
	}
	win := int64(s.Window)
	if !hasFlag(s.Flags, "SYN") {
		win <<= shift
	}
	if !hasFlag(s.Flags, "RST") {
		fmt.Fprintf(&b, " win=%d", win)
	}
	if s.MSS != 0 {
		fmt.Fprintf(&b, " mss=%d", s.MSS)
	}
	if s.WScale >= 0 && hasFlag(s.Flags, "SYN") {
		fmt.Fprintf(&b, " ws=%d", s.WScale)
	}
	if s.SACKPermitted {
		b.WriteString(" sack_perm")
	}
	if s.HasTS {
		fmt.Fprintf(&b, " ts=%d/%d", s.TSVal, s.TSEcr)
	}
	for _, blk := range s.SACK {
		fmt.Fprintf(&b, " sack=%d-%d", rel(blk[0], ackBase), rel(blk[1], ackBase))
	}
	if ev.Kind == tcpext.EventSegOut && ev.Cwnd != 0 {
		fmt.Fprintf(&b, " cwnd=%d", ev.Cwnd)
	}
	if s.Retransmit {
		b.WriteString("  RETRANSMIT")
	}
	if win == 0 && hasFlag(s.Flags, "ACK") && !hasFlag(s.Flags, "RST") {
		b.WriteString("  ZERO WINDOW")
	}
	return b.String()
}
