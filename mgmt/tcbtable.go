package mgmt

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/synfin/synfin/tcpext"
)

// DumpSource is tcpext's flight recorder: TCBs with their recent events,
// live ones and those closed not long ago.
type DumpSource interface {
	// Dump returns one TCB's dump.
	Dump(id uint64) (tcpext.TCBDump, bool)
	// Dumps returns every dump, ordered by id.
	Dumps() []tcpext.TCBDump
}

// WithDumps gives the shell the flight recorder that "tcb dump", the SFTP
// subsystem and "show tcb" of a closed TCB read.
func WithDumps(d DumpSource) Option {
	return func(s *Shell) { s.dumps = d }
}

// sortKeys are the values of "show tcb --sort", the table's columns.
var sortKeys = map[string]func(a, b tcpext.TCBInfo) int{
	"id":     func(a, b tcpext.TCBInfo) int { return cmp.Compare(a.ID, b.ID) },
	"state":  func(a, b tcpext.TCBInfo) int { return cmp.Compare(stateRank(a.State), stateRank(b.State)) },
	"local":  func(a, b tcpext.TCBInfo) int { return compareHostPort(a.Local, b.Local) },
	"remote": func(a, b tcpext.TCBInfo) int { return compareHostPort(a.Remote, b.Remote) },
	"send-q": func(a, b tcpext.TCBInfo) int { return cmp.Compare(a.SendQueue, b.SendQueue) },
	"recv-q": func(a, b tcpext.TCBInfo) int { return cmp.Compare(a.RecvQueue, b.RecvQueue) },
	"cwnd":   func(a, b tcpext.TCBInfo) int { return cmp.Compare(a.Cwnd, b.Cwnd) },
	"srtt":   func(a, b tcpext.TCBInfo) int { return cmp.Compare(a.SRTTus, b.SRTTus) },
	"rto":    func(a, b tcpext.TCBInfo) int { return cmp.Compare(a.RTOms, b.RTOms) },
}

// flagValues are the completions of flags with a fixed set of values.
var flagValues = map[string][]string{
	"--sort": slices.Sorted(func(yield func(string) bool) {
		for k := range sortKeys {
			if !yield(k) {
				return
			}
		}
	}),
	"--state": func() []string {
		var lower []string
		for _, s := range rfcStates {
			lower = append(lower, strings.ToLower(s))
		}
		return lower
	}(),
}

func stateRank(s string) int { return slices.Index(rfcStates, s) }

// compareHostPort orders "ip:port" strings by address, then port; a
// wildcard ("*") sorts first.
func compareHostPort(a, b string) int {
	pa, errA := netip.ParseAddrPort(a)
	pb, errB := netip.ParseAddrPort(b)
	switch {
	case errA != nil && errB != nil:
		return strings.Compare(a, b)
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	return pa.Compare(pb)
}

// tcbFilter selects the rows of "show tcb".
type tcbFilter struct {
	states []string
	port   uint16
	remote netip.Prefix
	// remotePort, if not 0, must be the remote port too (--remote
	// HOST:PORT).
	remotePort uint16
}

func parseTCBFilter(a args) (tcbFilter, error) {
	var f tcbFilter
	if v, ok := a.values["--state"]; ok {
		for name := range strings.SplitSeq(v, ",") {
			st := strings.ToUpper(strings.TrimSpace(name))
			if !slices.Contains(rfcStates, st) {
				return f, usageErrorf("unknown state %q (want one of %s)", name, strings.Join(flagValues["--state"], ", "))
			}
			f.states = append(f.states, st)
		}
	}
	if v, ok := a.values["--port"]; ok {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			return f, usageErrorf("bad --port %q (want 1..65535)", v)
		}
		f.port = uint16(p)
	}
	if v, ok := a.values["--remote"]; ok {
		if ap, err := netip.ParseAddrPort(v); err == nil {
			f.remote, f.remotePort = netip.PrefixFrom(ap.Addr(), ap.Addr().BitLen()), ap.Port()
		} else if addr, err := netip.ParseAddr(v); err == nil {
			f.remote = netip.PrefixFrom(addr, addr.BitLen())
		} else if p, err := netip.ParsePrefix(v); err == nil {
			f.remote = p.Masked()
		} else {
			return f, usageErrorf("bad --remote %q (want an address, ADDRESS:PORT or a prefix such as 198.18.0.0/24)", v)
		}
	}
	return f, nil
}

