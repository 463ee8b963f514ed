package mgmt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/synfin/synfin/tcpext"
)

// discardTerminal is a terminal nobody types at or reads.
type discardTerminal struct{}

func (discardTerminal) Read([]byte) (int, error)    { return 0, io.EOF }
func (discardTerminal) Write(p []byte) (int, error) { return len(p), nil }

// refusingTCP is a TCPControl that touches no network: every dial is
// refused at once.
type refusingTCP struct{}

func (refusingTCP) Stats() tcpext.StatsSnapshot { return tcpext.StatsSnapshot{SegmentsSent: 3} }
func (refusingTCP) Abort(id uint64) error {
	if id != 2 {
		return errors.New("no such TCB")
	}
	return nil
}
func (refusingTCP) SetDefaultCongestionControl(string) error { return nil }
func (refusingTCP) Dial(context.Context, netip.AddrPort, uint16) (net.Conn, uint64, error) {
	return nil, 0, errors.New("connection refused")
}

// FuzzShell feeds random command lines to the shell, as a person (or a
// script gone wrong) might type them over SSH: no line may crash it, every
// line ends with one of the three statuses, and no command may panic (the
// shell would contain it, but log it as a bug). Tab completion gets the
// same lines.
func FuzzShell(f *testing.F) {
	for _, c := range commands {
		f.Add(c.usage())
		f.Add(strings.Join(c.words, " ") + " --json")
	}
	for _, s := range []string{
		"", "show tcb 2", "show tcb --state established,listen --sort cwnd --reverse",
		"show tcb --remote 198.18.0.0/16 --port=22", "tcb dump all --pcap", "tcb dump 7",
		`tcp connect 198.18.0.1:80 --send "GET / HTTP/1.0\r\n\r\n" --hold 0s`, "clear tcb 2",
		`show tcb 'unterminated`, `"\`, "show tcb --sort=", "show  tcb\t--json", "help me",
		"tcb dump 18446744073709551616", "show tcb -", "--", "show tcb --json=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var logged bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelError}))
		sh := NewShell(tableTCBs,
			WithDumps(sampleDumps),
			WithTCPControl(refusingTCP{}),
			WithConfig(map[string]any{"tcp": map[string]any{"msl": "30s"}}),
			WithInterfaces(func() []Interface { return []Interface{{Name: "eth0", Stats: map[string]int{"rx": 1}}} }),
			WithLogger(log))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var out bytes.Buffer
		status := sh.Run(ctx, line, &out)
		if status != StatusOK && status != StatusError && status != StatusUsage {
			t.Fatalf("%q: status %d", line, status)
		}
		if logged.Len() > 0 {
			t.Fatalf("%q: the shell logged an error:\n%s", line, logged.String())
		}
		if status != StatusOK && out.Len() == 0 {
			t.Fatalf("%q failed (status %d) without saying why", line, status)
		}
		if utf8.ValidString(line) {
			sh.complete(line)
			ac := sh.autoComplete(term.NewTerminal(discardTerminal{}, prompt))
			for pos := range len(line) + 1 {
				if utf8.ValidString(line[:pos]) {
					ac(line, pos, '\t')
				}
			}
		}
	})
}
