package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// watchdogTimeout is the hardware watchdog's timeout: the box resets this
// long after the last feed.
const watchdogTimeout = 15 * time.Second

// devWatchdog is a Linux watchdog device (/dev/watchdog): open arms it, a
// write feeds it, and writing 'V' before closing disarms it ("magic close").
type devWatchdog struct{ f *os.File }

func openWatchdog(path string) (*devWatchdog, error) {
	if err := waitForPath(path, 5*time.Second); err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	// Some drivers have a fixed timeout; the default one then applies.
	_ = unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, int(watchdogTimeout/time.Second))
	return &devWatchdog{f: f}, nil
}

func (w *devWatchdog) Feed() error {
	_, err := w.f.Write([]byte{0})
	return err
}

func (w *devWatchdog) Release() error {
	_, err := w.f.Write([]byte("V"))
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// keepWatch runs the board's watchdog and status LED off the firmware's
// health until ctx is done.
func (in *initSystem) keepWatch(ctx context.Context) {
	var wd watchdog
	if in.prof.Watchdog != "" {
		if d, err := openWatchdog(in.prof.Watchdog); err != nil {
			in.log.Warn("no hardware watchdog", "err", err)
		} else {
			in.log.Info("hardware watchdog armed", "device", in.prof.Watchdog, "timeout", watchdogTimeout)
			wd = d
		}
	}
	var led *statusLED
	if in.prof.LED != "" {
		if l, err := openLED("/", in.prof.LED); err != nil {
			in.log.Warn("no status LED", "err", err)
		} else {
			led = l
		}
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	w := &watcher{healthy: func(now time.Time) bool { return in.health.ok(now, bootGrace) }, wd: wd, led: led, log: in.log}
	w.run(ctx, t.C)
}
