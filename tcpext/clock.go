package tcpext

import "gvisor.dev/gvisor/pkg/tcpip"

// A TCB reads the clock for RTT samples, timestamps, timers, keepalive and
// the flight recorder: several times for every segment. One reading per
// arriving segment or application write is precise enough for all of them,
// so HandlePacket and write take one under the lock (startTick) and unlock
// drops it; outside such a section the clock is read afresh. All of them
// use the monotonic clock, which is also the smaller one to keep.

// startTick takes the section's clock reading. e.mu is held.
func (e *endpoint) startTick() {
	e.tick, e.ticking = e.stack.Clock().NowMonotonic(), true
}

// monoNow is the stack's monotonic clock.
func (e *endpoint) monoNow() tcpip.MonotonicTime {
	if e.ticking {
		return e.tick
	}
	return e.stack.Clock().NowMonotonic()
}
