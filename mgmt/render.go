package mgmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/synfin/synfin/tcpext"
)

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// timeFormat shows times to the microsecond, as the stack's clock has them.
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

func micros(us int64) string { return (time.Duration(us) * time.Microsecond).String() }
func millis(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

// writeTCBTable writes one line per TCB, in the manner of ss.
func writeTCBTable(w io.Writer, tcbs []tcpext.TCBInfo) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tSTATE\tLOCAL\tREMOTE\tSEND-Q\tRECV-Q\tCWND\tSRTT\tRTO")
	for _, t := range tcbs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n",
			t.ID, t.State, t.Local, t.Remote, t.SendQueue, t.RecvQueue, t.Cwnd, micros(t.SRTTus), millis(t.RTOms))
	}
	return tw.Flush()
}

// writeTCB writes every field of one TCB, grouped as RFC 9293 groups
// them, each labelled with its JSON key so the text and --json views read
// the same. Sequence numbers also show relative to the ISN, as Wireshark
// shows them.
func writeTCB(w io.Writer, t tcpext.TCBInfo) error {
	fmt.Fprintf(w, "TCB %d  %s  %s <-> %s\n", t.ID, t.State, t.Local, t.Remote)
	tw := newTable(w)
	section := func(name string) { fmt.Fprintf(tw, "%s:\n", name) }
	shown := map[string]bool{"timers": true, "counters": true, "history": true}
	kv := func(k string, v any) {
		shown[k] = true
		fmt.Fprintf(tw, "  %s:\t%v\n", k, v)
	}
	relTo := func(v, base uint32) string { return fmt.Sprintf("%d\t(%+d)", v, int32(v-base)) }

	section("connection")
	kv("id", t.ID)
	kv("state", t.State)
	kv("local", t.Local)
	kv("remote", t.Remote)

	section("send sequence space (RFC 9293 3.3.1)")
	kv("iss", t.ISS)
	kv("snd_una", relTo(t.SndUna, t.ISS))
	kv("snd_nxt", fmt.Sprintf("%s, %d in flight", relTo(t.SndNxt, t.ISS), int64(t.SndNxt-t.SndUna)))
	kv("snd_wnd", t.SndWnd)
	kv("snd_wl1", relTo(t.SndWL1, t.IRS))
	kv("snd_wl2", relTo(t.SndWL2, t.ISS))
	kv("snd_up", relTo(t.SndUp, t.ISS))

	section("receive sequence space")
	kv("irs", t.IRS)
	kv("rcv_nxt", relTo(t.RcvNxt, t.IRS))
	kv("rcv_wnd", t.RcvWnd)
	kv("rcv_up", relTo(t.RcvUp, t.IRS))

	section("options")
	kv("mss", t.MSS)
	kv("snd_wscale", t.SndWScale)
	kv("rcv_wscale", t.RcvWScale)
	kv("sack_permitted", t.SACKPermitted)
	kv("timestamps", t.Timestamps)
	kv("ts_recent", t.TSRecent)

	section("congestion control")
	kv("cc", t.CC)
	kv("cwnd", t.Cwnd)
	kv("ssthresh", t.Ssthresh)
	kv("recovery", t.Recovery)
	kv("sack_blocks", t.SACKBlocks)

	section("RTT estimator (RFC 6298)")
	kv("srtt_us", fmt.Sprintf("%d (%s)", t.SRTTus, micros(t.SRTTus)))
	kv("rttvar_us", fmt.Sprintf("%d (%s)", t.RTTVARus, micros(t.RTTVARus)))
	kv("rto_ms", fmt.Sprintf("%d (%s)", t.RTOms, millis(t.RTOms)))
	kv("backoff", t.Backoff)

	if len(t.Timers) == 0 {
		fmt.Fprintln(tw, "timers:\tnone")
	} else {
		section("timers")
		for _, tm := range t.Timers {
			kv(tm.Name, millis(tm.RemainingMS)+" left")
		}
	}

	section("queues (bytes)")
	kv("send_queue", t.SendQueue)
	kv("recv_queue", t.RecvQueue)
	kv("ooo_queue", t.OOOQueue)

	// The counters grow with tcpext; going through their JSON form shows
	// every one without a list to keep in step.
	counters, err := flatten(t.Counters)
	if err != nil {
		return err
	}
	section("counters")
	for _, l := range counters {
		kv(l.key, l.value)
	}
	// Fields tcpext adds later show too, until they get a place above.
	all, err := flatten(t)
	if err != nil {
		return err
	}
	var more []flatLine
	for _, l := range all {
		if top, _, _ := strings.Cut(l.key, "."); !shown[top] {
			more = append(more, l)
		}
	}
	if len(more) > 0 {
		section("more")
		for _, l := range more {
			kv(l.key, l.value)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// History gets its own table: its columns do not line up with the
	// key: value block above.
	if len(t.History) == 0 {
		_, err := fmt.Fprintln(w, "history:  none")
		return err
	}
	fmt.Fprintln(w, "history:")
	tw = newTable(w)
	for _, h := range t.History {
		fmt.Fprintf(tw, "  %s\t%s -> %s\t%s\n", h.At.Format(timeFormat), h.From, h.To, h.Cause)
	}
	return tw.Flush()
}

func writeInterfaces(w io.Writer, ifaces []Interface) error {
	if len(ifaces) == 0 {
		_, err := fmt.Fprintln(w, "no interfaces")
		return err
	}
	for i, ifc := range ifaces {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, ifc.Name)
		tw := newTable(w)
		fmt.Fprintf(tw, "  mac:\t%s\n", ifc.MAC)
		fmt.Fprintf(tw, "  mtu:\t%d\n", ifc.MTU)
		fmt.Fprintf(tw, "  driver:\t%s\n", ifc.Driver)
		fmt.Fprintf(tw, "  address:\t%s\n", ifc.Address)
		if ifc.Stats != nil {
			lines, err := flatten(ifc.Stats)
			if err != nil {
				return err
			}
			for _, l := range lines {
				fmt.Fprintf(tw, "  stats.%s:\t%s\n", l.key, l.value)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// writeFlat writes v's JSON form as "dotted.key: value" lines in key order,
// which for the config are exactly its keys.
func writeFlat(w io.Writer, v any) error {
	lines, err := flatten(v)
	if err != nil {
		return err
	}
	tw := newTable(w)
	for _, l := range lines {
		fmt.Fprintf(tw, "%s:\t%s\n", l.key, l.value)
	}
	return tw.Flush()
}

type flatLine struct{ key, value string }

// flatten turns v's JSON form into one line per leaf, objects' keys in
// sorted order, lists' elements in theirs. Going
// through JSON lets every value choose its own field names and formatting.
func flatten(v any) ([]flatLine, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // keep integers exact instead of float64
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	var lines []flatLine
	var walk func(prefix string, n any)
	walk = func(prefix string, n any) {
		join := func(k string) string {
			if prefix == "" {
				return k
			}
			return prefix + "." + k
		}
		switch n := n.(type) {
		case map[string]any:
			if len(n) == 0 {
				lines = append(lines, flatLine{prefix, "{}"})
			}
			for _, k := range slices.Sorted(maps.Keys(n)) {
				walk(join(k), n[k])
			}
		case []any:
			if len(n) == 0 {
				lines = append(lines, flatLine{prefix, "[]"})
			}
			for i, child := range n {
				walk(join(strconv.Itoa(i)), child)
			}
		case nil:
			lines = append(lines, flatLine{prefix, ""})
		default:
			lines = append(lines, flatLine{prefix, fmt.Sprint(n)})
		}
	}
	walk("", tree)
	return lines, nil
}
