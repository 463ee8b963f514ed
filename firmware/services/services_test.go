package services

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// serve runs h behind Serve on a loopback listener and returns its address.
// The service is stopped, and Serve's result checked, when the test ends.
func serve(t *testing.T, h Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, h)
}

// serveOn is serve on a listener of the test's own.
func serveOn(t *testing.T, ln net.Listener, h Handler) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Serve(ctx, ln, h, testLogger(t)) }()
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
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

func TestEcho(t *testing.T) {
	c := dial(t, serve(t, Echo))
	msg := bytes.Repeat([]byte("echo me "), 20000) // more than one read's worth
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(msg))
	}
}

func TestEchoPipe(t *testing.T) {
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Echo(server) }()
	client.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v; want \"ping\"", buf, err)
	}
	client.Close()
	if err := <-done; err != nil {
		t.Fatalf("Echo after peer close = %v, want nil", err)
	}
}

func TestDiscard(t *testing.T) {
	c := dial(t, serve(t, Discard))
	if _, err := c.Write(bytes.Repeat([]byte("x"), 1<<20)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	// Discard answers nothing and closes once we have.
	got, err := io.ReadAll(c)
	if err != nil || len(got) != 0 {
		t.Fatalf("ReadAll = %q, %v; want nothing, nil", got, err)
	}
}

func TestDaytime(t *testing.T) {
	before := time.Now().Add(-time.Second)
	c := dial(t, serve(t, Daytime))
	// The server closes first; ReadAll ending proves it.
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	line, ok := strings.CutSuffix(string(got), "\r\n")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("daytime sent %q, want one CRLF-terminated line", got)
	}
	when, err := time.Parse(time.RFC1123, line)
	if err != nil {
		t.Fatalf("daytime line %q: %v", line, err)
	}
	if when.Before(before.Truncate(time.Second)) || when.After(time.Now().Add(time.Second)) {
		t.Fatalf("daytime says %v, not now", when)
	}
}

func TestChargen(t *testing.T) {
	c := dial(t, serve(t, Chargen))
	r := bufio.NewReader(c)
	var lines []string
	for range 200 { // more than one 95-line cycle
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	const first = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg\r\n"
	if lines[0] != first {
		t.Errorf("line 0 = %q, want %q", lines[0], first)
	}
	if want := first[1:72] + "h\r\n"; lines[1] != want {
		t.Errorf("line 1 = %q, want %q", lines[1], want)
	}
	for i, l := range lines {
		if len(l) != 74 {
			t.Fatalf("line %d is %d bytes, want 72 + CRLF", i, len(l))
		}
		if l != lines[i%95] {
			t.Fatalf("line %d = %q, want the pattern to repeat every 95 lines", i, l)
		}
	}
	// Input is thrown away and does not stop the stream.
	if _, err := c.Write([]byte("ignored\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
}

func TestChargenEndsWhenPeerGoes(t *testing.T) {
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Chargen(server) }()
	io.ReadFull(client, make([]byte, 1000))
	client.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Chargen returned nil after its peer went away")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Chargen kept going after its peer went away")
	}
	server.Close()
}

func TestPanicDoesNotKillService(t *testing.T) {
	var calls atomic.Int32
	addr := serve(t, func(c net.Conn) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return Daytime(c)
	})
	// The panicking connection is closed rather than left hanging.
	if got, err := io.ReadAll(dial(t, addr)); err != nil || len(got) != 0 {
		t.Fatalf("panicking connection gave %q, %v; want EOF", got, err)
	}
	if got, err := io.ReadAll(dial(t, addr)); err != nil || len(got) == 0 {
		t.Fatalf("next connection gave %q, %v; want the time", got, err)
	}
}

func TestShutdownClosesConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Serve(ctx, ln, Echo, testLogger(t)) }()

	c := dial(t, ln.Addr().String())
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1)) // the connection is being served
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after shutdown")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still accepting after shutdown")
	}
}

func TestServeReportsForeignClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = Serve(context.Background(), ln, Echo, testLogger(t))
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed listener = %v, want net.ErrClosed", err)
	}
}

func TestKeepAliveTurnsItOn(t *testing.T) {
	got := make(chan bool, 1)
	h := func(c net.Conn) error {
		got <- keepAliveOn(t, c)
		return nil
	}
	for _, tc := range []struct {
		name string
		h    Handler
		want bool
	}{
		{"KeepAlive(h)", KeepAlive(h), true},
		// The control: without the wrapper it is off, so the check above
		// means something.
		{"h", h, false},
	} {
		// Go's listeners enable keepalive on accepted connections by
		// default; these do not, so what the handler sees is KeepAlive's
		// doing.
		ln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dial(t, serveOn(t, ln, tc.h))
		if on := <-got; on != tc.want {
			t.Errorf("%s: SO_KEEPALIVE on = %v, want %v", tc.name, on, tc.want)
		}
	}
}

func TestKeepAliveServesOtherConns(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	go func() { done <- KeepAlive(Echo)(server) }()
	client.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v; want \"ping\"", buf, err)
	}
	client.Close()
	if err := <-done; err != nil {
		t.Fatalf("KeepAlive(Echo) over a pipe = %v, want nil", err)
	}
}

// keepAliveOn reads SO_KEEPALIVE of a host TCP connection.
func keepAliveOn(t *testing.T, c net.Conn) bool {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v != 0
}
