package main

import (
	"context"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/synfin/synfin/mgmt"
)

// shellSession is the interactive "firmware shell": on a terminal, the
// line-editing shell (history, tab completion), as over SSH and on the
// console; otherwise, for scripts and pipes, plain lines.
func shellSession(socket string, stdin io.Reader, stdout io.Writer) error {
	if tty, ok := stdin.(*os.File); ok && term.IsTerminal(int(tty.Fd())) {
		return mgmt.RunRemoteShell(context.Background(), socket, terminalIO{tty, stdout})
	}
	return interactive(socket, stdin, stdout)
}

// terminalIO is the terminal a person runs "firmware shell" on: keys come
// from stdin, output goes to stdout, and raw mode is set on stdin's
// descriptor.
type terminalIO struct {
	in  *os.File
	out io.Writer
}

func (t terminalIO) Read(p []byte) (int, error)  { return t.in.Read(p) }
func (t terminalIO) Write(p []byte) (int, error) { return t.out.Write(p) }
func (t terminalIO) Fd() uintptr                 { return t.in.Fd() }
