package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/synfin/synfin/mgmt"
)

// consoleShell offers the management shell, with line editing, on the
// console until ctx is done. It is a client of the management socket, so it
// reconnects when the firmware restarts; the console stays usable even
// when the network config is broken.
func consoleShell(ctx context.Context, socket string, console io.ReadWriter, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := waitForPath(socket, time.Minute); err == nil {
			if err := mgmt.ServeRemoteConsole(ctx, socket, console); err != nil && ctx.Err() == nil {
				log.Warn("console shell", "err", err)
			}
		}
		// Whatever ended the session (exit, end of input, a firmware
		// restart), do not spin.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// crlfWriter ends lines with CR LF: the console shell puts the terminal in
// raw mode, where a bare LF would not return the carriage.
type crlfWriter struct{ w io.Writer }

func (c crlfWriter) Write(p []byte) (int, error) {
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}