func (f tcbFilter) match(t tcpext.TCBInfo) bool {
	if len(f.states) > 0 && !slices.Contains(f.states, t.State) {
		return false
	}
	// parseEndpoint reads a listener's "*:22" as 0.0.0.0:22.
	local := parseEndpoint(t.Local)
	remote, remoteErr := netip.ParseAddrPort(t.Remote)
	if f.port != 0 && local.Port() != f.port && remote.Port() != f.port {
		return false
	}
	if f.remote.IsValid() {
		if remoteErr != nil || !f.remote.Contains(remote.Addr()) {
			return false
		}
		if f.remotePort != 0 && remote.Port() != f.remotePort {
			return false
		}
	}
	return true
}

// showTCB is "show tcb": the table, filtered and sorted, or one TCB in
// full with its recent events.
func (s *Shell) showTCB(_ context.Context, a args, w io.Writer) error {
	jsonOut := a.flags["--json"]
	switch len(a.pos) {
	case 0:
		f, err := parseTCBFilter(a)
		if err != nil {
			return err
		}
		order := sortKeys["id"]
		if k, ok := a.values["--sort"]; ok {
			if order = sortKeys[k]; order == nil {
				return usageErrorf("unknown sort key %q (want one of %s)", k, strings.Join(flagValues["--sort"], ", "))
			}
		}
		tcbs := []tcpext.TCBInfo{}
		for _, t := range s.tcbs.TCBs() {
			if f.match(t) {
				tcbs = append(tcbs, t)
			}
		}
		slices.SortStableFunc(tcbs, func(x, y tcpext.TCBInfo) int {
			return cmp.Or(order(x, y), cmp.Compare(x.ID, y.ID))
		})
		if a.flags["--reverse"] {
			slices.Reverse(tcbs)
		}
		if jsonOut {
			return writeJSON(w, tcbs)
		}
		return writeTCBTable(w, tcbs)
	case 1:
		if len(a.values) > 0 || a.flags["--reverse"] {
			return usageErrorf("filters and sorting apply to the table, not to one TCB")
		}
		id, err := parseTCBID(a.pos[0])
		if err != nil {
			return err
		}
		tcb, ok := s.tcbs.TCB(id)
		var dump *tcpext.TCBDump
		if s.dumps != nil {
			if d, found := s.dumps.Dump(id); found {
				dump = &d
			}
		}
		if !ok {
			// The table holds live TCBs only; a closed one that the
			// recorder still has is worth a pointer.
			if dump != nil && dump.Closed {
				return fmt.Errorf("no TCB with id %d: it closed at %s; tcb dump %d has its last state and events",
					id, dump.ClosedAt.Format(timeFormat), id)
			}
			return fmt.Errorf("no TCB with id %d", id)
		}
		if jsonOut {
			return writeJSON(w, tcb)
		}
		if err := writeTCB(w, tcb); err != nil || dump == nil {
			return err
		}
		return writeRecentEvents(w, *dump)
	default:
		return usageErrorf("unexpected argument %q", a.pos[1])
	}
}

func parseTCBID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usageErrorf("bad TCB id %q", s)
	}
	return id, nil
}

// writeRecentEvents ends "show tcb ID" with the last events of the TCB's
// flight recorder.
func writeRecentEvents(w io.Writer, d tcpext.TCBDump) error {
	if len(d.Events) == 0 {
		_, err := fmt.Fprintln(w, "recent events:  none recorded")
		return err
	}
	shown := d.Events[max(0, len(d.Events)-recentEvents):]
	fmt.Fprintf(w, "recent events (%d of %d; tcb dump %d has them all):\n", len(shown), uint64(len(d.Events))+d.EventsLost, d.TCB.ID)
	for _, ev := range shown {
		fmt.Fprintf(w, "  %s  %s\n", ev.At.Format("15:04:05.000000"), EventText(ev, d.TCB))
	}
	return nil
}
