package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/synfin/synfin/firmware/services"
)

// serviceRestartDelay is the first back-off before a failed service is
// restarted; it doubles up to restartDelayMax.
const serviceRestartDelay = 100 * time.Millisecond

// serveSupervised runs a service on ln until ctx is done. A service that
// panics or stops on its own is logged and restarted on a new listener
// from relisten, after a back-off, so one bad service does not take the
// firmware (and, as PID 1, the kernel) down. A panicking connection handler
// is already contained by services.Serve.
func serveSupervised(ctx context.Context, ln net.Listener, relisten func() (net.Listener, error), h services.Handler, log *slog.Logger) {
	delay := serviceRestartDelay
	for {
		if ln != nil {
			err := runRecovered(func() error { return services.Serve(ctx, ln, h, log) })
			if ctx.Err() != nil {
				return
			}
			// Serve closes ln when it returns normally; after a panic
			// it may not have.
			ln.Close()
			log.Error("service stopped; restarting", "err", err, "in", delay)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, restartDelayMax)
		var err error
		if ln, err = relisten(); err != nil {
			log.Error("service restart", "err", err)
			ln = nil
		}
	}
}

// runRecovered runs f, turning a panic into an error that carries the
// stack, so that a supervisor can log it and restart.
func runRecovered(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}
