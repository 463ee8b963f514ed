package mgmt

import (
	"fmt"
	"strings"

	"github.com/synfin/synfin/tcpext"
)

// recentEvents is how many of the flight recorder's events "show tcb ID"
// shows; "tcb dump ID" has them all.
const recentEvents = 12

// EventText describes one flight-recorder event of TCB t in a line, the
// way a person reads a trace: "->" for a segment sent, "<-" for one
// received, sequence numbers relative to each side's ISN (as Wireshark
// shows them), windows scaled, and what deserves a look flagged in
// capitals (RETRANSMIT, ZERO WINDOW, RTO, FAST-RETRANSMIT).
func EventText(ev tcpext.Event, t tcpext.TCBInfo) string {
	switch ev.Kind {
	case tcpext.EventSegOut:
		if ev.Seg != nil {
			return "->  " + segText(ev, t.ISS, t.IRS, max(t.RcvWScale, 0))
		}
	case tcpext.EventSegIn:
		if ev.Seg != nil {
			return "<-  " + segText(ev, t.IRS, t.ISS, max(t.SndWScale, 0))
		}
	case tcpext.EventState:
		return fmt.Sprintf("    state %s -> %s (%s)", ev.From, ev.To, ev.Cause)
	case tcpext.EventTimer:
		return fmt.Sprintf("    timer %s fired", ev.Timer)
	case tcpext.EventCC:
		cause := ev.Cause
		if cause == "rto" || cause == "fast-retransmit" {
			cause = strings.ToUpper(cause)
		}
		return fmt.Sprintf("    cc %s: cwnd=%d ssthresh=%d", cause, ev.Cwnd, ev.Ssthresh)
	}
	return "    " + ev.Kind
}

// segText describes a segment; seqBase is its sender's ISN, ackBase the
// other side's, shift the window scale of its sender's windows.
func segText(ev tcpext.Event, seqBase, ackBase uint32, shift int) string {
	s := ev.Seg
	var b strings.Builder
	seq := int64(s.Seq - seqBase)
	fmt.Fprintf(&b, "%-8s seq=%d", s.Flags, seq)
	if s.Len > 0 {
		fmt.Fprintf(&b, ":%d (%d)", seq+int64(s.Len), s.Len)
	}
	if hasFlag(s.Flags, "ACK") {
		fmt.Fprintf(&b, " ack=%d", int64(s.Ack-ackBase))
	}
	// Windows on SYNs are never scaled (RFC 7323 section 2.2).
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
		fmt.Fprintf(&b, " sack=%d-%d", int64(blk[0]-ackBase), int64(blk[1]-ackBase))
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
