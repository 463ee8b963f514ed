package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

type fakeWatchdog struct{ feeds, releases int }

func (w *fakeWatchdog) Feed() error {
	w.feeds++
	return nil
}

func (w *fakeWatchdog) Release() error {
	w.releases++
	return nil
}

func TestHealthGrace(t *testing.T) {
	var h health
	t0 := time.Now()
	grace := time.Minute
	if !h.ok(t0, grace) {
		t.Fatal("not healthy at boot, within the grace period")
	}
	if h.ok(t0.Add(2*grace), grace) {
		t.Fatal("healthy although never ready for twice the grace period")
	}
	h.set(true)
	if !h.ok(time.Now().Add(time.Hour), grace) {
		t.Fatal("not healthy while ready")
	}
	h.set(false)
	now := time.Now()
	if !h.ok(now.Add(grace/2), grace) {
		t.Fatal("a restart after being ready gets no grace")
	}
	// Further failures while down must not extend the grace.
	h.set(false)
	if h.ok(now.Add(grace+time.Second), grace) {
		t.Fatal("still healthy after the grace period while down")
	}
}

func writeLED(t *testing.T) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	dir = filepath.Join(root, "sys/class/leds/ACT")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"trigger": "[mmc0] none heartbeat", "brightness": "0", "max_brightness": "255\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWatchFeedsOnlyWhileHealthy(t *testing.T) {
	root, dir := writeLED(t)
	led, err := openLED(root, "ACT")
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "trigger")); got != "none" {
		t.Errorf("trigger = %q, want none: the firmware drives the LED", got)
	}

	var wd fakeWatchdog
	healthy := true
	w := &watcher{
		healthy: func(time.Time) bool { return healthy },
		wd:      &wd,
		led:     led,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	brightness := func() string { return readFile(t, filepath.Join(dir, "brightness")) }

	var seen []string
	for range 3 {
		w.tick(time.Now())
		seen = append(seen, brightness())
	}
	if wd.feeds != 3 {
		t.Errorf("feeds = %d after 3 healthy ticks", wd.feeds)
	}
	if !slices.Equal(seen, []string{"255", "255", "255"}) {
		t.Errorf("LED while healthy: %v, want steady 255", seen)
	}

	healthy = false
	seen = nil
	for range 4 {
		w.tick(time.Now())
		seen = append(seen, brightness())
	}
	if wd.feeds != 3 {
		t.Errorf("watchdog fed %d times while unhealthy", wd.feeds-3)
	}
	if !slices.Contains(seen, "0") || !slices.Contains(seen, "255") {
		t.Errorf("LED did not blink while unhealthy: %v", seen)
	}

	healthy = true
	w.tick(time.Now())
	if wd.feeds != 4 {
		t.Errorf("watchdog not fed once healthy again (feeds %d)", wd.feeds)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.run(ctx, nil)
	if wd.releases != 1 {
		t.Errorf("releases = %d at shutdown, want 1", wd.releases)
	}
}
