// Command tcbview draws a TCB dump of the firmware's flight recorder as a
// time-sequence graph, and prints its events as a timeline.
//
//	tcbview [-o PREFIX] [-id ID] [-dir auto|out|in] DUMP
//
// DUMP is the JSON of "tcb dump ID" (fetched with scp from /tcb/ID.json, or
// saved from "ssh BOX tcb dump ID"), or of "tcb dump all", from which -id
// picks one TCB (by default the one that moved the most data). The graph
// goes to PREFIX.svg and PREFIX.png (PREFIX defaults to DUMP without its
// .json); the timeline to standard output.
//
// The graph plots one direction of data, by default the one that carried
// more bytes: each segment as a vertical bar from its first to its last
// sequence number (relative to the sender's ISN), retransmissions in red
// with a marker and a tick on the time axis, the receiver's ACKs (green)
// and the right edge of its window (yellow-brown) as step lines, SACKed
// ranges as purple bars, zero-window stalls as red bands, RTOs and fast
// retransmits as dashed lines, state changes along the top, and, for data
// the firmware sends, its congestion window (blue, dashed) on the right
// axis. A retransmission storm shows as red; a zero-window stall as a band
// where the window edge meets the ACK line and the data stops.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/synfin/synfin/tcpext"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tcbview:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tcbview", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tcbview [-o PREFIX] [-id ID] [-dir auto|out|in] DUMP")
		fs.PrintDefaults()
	}
	prefix := fs.String("o", "", "write the graph to `PREFIX`.svg and PREFIX.png (default: DUMP without .json)")
	id := fs.Uint64("id", 0, "the TCB to draw from a dump of all (default: the one that moved the most data)")
	dir := fs.String("dir", "auto", "the data to plot: out (sent by the firmware), in (received), or auto (the larger)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("want one DUMP file")}
	}
	if *dir != "auto" && *dir != "out" && *dir != "in" {
		return usageError{fmt.Errorf("-dir %q: want auto, out or in", *dir)}
	}
	path := fs.Arg(0)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	d, err := pick(b, *id)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out := *dir == "out"
	if *dir == "auto" {
		o, i := bytesEachWay(d)
		out = o >= i
	}
	c := analyze(d, out)
	if *prefix == "" {
		*prefix = strings.TrimSuffix(path, ".json")
	}
	sc := layout(c)
	if err := writeFile(*prefix+".svg", func(w io.Writer) error { return writeSVG(w, sc) }); err != nil {
		return err
	}
	if err := writeFile(*prefix+".png", func(w io.Writer) error { return writePNG(w, sc) }); err != nil {
		return err
	}
	if err := writeTimeline(stdout, d, c); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "tcbview: wrote %s.svg and %s.png\n", *prefix, *prefix)
	return nil
}

// pick reads a dump of one TCB, or of all, and returns the one asked for.
func pick(b []byte, id uint64) (tcpext.TCBDump, error) {
	var all []tcpext.TCBDump
	if strings.HasPrefix(strings.TrimSpace(string(b)), "[") {
		if err := json.Unmarshal(b, &all); err != nil {
			return tcpext.TCBDump{}, fmt.Errorf("not a dump: %w", err)
		}
	} else {
		var one tcpext.TCBDump
		if err := json.Unmarshal(b, &one); err != nil {
			return tcpext.TCBDump{}, fmt.Errorf("not a dump: %w", err)
		}
		all = []tcpext.TCBDump{one}
	}
	if len(all) == 0 {
		return tcpext.TCBDump{}, errors.New("the dump holds no TCB")
	}
	if id != 0 {
		for _, d := range all {
			if d.TCB.ID == id {
				return d, nil
			}
		}
		return tcpext.TCBDump{}, fmt.Errorf("no TCB %d in the dump", id)
	}
	best, most := all[0], int64(-1)
	for _, d := range all {
		o, i := bytesEachWay(d)
		if o+i > most {
			best, most = d, o+i
		}
	}
	return best, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
