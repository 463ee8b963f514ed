// Package services implements the classic TCP test services — echo (RFC
// 862), discard (RFC 863), daytime (RFC 867) and chargen (RFC 864) — over any
// net.Listener, so they run on the firmware's stack in production and on the
// host's loopback in tests.
package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/synfin/synfin/internal/connserve"
)

// Handler serves one connection. Serve closes the connection once the
// handler returns, and closes it early to stop the handler at shutdown.
type Handler func(c net.Conn) error

// Serve accepts connections on ln and runs h for each in its own goroutine
// until ctx is done. It then closes ln and every open connection, waits for
// the handlers and returns nil. A handler that panics is logged and its
// connection closed; the service keeps running. Serve returns an error only
// if ln is closed by someone else.
func Serve(ctx context.Context, ln net.Listener, h Handler, log *slog.Logger) error {
	return connserve.Serve(ctx, ln, log, func(c net.Conn) {
		remote := c.RemoteAddr().String()
		log.Debug("connection accepted", "remote", remote)
		if err := h(c); err != nil {
			// Peers reset and vanish all the time; that is not news.
			log.Debug("connection ended", "remote", remote, "err", err)
		}
	})
}

// KeepAlive wraps h so that TCP keepalive is on for its connections. Echo,
// discard and chargen wait on the peer for as long as it likes, so a client
// that vanishes without a word (powered off, or a NAT that forgot it) would
// otherwise hold a handler and a TCB for good; keepalive finds it gone. The
// timers are the TCP's. A connection without keepalive is served as is.
func KeepAlive(h Handler) Handler {
	return func(c net.Conn) error {
		if ka, ok := c.(interface{ SetKeepAlive(bool) error }); ok {
			if err := ka.SetKeepAlive(true); err != nil {
				return fmt.Errorf("keepalive: %w", err)
			}
		}
		return h(c)
	}
}

// Echo sends back everything it receives until the peer closes (RFC 862).
func Echo(c net.Conn) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return fmt.Errorf("echo: %w", werr)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
	}
}

// Discard reads and drops everything until the peer closes (RFC 863).
func Discard(c net.Conn) error {
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("discard: %w", err)
	}
	return nil
}

// Daytime writes the current time as one line and returns, so the server
// closes first (RFC 867). The RFC leaves the format open; RFC 1123's is the
// customary one.
func Daytime(c net.Conn) error {
	if _, err := io.WriteString(c, time.Now().Format(time.RFC1123)+"\r\n"); err != nil {
		return fmt.Errorf("daytime: %w", err)
	}
	return nil
}

// chargenCycle is one full period of the RFC 864 pattern: 95 lines of 72
// printable ASCII characters, each starting one character further along.
var chargenCycle = func() []byte {
	const (
		first     = ' '
		printable = 95
		lineLen   = 72
	)
	b := make([]byte, 0, printable*(lineLen+2))
	for line := range printable {
		for i := range lineLen {
			b = append(b, byte(first+(line+i)%printable))
		}
		b = append(b, '\r', '\n')
	}
	return b
}()

// Chargen streams the rotating character pattern until the peer goes away
// (RFC 864). Whatever the peer sends is thrown away.
func Chargen(c net.Conn) error {
	// The reader ends when Serve closes the connection.
	go io.Copy(io.Discard, c)
	for {
		if _, err := c.Write(chargenCycle); err != nil {
			return fmt.Errorf("chargen: %w", err)
		}
	}
}
