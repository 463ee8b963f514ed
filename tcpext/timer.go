package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// A TCB's timers (retransmission and persist, delayed ACK, keepalive,
// TIME-WAIT, FIN-WAIT-2, tail loss probe) are deadlines served by one clock
// timer per TCB, armed for the earliest of them: a connection then pays for
// one runtime timer, made the first time it needs one, rather than for up
// to six.
// Each timer keeps its deadline, so a callback that was already waiting
// for the TCB's lock when the timer was stopped or moved finds it not due
// and does nothing.
type timer struct {
	deadline tcpip.MonotonicTime // zero while stopped
}

// timers lists the TCB's timers, in the order onClock serves them.
func (e *endpoint) timers() [6]*timer {
	return [...]*timer{&e.rtoTimer, &e.delackTimer, &e.ka.timer, &e.timeWaitTimer, &e.finWait2Timer, &e.tlp.timer}
}

// set (re)starts t, one of e's timers, to expire d from now. e.mu is held.
func (t *timer) set(e *endpoint, d time.Duration) {
	// At least a nanosecond, so that the deadline of a timer set at the
	// clock's zero is not taken for a stopped one.
	t.deadline = e.monoNow().Add(max(d, time.Nanosecond))
	e.armClock()
}

// stop cancels the timer. The clock timer, if armed for it, fires anyway
// and finds nothing due.
func (t *timer) stop() { t.deadline = tcpip.MonotonicTime{} }

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

// armClock makes sure the clock timer fires by the earliest deadline. A
// clock timer armed for earlier is left: it fires, finds nothing due and
// is armed again. e.mu is held.
func (e *endpoint) armClock() {
	var next tcpip.MonotonicTime
	for _, t := range e.timers() {
		if d := t.deadline; d != (tcpip.MonotonicTime{}) && (next == (tcpip.MonotonicTime{}) || d.Before(next)) {
			next = d
		}
	}
	switch {
	case next == tcpip.MonotonicTime{}:
		if e.clockAt != (tcpip.MonotonicTime{}) {
			e.clock.Stop()
			e.clockAt = tcpip.MonotonicTime{}
		}
	case e.clockAt == tcpip.MonotonicTime{} || next.Before(e.clockAt):
		e.clockAt = next
		d := max(next.Sub(e.monoNow()), time.Nanosecond)
		if e.clock == nil {
			e.clock = e.stack.Clock().AfterFunc(d, e.onClock)
		} else {
			e.clock.Reset(d)
		}
	}
}

// onClock runs the handlers of the timers that are due (each takes the
// TCB's lock itself), then arms the clock timer for the next deadline.
func (e *endpoint) onClock() {
	e.mu.Lock()
	e.clockAt = tcpip.MonotonicTime{}
	now := e.stack.Clock().NowMonotonic()
	var due [6]bool
	for i, t := range e.timers() {
		due[i] = t.running() && !now.Before(t.deadline)
	}
	e.mu.Unlock()
	for i, handler := range [...]func(){e.onRTO, e.onDelayedACK, e.onKeepalive, e.onTimeWait, e.onFinWait2, e.onPTO} {
		if due[i] {
			handler()
		}
	}
	e.mu.Lock()
	e.armClock()
	e.mu.Unlock()
}
