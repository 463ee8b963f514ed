package mgmt

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeConsole is a console the test types at and reads.
type fakeConsole struct {
	in  *io.PipeWriter
	out *syncBuffer
	rw  io.ReadWriter
}

func newFakeConsole() *fakeConsole {
	r, w := io.Pipe()
	out := &syncBuffer{}
	return &fakeConsole{in: w, out: out, rw: struct {
		io.Reader
		io.Writer
	}{r, out}}
}

func (c *fakeConsole) typ(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c.in, s); err != nil {
		t.Fatal(err)
	}
}

func serve(t *testing.T, run func() error) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- run() }()
	return done
}

func waitDone(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("console ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the console did not end at the end of its input")
	}
}

func TestServeConsole(t *testing.T) {
	c := newFakeConsole()
	done := serve(t, func() error { return ServeConsole(context.Background(), NewShell(sampleTCBs), c.rw) })
	waitOutput(t, c.out, prompt, 1)
	c.typ(t, "show tcb\r")
	waitOutput(t, c.out, prompt, 2)
	// "exit" ends the session, not the console: a new one starts.
	c.typ(t, "exit\r")
	waitOutput(t, c.out, "session ended", 1)
	waitOutput(t, c.out, prompt, 3)
	c.typ(t, "show tcb 4\t\r")
	waitOutput(t, c.out, prompt, 4)
	c.in.Close()
	waitDone(t, done)
	out := c.out.String()
	for _, want := range []string{"ESTABLISHED  198.18.0.2:7", "\r\n", "TCB 42  ESTABLISHED"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the console's output:\n%s", want, out)
		}
	}
}

func TestServeRemoteConsole(t *testing.T) {
	path := startServer(t, NewShell(sampleTCBs))
	c := newFakeConsole()
	done := serve(t, func() error { return ServeRemoteConsole(context.Background(), path, c.rw) })
	waitOutput(t, c.out, prompt, 1)
	// Tab completes the TCB id from the firmware's table: "4" to "42".
	c.typ(t, "show tcb 4\t\r")
	waitOutput(t, c.out, prompt, 2)
	c.typ(t, "bogus\r")
	waitOutput(t, c.out, prompt, 3)
	c.in.Close()
	waitDone(t, done)
	out := c.out.String()
	for _, want := range []string{"TCB 42  ESTABLISHED", `unknown command "bogus"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the console's output:\n%s", want, out)
		}
	}

	if err := ServeRemoteConsole(context.Background(), path+".missing", c.rw); err == nil {
		t.Error("a console without a firmware behind its socket ran")
	}
}

func TestRunRemoteShellEndsAtExit(t *testing.T) {
	path := startServer(t, NewShell(sampleTCBs))
	c := newFakeConsole()
	done := serve(t, func() error { return RunRemoteShell(context.Background(), path, c.rw) })
	waitOutput(t, c.out, prompt, 1)
	c.typ(t, "show tcb\r")
	waitOutput(t, c.out, prompt, 2)
	c.typ(t, "exit\r")
	waitDone(t, done)
	if out := c.out.String(); strings.Contains(out, "session ended") || !strings.Contains(out, "ESTABLISHED") {
		t.Errorf("one session, then the end:\n%s", out)
	}
}
