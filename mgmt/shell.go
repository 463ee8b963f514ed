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
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
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

// TCPControl is what the commands that act on TCP use: tcpext's
// protocol-wide counters and its abort, and active opens over the
// firmware's own stack.
type TCPControl interface {
	// Stats returns the protocol-wide counters.
	Stats() tcpext.StatsSnapshot
	// Abort resets the connection of TCB id (RST); it fails if there is no
	// such TCB.
	Abort(id uint64) error
	// SetDefaultCongestionControl names the congestion control of new
	// connections; it fails for an unknown name.
	SetDefaultCongestionControl(name string) error
	// Dial opens a TCP connection to remote, from localPort unless that is
	// 0, and returns it with the id of its TCB (0 if it could not be told).
	// It returns when the connection is established, has failed, or ctx is
	// done.
	Dial(ctx context.Context, remote netip.AddrPort, localPort uint16) (conn net.Conn, tcbID uint64, err error)
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
	tcp        TCPControl
	config     any
	interfaces func() []Interface
	capture    Capturer
	dumps      DumpSource
	log        *slog.Logger
	power      func(PowerAction) error
	system     func() any
}

// Option configures a Shell.
type Option func(*Shell)

// WithConfig sets the effective configuration "show config" prints. cfg must
// encode to a JSON object; its keys become the dotted keys of the text view.
func WithConfig(cfg any) Option {
	return func(s *Shell) { s.config = cfg }
}

// WithTCPControl gives the shell the TCP controls that "show stats",
// "clear tcb" and "tcp connect" use.
func WithTCPControl(c TCPControl) Option {
	return func(s *Shell) { s.tcp = c }
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
	// valueFlags are the accepted flags that take a value, given as
	// "--flag VALUE" or "--flag=VALUE".
	valueFlags []string
	run        func(s *Shell, ctx context.Context, a args, w io.Writer) error
}

// args are a command line's words after the command name, split into
// positional arguments, boolean flags and flags with values.
type args struct {
	pos    []string
	flags  map[string]bool
	values map[string]string
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
			words:      []string{"show", "tcb"},
			args:       "[ID] [--json] [--state S[,S]] [--port N] [--remote ADDR[:PORT]|PREFIX] [--sort KEY] [--reverse]",
			help:       "list TCBs (filtered, sorted), or show one TCB in full",
			flags:      []string{"--json", "--reverse"},
			valueFlags: []string{"--state", "--port", "--remote", "--sort"},
			run:        (*Shell).showTCB,
		},
		{
			words: []string{"tcb", "dump"},
			args:  "ID|all [--pcap]",
			help:  "the flight recorder: a TCB with its recent events as JSON, or its segments as pcap",
			flags: []string{"--pcap"},
			run:   (*Shell).tcbDump,
		},
		{
			words: []string{"show", "stats"},
			args:  "[--json]",
			help:  "show TCP counters and the number of TCBs in each state",
			flags: []string{"--json"},
			run:   (*Shell).showStats,
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
		{
			words: []string{"clear", "tcb"},
			args:  "ID",
			help:  "abort a connection: send RST and drop its TCB",
			run:   (*Shell).clearTCB,
		},
		{
			words: []string{"set", "tcp", "congestion-control"},
			args:  "NAME",
			help:  "set the congestion control of new connections (newreno, cubic)",
			run:   (*Shell).setCongestionControl,
		},
		{
			words:      []string{"tcp", "connect"},
			args:       "HOST:PORT [--local-port N] [--send TEXT] [--hold DURATION]",
			help:       "open a connection from the firmware's stack, send TEXT, print what comes back",
			valueFlags: []string{"--local-port", "--send", "--hold"},
			run:        (*Shell).tcpConnect,
		},
		{
			words:      []string{"capture", "start"},
			args:       "[--file PATH] [--filter HOST|PORT|HOST:PORT]",
			help:       "write the NIC's frames (both directions) as pcap to PATH",
			valueFlags: []string{"--file", "--filter"},
			run:        (*Shell).captureStart,
		},
		{
			words: []string{"capture", "stop"},
			args:  "[--json]",
			help:  "stop the capture and say what it wrote",
			flags: []string{"--json"},
			run:   (*Shell).captureStop,
		},
		{
			words: []string{"show", "system"},
			args:  "[--json]",
			help:  "show the box: board, kernel, uptime, memory",
			flags: []string{"--json"},
			run:   (*Shell).showSystem,
		},
		{
			words: []string{"reboot"},
			help:  "restart the box (when the firmware is its init)",
			run:   powerCommand(Reboot),
		},
		{
			words: []string{"poweroff"},
			help:  "power the box off (when the firmware is its init)",
			run:   powerCommand(PowerOff),
		},
	}
}

// Run executes one command line, writes its output to w and returns its exit
// status. Errors are reported on w as "error: ..." lines; a failing or even
// panicking command never takes the shell down.
//
// The line is split into words as a shell would (see splitWords), so an
// argument with blanks can be quoted. A command that runs for a while calls
// w's Flush method, if it has one, to show its progress.
func (s *Shell) Run(ctx context.Context, line string, w io.Writer) (status int) {
	words, err := splitWords(line)
	if err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		return StatusUsage
	}
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
	a := args{flags: map[string]bool{}, values: map[string]string{}}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "-") {
			a.pos = append(a.pos, w)
			continue
		}
		name, value, hasValue := strings.Cut(w, "=")
		switch {
		case slices.Contains(cmd.flags, name):
			if hasValue {
				return args{}, usageErrorf("flag %s takes no value", name)
			}
			a.flags[name] = true
		case slices.Contains(cmd.valueFlags, name):
			if !hasValue {
				if i+1 == len(words) {
					return args{}, usageErrorf("flag %s needs a value", name)
				}
				i++
				value = words[i]
			}
			a.values[name] = value
		default:
			return args{}, usageErrorf("unknown flag %q", w)
		}
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

// writeHelp lists the commands, each as its usage with what it does on
// the line below, so long usages do not push the text off the screen.
func (s *Shell) writeHelp(w io.Writer) {
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n      %s\n", c.usage(), c.help)
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
