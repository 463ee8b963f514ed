// Package connserve runs a stream server's accept loop, which the firmware's
// services, the management socket and the SSH server share: one goroutine
// per connection, a back-off when Accept fails for a while, a handler's
// panic contained to its connection, and an orderly stop.
package connserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"
)

// Accept back-off: from minDelay, doubling, to maxDelay.
const (
	minDelay = 5 * time.Millisecond
	maxDelay = time.Second
)

// Serve accepts connections on ln and runs handle for each in its own
// goroutine until ctx is done. It then closes ln and every open connection,
// waits for the handlers and returns nil. A connection is closed when its
// handler returns; a handler that panics is logged and its connection
// closed, and the server keeps running. A failed Accept (say, out of file
// descriptors) is logged and retried after a back-off, so a persistent
// failure does not spin. Serve returns an error only if ln is closed by
// someone else.
func Serve(ctx context.Context, ln net.Listener, log *slog.Logger, handle func(net.Conn)) error {
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
		wg     sync.WaitGroup
	)
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		closed = true
		ln.Close()
		for c := range conns {
			c.Close()
		}
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer func() {
		stop()
		closeAll()
		wg.Wait()
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			delay = min(max(2*delay, minDelay), maxDelay)
			log.Warn("accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0

		mu.Lock()
		if closed {
			mu.Unlock()
			c.Close()
			return nil
		}
		conns[c] = struct{}{}
		wg.Add(1)
		mu.Unlock()

		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					log.Error("connection handler panicked", "remote", c.RemoteAddr().String(), "panic", r, "stack", string(debug.Stack()))
				}
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			handle(c)
		}()
	}
}
