package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// timer is one of a TCB's timers on the stack's clock. It keeps the
// deadline it was set for: a callback that was already waiting for the
// TCB's lock when the timer was stopped or moved finds it not due and
// does nothing.
type timer struct {
	t        tcpip.Timer
	deadline time.Time
}

// set (re)starts the timer to call f after d from now, clock's reading.
func (t *timer) set(clock tcpip.Clock, now time.Time, d time.Duration, f func()) {
	t.deadline = now.Add(d)
	if t.t == nil {
		t.t = clock.AfterFunc(d, f)
		return
	}
	t.t.Reset(d)
}

// stop cancels the timer.
func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
	}
	t.deadline = time.Time{}
}

// running reports whether the timer is set.
func (t *timer) running() bool { return !t.deadline.IsZero() }

// fire is called first thing in the callback, with the TCB locked: it
// reports whether the expiry is real, and if so clears the deadline.
func (t *timer) fire(clock tcpip.Clock) bool {
	if !t.running() || clock.Now().Before(t.deadline) {
		return false
	}
	t.deadline = time.Time{}
	return true
}
