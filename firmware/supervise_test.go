package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// panickyListener panics on Accept, as a broken service would.
type panickyListener struct {
	net.Listener
	once sync.Once
	shut chan struct{}
}

func (l *panickyListener) Accept() (net.Conn, error) { panic("service bug") }

func (l *panickyListener) Close() error {
	l.once.Do(func() { close(l.shut) })
	return nil
}

func TestServiceRestartedAfterPanic(t *testing.T) {
	bad := &panickyListener{shut: make(chan struct{})}
	var good net.Listener
	relistened := make(chan struct{})
	relisten := func() (net.Listener, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		good = ln
		close(relistened)
		return ln, err
	}
	echo := func(c net.Conn) error {
		_, err := io.Copy(c, c)
		return err
	}
	var logged strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		serveSupervised(ctx, bad, relisten, echo, log)
		close(done)
	}()

	select {
	case <-relistened:
	case <-time.After(5 * time.Second):
		t.Fatal("the service was not restarted after its panic")
	}
	select {
	case <-bad.shut:
	default:
		t.Error("the panicked service's listener was not closed")
	}
	c, err := net.Dial("tcp", good.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("restarted service answered %q, %v", line, err)
	}

	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "service bug") || !strings.Contains(logged.String(), "restarting") {
		t.Errorf("the panic was not logged:\n%s", logged.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
