package main

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// consoleShell offers the management shell on the console until ctx is
// done. It is a client of the management socket, as "firmware shell" is, so
// it reconnects when the firmware restarts; the console stays usable even
// when the network config is broken.
func consoleShell(ctx context.Context, socket string, console io.ReadWriter, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := waitForPath(socket, time.Minute); err == nil {
			if err := interactive(socket, console, console); err != nil {
				log.Warn("console shell", "err", err)
			}
		}
		// Whatever ended the session (exit, EOF, a firmware restart),
		// do not spin.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
