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
	deadline tcpip.MonotonicTime // zero while stopped
}

// set (re)starts the timer to call f(e) after d. f is a method expression
// such as (*endpoint).onRTO, so that setting a timer allocates nothing once
// it exists: a method value (e.onRTO) would be allocated at every call.
func (t *timer) set(e *endpoint, d time.Duration, f func(*endpoint)) {
	// At least a nanosecond, so that the deadline of a timer set at the
	// clock's zero is not taken for a stopped one.
	d = max(d, time.Nanosecond)
	t.deadline = e.monoNow().Add(d)
	if t.t == nil {
		t.t = e.stack.Clock().AfterFunc(d, func() { f(e) })
		return
	}
	t.t.Reset(d)
}

// stop cancels the timer.
func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
	}
	t.deadline = tcpip.MonotonicTime{}
}

// running reports whether the timer is set.
func (t *timer) running() bool { return t.deadline != tcpip.MonotonicTime{} }

// fire is called first thing in the callback, with the TCB locked: it
// reports whether the expiry is real, and if so clears the deadline.
func (t *timer) fire(clock tcpip.Clock) bool {
	if !t.running() || clock.NowMonotonic().Before(t.deadline) {
		return false
	}
	t.deadline = tcpip.MonotonicTime{}
	return true
}
