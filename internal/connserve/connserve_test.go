package connserve

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

// A handler's panic costs only its connection; stopping closes the
// connections still open and Serve returns nil once their handlers end.
func TestServePanicAndStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, quiet, func(c net.Conn) {
			b := make([]byte, 1)
			if _, err := c.Read(b); err != nil {
				return
			}
			if b[0] == 'p' {
				panic("asked to")
			}
			c.Write(b)
			io.Copy(io.Discard, c) // until Serve closes it
		})
	}()
	dial := func(first byte) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte{first})
		return c
	}
	panicked := dial('p')
	if _, err := panicked.Read(make([]byte, 1)); err == nil {
		t.Fatal("the panicking handler's connection stayed open")
	}
	held := dial('x')
	if _, err := io.ReadFull(held, make([]byte, 1)); err != nil {
		t.Fatalf("a connection after the panic: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after stop")
	}
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := held.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("held connection after stop: %v, want it closed", err)
	}
}

// A listener closed by someone else ends Serve with an error.
func TestServeListenerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), ln, quiet, func(net.Conn) {}) }()
	ln.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve = %v, want net.ErrClosed", err)
	}
}
