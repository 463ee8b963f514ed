package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// health is whether the firmware is up, as the watchdog and the status LED
// see it: ready since its ready line, and not while it is down or restarting.
type health struct {
	mu       sync.Mutex
	ready    bool
	lastGood time.Time // when it was last ready, or when init started
}

func (h *health) set(ready bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ready || h.ready {
		h.lastGood = time.Now()
	}
	h.ready = ready
}

// ok reports whether the firmware counts as healthy at now: ready, or not
// ready for less than grace (booting, or restarting after a failure).
func (h *health) ok(now time.Time, grace time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastGood.IsZero() {
		h.lastGood = now
	}
	return h.ready || now.Sub(h.lastGood) < grace
}

// watchdog is a hardware watchdog: the box resets unless it is fed.
type watchdog interface {
	// Feed restarts the watchdog's countdown.
	Feed() error
	// Release stops the watchdog for an orderly shutdown.
	Release() error
}

// statusLED is a LED under /sys/class/leds the firmware switches itself.
type statusLED struct {
	dir string
	max string // brightness when on
}

// openLED takes over the LED called name: no kernel trigger drives it
// from now on.
func openLED(root, name string) (*statusLED, error) {
	dir := filepath.Join(root, "sys/class/leds", name)
	if err := os.WriteFile(filepath.Join(dir, "trigger"), []byte("none"), 0o644); err != nil {
		return nil, fmt.Errorf("led %s: %w", name, err)
	}
	max := "1"
	if b, err := os.ReadFile(filepath.Join(dir, "max_brightness")); err == nil {
		max = strings.TrimSpace(string(b))
	}
	return &statusLED{dir: dir, max: max}, nil
}

func (l *statusLED) set(on bool) error {
	v := "0"
	if on {
		v = l.max
	}
	return os.WriteFile(filepath.Join(l.dir, "brightness"), []byte(v), 0o644)
}

// watcher feeds wd and lights led steadily on every tick while healthy says
// so; while it does not, the watchdog goes hungry (and resets the box) and
// the LED blinks. wd and led may be nil.
type watcher struct {
	healthy    func(time.Time) bool
	wd         watchdog
	led        *statusLED
	log        *slog.Logger
	unhealthy  bool
	blinkState bool
}

func (w *watcher) tick(now time.Time) {
	ok := w.healthy(now)
	if ok == w.unhealthy {
		if ok {
			w.log.Info("firmware healthy again; feeding the watchdog")
		} else {
			w.log.Error("firmware unhealthy: no longer feeding the watchdog")
		}
		w.unhealthy = !ok
	}
	if ok && w.wd != nil {
		if err := w.wd.Feed(); err != nil {
			w.log.Warn("watchdog feed", "err", err)
		}
	}
	if w.led != nil {
		w.blinkState = !w.blinkState
		if err := w.led.set(ok || w.blinkState); err != nil {
			w.log.Debug("status LED", "err", err)
		}
	}
}

// run ticks on every tick until ctx is done, then releases the watchdog so
// that an orderly shutdown is not taken for a hang.
func (w *watcher) run(ctx context.Context, ticks <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			if w.wd != nil {
				if err := w.wd.Release(); err != nil {
					w.log.Warn("watchdog release", "err", err)
				}
			}
			return
		case now := <-ticks:
			w.tick(now)
		}
	}
}
