package mgmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synfin/synfin/tcpext"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startServer serves sh on a socket in a fresh temp dir. The server is
// stopped, and Serve's result checked, when the test ends.
func startServer(t *testing.T, sh *Shell) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "mgmt.sock")
	srv, err := Listen(path, sh, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not stop after cancel")
		}
	})
	return path
}

func TestRunCommandEndToEnd(t *testing.T) {
	path := startServer(t, NewShell(sampleTCBs))
	for _, tc := range []struct {
		cmd    string
		status int
		want   string
	}{
		{"help", StatusOK, "show tcb [ID] [--json]"},
		{"show tcb", StatusOK, "198.18.0.1:40312"},
		{"show tcb 99", StatusError, "error: no TCB with id 99"},
		{"bogus", StatusUsage, `error: unknown command "bogus"`},
		{"", StatusOK, ""},
	} {
		var out bytes.Buffer
		status, err := RunCommand(path, tc.cmd, &out)
		if err != nil {
			t.Fatalf("%q: %v", tc.cmd, err)
		}
		if status != tc.status || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%q: got status %d and\n%s\nwant status %d and %q", tc.cmd, status, out.String(), tc.status, tc.want)
		}
	}
}

func TestSocketMode(t *testing.T) {
	path := startServer(t, NewShell(sampleTCBs))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if dir.Mode().Perm() != 0o700 {
		t.Errorf("created parent dir mode = %v, want 0700", dir.Mode().Perm())
	}
}

func TestSeveralCommandsOnOneConnection(t *testing.T) {
	path := startServer(t, NewShell(sampleTCBs))
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		var out bytes.Buffer
		status, err := c.Run("show tcb 42 --json", &out)
		if err != nil || status != StatusOK {
			t.Fatalf("command %d: %d, %v", i, status, err)
		}
		if !strings.Contains(out.String(), `"id": 42`) {
			t.Fatalf("command %d output:\n%s", i, out.String())
		}
		if status, err := c.Run("nope", io.Discard); err != nil || status != StatusUsage {
			t.Fatalf("bad command %d: %d, %v", i, status, err)
		}
	}
	if _, err := c.Run("two\nlines", io.Discard); err == nil {
		t.Fatal("Run accepted a multi-line command")
	}
}

// manyTCBs makes output far longer than one frame.
func manyTCBs(n int) fakeTCBs {
	tcbs := make(fakeTCBs, n)
	for i := range tcbs {
		tcbs[i] = tcpext.TCBInfo{ID: uint64(i + 1), State: "ESTABLISHED", Local: "198.18.0.2:7", Remote: fmt.Sprintf("198.18.0.1:%d", 1024+i)}
	}
	return tcbs
}

func TestConcurrentClientsAndLargeOutput(t *testing.T) {
	const n = 5000
	path := startServer(t, NewShell(manyTCBs(n)))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var out bytes.Buffer
			status, err := RunCommand(path, "show tcb", &out)
			if err != nil || status != StatusOK {
				t.Errorf("show tcb: %d, %v", status, err)
				return
			}
			if lines := strings.Count(out.String(), "\n"); lines != n+1 {
				t.Errorf("got %d lines (%d bytes), want %d", lines, out.Len(), n+1)
			}
		})
	}
	wg.Wait()
}

// readAnswer reads one answer off a raw connection.
func readAnswer(t *testing.T, c net.Conn) (string, int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out bytes.Buffer
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatalf("read frame header: %v", err)
		}
		payload := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
		if _, err := io.ReadFull(c, payload); err != nil {
			t.Fatalf("read frame payload: %v", err)
		}
		switch hdr[0] {
		case 'o':
			out.Write(payload)
		case 's':
			return out.String(), int(int32(binary.BigEndian.Uint32(payload)))
		default:
			t.Fatalf("frame type %q", hdr[0])
		}
	}
}

func TestServerSurvivesGarbage(t *testing.T) {
	path := startServer(t, NewShell(sampleTCBs))
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("\x00\xff\x01garbage \x7f\r\n"))
	if out, status := readAnswer(t, c); status != StatusUsage || !strings.Contains(out, "error: unknown command") {
		t.Fatalf("garbage: %q, %d", out, status)
	}
	// Same connection, raw protocol: still in step.
	c.Write([]byte("show tcb 42\n"))
	if out, status := readAnswer(t, c); status != StatusOK || !strings.Contains(out, "ESTABLISHED") {
		t.Fatalf("after garbage: %q, %d", out, status)
	}

	// A line past the limit gets an error, then the connection is closed.
	c.Write(append(bytes.Repeat([]byte("x"), MaxLineLen+10), '\n'))
	if out, status := readAnswer(t, c); status != StatusUsage || !strings.Contains(out, "longer than") {
		t.Fatalf("long line: %q, %d", out, status)
	}
	// Unread input makes the close a reset rather than an EOF; either will do.
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection open after a long line: read %d bytes", n)
	}

	if status, err := RunCommand(path, "help", io.Discard); err != nil || status != StatusOK {
		t.Fatalf("server after garbage: %d, %v", status, err)
	}
}

