// Package mgmt is the management shell: a command parser and dispatcher that
// knows nothing of its transport (so the local socket and SSH share it), the
// views it renders (the TCB table, one TCB in full, config, interfaces), and
// the local-socket server and client.
package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/synfin/synfin/tcpext"
)

// Exit statuses of a command.
const (
	StatusOK    = 0
	StatusError = 1 // the command ran and failed, e.g. no such TCB
	StatusUsage = 2 // unknown command or bad arguments
)

// TCBSource is the read-only TCB snapshot API of tcpext.Protocol.
type TCBSource interface {
	// TCBs returns every TCB, ordered by id.
	TCBs() []tcpext.TCBInfo
	// TCB returns one TCB.
	TCB(id uint64) (tcpext.TCBInfo, bool)
}

// Interface is one network interface as "show interfaces" lists it.
type Interface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	MTU     uint32 `json:"mtu"`
	Driver  string `json:"driver"`
	Address string `json:"address"`
	// Stats holds the link's counters; any JSON-encodable value.
	Stats any `json:"stats"`
}

// Shell parses and runs management commands. It is safe for concurrent use.
type Shell struct {
	tcbs       TCBSource
	config     any
	interfaces func() []Interface
	log        *slog.Logger
}

// Option configures a Shell.
type Option func(*Shell)

// WithConfig sets the effective configuration "show config" prints. cfg must
// encode to a JSON object; its keys become the dotted keys of the text view.
func WithConfig(cfg any) Option {
	return func(s *Shell) { s.config = cfg }
}

// WithInterfaces sets the function "show interfaces" calls for the current
// interface list and counters.
func WithInterfaces(f func() []Interface) Option {
	return func(s *Shell) { s.interfaces = f }
}

// WithLogger sets where the shell logs failures of its own; the default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *Shell) { s.log = l }
}

// NewShell returns a shell over the TCBs of src.
func NewShell(src TCBSource, opts ...Option) *Shell {
	s := &Shell{tcbs: src, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// command is one entry of the command table.
type command struct {
	words []string // the command's name, e.g. {"show", "tcb"}
	args  string   // the usage text after the name
	help  string
	flags []string // accepted boolean flags
	run   func(s *Shell, ctx context.Context, a args, w io.Writer) error
}

// args are a command line's words after the command name, split into
// positional arguments and flags.
type args struct {
	pos   []string
	flags map[string]bool
}

func (c *command) usage() string {
	u := strings.Join(c.words, " ")
	if c.args != "" {
		u += " " + c.args
	}
	return u
}

// usageError is a bad invocation of a known command.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

var commands []*command

func init() {
	// Assigned in init because the help command lists the table itself.
	commands = []*command{
		{
			words: []string{"help"},
			help:  "list commands",
			run:   (*Shell).help,
		},
		{
			words: []string{"show", "tcb"},
			args:  "[ID] [--json]",
			help:  "list TCBs, or show one TCB in full",
			flags: []string{"--json"},
			run:   (*Shell).showTCB,
		},
		{
			words: []string{"show", "config"},
			args:  "[--json]",
			help:  "show the effective configuration",
			flags: []string{"--json"},
			run:   (*Shell).showConfig,
		},
		{
			words: []string{"show", "interfaces"},
			args:  "[--json]",
			help:  "show network interfaces and their counters",
			flags: []string{"--json"},
			run:   (*Shell).showInterfaces,
		},
	}
}

// Run executes one command line, writes its output to w and returns its exit
// status. Errors are reported on w as "error: ..." lines; a failing or even
// panicking command never takes the shell down.
func (s *Shell) Run(ctx context.Context, line string, w io.Writer) (status int) {
	words := strings.Fields(line)
	if len(words) == 0 {
		return StatusOK
	}
	cmd := lookup(words)
	if cmd == nil {
		fmt.Fprintf(w, "error: unknown command %q\n", strings.Join(words, " "))
		s.writeHelp(w)
		return StatusUsage
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("shell command panicked", "command", line, "panic", r, "stack", string(debug.Stack()))
			fmt.Fprintf(w, "error: internal error: %v\n", r)
			status = StatusError
		}
	}()

	a, err := parseArgs(cmd, words[len(cmd.words):])
	if err == nil {
		err = cmd.run(s, ctx, a, w)
	}
	var uerr *usageError
	switch {
	case err == nil:
		return StatusOK
	case errors.As(err, &uerr):
		fmt.Fprintf(w, "error: %v\nusage: %s\n", err, cmd.usage())
		return StatusUsage
	default:
		fmt.Fprintf(w, "error: %v\n", err)
		return StatusError
	}
}

// lookup finds the command whose name is the longest prefix of words.
func lookup(words []string) *command {
	var best *command
	for _, c := range commands {
		if len(c.words) <= len(words) && slices.Equal(c.words, words[:len(c.words)]) &&
			(best == nil || len(c.words) > len(best.words)) {
			best = c
		}
	}
	return best
}

func parseArgs(cmd *command, words []string) (args, error) {
	a := args{flags: map[string]bool{}}
	for _, w := range words {
		if !strings.HasPrefix(w, "-") {
			a.pos = append(a.pos, w)
			continue
		}
		if !slices.Contains(cmd.flags, w) {
			return args{}, usageErrorf("unknown flag %q", w)
		}
		a.flags[w] = true
	}
	return a, nil
}

func (s *Shell) help(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) > 0 {
		return usageErrorf("unexpected argument %q", a.pos[0])
	}
	s.writeHelp(w)
	return nil
}

func (s *Shell) writeHelp(w io.Writer) {
	tw := newTable(w)
	fmt.Fprintln(tw, "commands:")
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.usage(), c.help)
	}
	tw.Flush()
}

func (s *Shell) showTCB(_ context.Context, a args, w io.Writer) error {
	jsonOut := a.flags["--json"]
	switch len(a.pos) {
	case 0:
		tcbs := s.tcbs.TCBs()
		if jsonOut {
			if tcbs == nil {
				tcbs = []tcpext.TCBInfo{}
			}
			return writeJSON(w, tcbs)
		}
		return writeTCBTable(w, tcbs)
	case 1:
		id, err := strconv.ParseUint(a.pos[0], 10, 64)
		if err != nil {
			return usageErrorf("bad TCB id %q", a.pos[0])
		}
		tcb, ok := s.tcbs.TCB(id)
		if !ok {
			return fmt.Errorf("no TCB with id %d", id)
		}
		if jsonOut {
			return writeJSON(w, tcb)
		}
		return writeTCB(w, tcb)
	default:
		return usageErrorf("unexpected argument %q", a.pos[1])
	}
}

func (s *Shell) showConfig(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) > 0 {
		return usageErrorf("unexpected argument %q", a.pos[0])
	}
	if s.config == nil {
		return errors.New("no configuration available")
	}
	if a.flags["--json"] {
		return writeJSON(w, s.config)
	}
	return writeFlat(w, s.config)
}

func (s *Shell) showInterfaces(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) > 0 {
		return usageErrorf("unexpected argument %q", a.pos[0])
	}
	ifaces := []Interface{}
	if s.interfaces != nil {
		if got := s.interfaces(); got != nil {
			ifaces = got
		}
	}
	if a.flags["--json"] {
		return writeJSON(w, ifaces)
	}
	return writeInterfaces(w, ifaces)
}
