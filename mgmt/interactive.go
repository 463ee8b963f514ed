package mgmt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/synfin/synfin/tcpext"
)

// prompt is the interactive shell's prompt, on SSH and the console alike.
const prompt = "synfin> "

// banner greets a person at the start of an interactive session.
const banner = `synfin management shell: "help" lists commands, tab completes, "exit" leaves`

// terminalOutput is a command's output to a person's terminal. Commands
// whose output is binary (pcap) refuse to write there.
type terminalOutput struct{ *bufio.Writer }

func (terminalOutput) isTerminal() bool { return true }

// isTerminal reports whether w goes to a person's terminal.
func isTerminal(w io.Writer) bool {
	t, ok := w.(interface{ isTerminal() bool })
	return ok && t.isTerminal()
}

// Interactive runs commands typed at t, with line editing, history (the
// arrow keys) and tab completion, until "exit", Ctrl-D or Ctrl-C at the
// prompt, or the end of input. Commands run with ctx.
func (s *Shell) Interactive(ctx context.Context, t *term.Terminal) error {
	err := s.interactive(ctx, t)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// interactive is Interactive, telling the end of input (io.EOF) from
// "exit" (nil).
func (s *Shell) interactive(ctx context.Context, t *term.Terminal) error {
	t.AutoCompleteCallback = s.autoComplete(t)
	return session(t, func(line string) error {
		out := terminalOutput{bufio.NewWriter(t)}
		s.Run(ctx, line, out)
		if err := out.Flush(); err != nil {
			return err
		}
		return ctx.Err()
	})
}

// session greets the user at t and hands run each line typed, until
// "exit" (nil), the end of input (io.EOF) or run's error.
func session(t *term.Terminal, run func(line string) error) error {
	fmt.Fprintln(t, banner)
	for {
		line, err := t.ReadLine()
		if err != nil {
			return err
		}
		switch line = strings.TrimSpace(line); line {
		case "":
			continue
		case "exit", "quit", "logout":
			return nil
		}
		if err := run(line); err != nil {
			return err
		}
	}
}

// ServeConsole runs the interactive shell on a console such as a serial
// line: one session after another ("exit" starts a new one), until ctx is
// done or the console reaches the end of its input. A console with the
// file descriptor of a terminal (an *os.File on a tty) is put in raw mode,
// for line editing, and restored when ServeConsole returns; one with read
// deadlines is woken when ctx is done.
func ServeConsole(ctx context.Context, shell *Shell, rw io.ReadWriter) error {
	return serveTerminal(ctx, rw, false, func(t *term.Terminal) error { return shell.interactive(ctx, t) })
}

// ServeRemoteConsole is ServeConsole for a console held by another process
// than the firmware's, such as an init that supervises it: lines are
// edited here and run by the firmware behind the management socket at
// path, and tab completion asks it for TCB ids. It returns when the
// firmware goes away, so the caller can wait for the socket and call again.
func ServeRemoteConsole(ctx context.Context, path string, rw io.ReadWriter) error {
	return remoteTerminal(ctx, path, rw, false)
}

// RunRemoteShell runs one interactive session, with line editing, on the
// terminal rw against the firmware behind the management socket at path,
// until "exit" or the end of input: "firmware shell" on a terminal. rw is
// put in raw mode if it has the file descriptor (an Fd method) of a
// terminal.
func RunRemoteShell(ctx context.Context, path string, rw io.ReadWriter) error {
	return remoteTerminal(ctx, path, rw, true)
}

func remoteTerminal(ctx context.Context, path string, rw io.ReadWriter, once bool) error {
	c, err := Dial(path)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	completer := NewShell(remoteTCBs{c})
	return serveTerminal(ctx, rw, once, func(t *term.Terminal) error {
		t.AutoCompleteCallback = completer.autoComplete(t)
		return remoteSession(c, t)
	})
}

// remoteSession runs the lines typed at t on the firmware behind c.
func remoteSession(c *Client, t *term.Terminal) error {
	return session(t, func(line string) error {
		_, err := c.Run(line, t)
		return err
	})
}

// remoteTCBs lists the TCBs of a firmware behind its management socket,
// for tab completion.
type remoteTCBs struct{ c *Client }

func (r remoteTCBs) TCBs() []tcpext.TCBInfo {
	var b bytes.Buffer
	if status, err := r.c.Run("show tcb --json", &b); err != nil || status != StatusOK {
		return nil
	}
	var tcbs []tcpext.TCBInfo
	if json.Unmarshal(b.Bytes(), &tcbs) != nil {
		return nil
	}
	return tcbs
}

func (r remoteTCBs) TCB(id uint64) (tcpext.TCBInfo, bool) {
	for _, t := range r.TCBs() {
		if t.ID == id {
			return t, true
		}
	}
	return tcpext.TCBInfo{}, false
}

// serveTerminal runs sessions on a terminal over rw until ctx is done or
// the input ends, or just one if once is set; in raw mode if rw has the
// file descriptor of a terminal.
func serveTerminal(ctx context.Context, rw io.ReadWriter, once bool, session func(*term.Terminal) error) error {
	t := term.NewTerminal(rw, prompt)
	if f, ok := rw.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("console: raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		if w, h, err := term.GetSize(fd); err == nil && w > 0 {
			t.SetSize(w, h)
		}
	}
	if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		stop := context.AfterFunc(ctx, func() { d.SetReadDeadline(time.Now()) })
		defer stop()
	}
	for ctx.Err() == nil {
		err := session(t)
		switch {
		case ctx.Err() != nil, errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("console: %w", err)
		case once:
			return nil
		}
		fmt.Fprintln(t, "session ended")
	}
	return nil
}