// gatedTCBs blocks TCBs until the gate opens, so a client can leave while a
// command runs.
type gatedTCBs struct {
	fakeTCBs
	entered chan struct{}
	gate    chan struct{}
}

func (g gatedTCBs) TCBs() []tcpext.TCBInfo {
	g.entered <- struct{}{}
	<-g.gate
	return g.fakeTCBs
}

func TestServerSurvivesClientLeavingMidCommand(t *testing.T) {
	g := gatedTCBs{fakeTCBs: manyTCBs(5000), entered: make(chan struct{}), gate: make(chan struct{})}
	path := startServer(t, NewShell(g))

	// One client leaves before the output is ready.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("show tcb\n"))
	<-g.entered
	c.Close()
	g.gate <- struct{}{}

	// Another leaves after reading a little of a long answer.
	c, err = net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("show tcb\n"))
	<-g.entered
	g.gate <- struct{}{}
	io.ReadFull(c, make([]byte, 100))
	c.Close()

	close(g.gate)
	go func() {
		for range g.entered {
		}
	}()
	var out bytes.Buffer
	if status, err := RunCommand(path, "show tcb 1", &out); err != nil || status != StatusOK {
		t.Fatalf("server after clients left: %d, %v\n%s", status, err, out.String())
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mgmt.sock")
	// A crashed run leaves its socket file behind.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	srv, err := Listen(path, NewShell(sampleTCBs), quietLogger())
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	if status, err := RunCommand(path, "help", io.Discard); err != nil || status != StatusOK {
		t.Fatalf("help: %d, %v", status, err)
	}

	// A live one is not taken over.
	if _, err := Listen(path, NewShell(sampleTCBs), quietLogger()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Listen on a live socket = %v, want an in-use error", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after shutdown: %v", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mgmt.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, NewShell(sampleTCBs), quietLogger()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file = %v, want refusal", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("Listen clobbered a regular file")
	}
}

func TestShutdownDisconnectsClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mgmt.sock")
	srv, err := Listen(path, NewShell(sampleTCBs), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()

	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if status, err := c.Run("help", io.Discard); err != nil || status != StatusOK {
		t.Fatalf("help: %d, %v", status, err)
	}
	cancel() // an idle interactive client must not hold up shutdown
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve waited for an idle client")
	}
	if _, err := c.Run("help", io.Discard); err == nil {
		t.Fatal("client still served after shutdown")
	}
}

func TestRunCommandNoServer(t *testing.T) {
	if _, err := RunCommand(filepath.Join(t.TempDir(), "none.sock"), "help", io.Discard); err == nil {
		t.Fatal("RunCommand without a server succeeded")
	}
}

// readFrame reads one frame off a raw connection.
func readFrame(t *testing.T, c net.Conn) (typ byte, payload []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	payload = make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(c, payload); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return hdr[0], payload
}

func TestHeldConnectionDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	f := &fakeTCP{addr: peer(t, func(c *net.TCPConn) {
		<-release
		c.Write([]byte("done\n"))
	})}
	path := startServer(t, tcpShell(f))

	holder, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	holder.Write([]byte("tcp connect 198.18.0.1:7 --hold 1h\n"))
	// The outcome of the open is shown before the hold, not after it.
	if typ, p := readFrame(t, holder); typ != frameOutput || !strings.HasPrefix(string(p), "connected to ") {
		t.Fatalf("first frame %q %q, want the connected line", typ, p)
	}

	// Meanwhile another session works.
	var out bytes.Buffer
	if status, err := RunCommand(path, "clear tcb 1", &out); err != nil || status != StatusError || !strings.Contains(out.String(), "no TCB with id 1") {
		t.Fatalf("second session during the hold: %d, %v, %q", status, err, out.String())
	}

	close(release)
	rest, status := readAnswer(t, holder)
	if status != StatusOK || !strings.Contains(rest, "done\n") || !strings.Contains(rest, "closed: 0 bytes sent, 5 bytes received") {
		t.Fatalf("after the peer closed: %q, %d", rest, status)
	}
}
