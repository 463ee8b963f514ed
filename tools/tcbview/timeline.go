package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/synfin/synfin/mgmt"
	"github.com/synfin/synfin/tcpext"
)

// writeTimeline prints the dump one event a line, oldest first, as
// mgmt.EventText writes them.
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
	fmt.Fprintln(tw, "TIME\tEVENT")
	for _, ev := range d.Events {
		fmt.Fprintf(tw, "+%.6f\t%s\n", ev.At.Sub(c.start).Seconds(), mgmt.EventText(ev, t))
	}
	return tw.Flush()
}