// autoComplete is the terminal's tab key: it completes the word before the
// cursor as far as every candidate agrees, and when that adds nothing it
// lists the candidates.
func (s *Shell) autoComplete(t *term.Terminal) func(line string, pos int, key rune) (string, int, bool) {
	return func(line string, pos int, key rune) (string, int, bool) {
		if key != '\t' {
			return "", 0, false
		}
		before := line[:pos]
		cur, cands := s.complete(before)
		if len(cands) == 0 {
			return "", 0, false
		}
		add := commonPrefix(cands)[len(cur):]
		if len(cands) == 1 {
			add += " "
		}
		if add != "" {
			return before + add + line[pos:], pos + len(add), true
		}
		// The terminal is locked while this runs; Write waits for the
		// callback to return, then redraws the prompt and line below.
		go fmt.Fprintln(t, strings.Join(cands, "  "))
		return "", 0, false
	}
}

// complete returns the word being typed at the end of line and the words
// that could stand there: command words, then the command's flags, TCB
// ids where it takes one, and values of --state and --sort.
func (s *Shell) complete(line string) (cur string, candidates []string) {
	words := strings.Fields(line)
	if len(words) > 0 && !strings.HasSuffix(line, " ") && !strings.HasSuffix(line, "\t") {
		cur, words = words[len(words)-1], words[:len(words)-1]
	}
	add := func(c string) {
		if strings.HasPrefix(c, cur) && !slices.Contains(candidates, c) {
			candidates = append(candidates, c)
		}
	}
	for _, c := range commands {
		switch {
		case len(words) < len(c.words):
			if slices.Equal(c.words[:len(words)], words) {
				add(c.words[len(words)])
			}
		case slices.Equal(c.words, words[:len(c.words)]):
			s.completeArgs(c, words[len(c.words):], add)
		}
	}
	slices.Sort(candidates)
	return cur, candidates
}

// completeArgs offers what may follow a command's name and the given
// arguments.
func (s *Shell) completeArgs(c *command, after []string, add func(string)) {
	if len(after) > 0 && slices.Contains(c.valueFlags, after[len(after)-1]) {
		for _, v := range flagValues[after[len(after)-1]] {
			add(v)
		}
		return
	}
	for _, f := range c.flags {
		add(f)
	}
	for _, f := range c.valueFlags {
		add(f)
	}
	if !strings.Contains(c.args, "ID") {
		return
	}
	if strings.Contains(c.args, "all") {
		add("all")
	}
	if s.tcbs != nil {
		for _, t := range s.tcbs.TCBs() {
			add(strconv.FormatUint(t.ID, 10))
		}
	}
}

func commonPrefix(words []string) string {
	p := words[0]
	for _, w := range words[1:] {
		for !strings.HasPrefix(w, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}
