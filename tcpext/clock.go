package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// A TCB reads the clock for RTT samples, timestamps, timers, keepalive and
// the flight recorder: several times for every segment. One reading per
// arriving segment or application write is precise enough for all of them,
// so HandlePacket and write take one under the lock (startTick) and unlock
// drops it; outside such a section the clock is read afresh.

// startTick takes the section's clock reading. e.mu is held.
func (e *endpoint) startTick() {
	clock := e.stack.Clock()
	e.tickMono, e.tickWall, e.ticking = clock.NowMonotonic(), clock.Now(), true
}

// monoNow is the stack's monotonic clock.
func (e *endpoint) monoNow() tcpip.MonotonicTime {
	if e.ticking {
		return e.tickMono
	}
	return e.stack.Clock().NowMonotonic()
}

// wallNow is the stack's wall clock.
func (e *endpoint) wallNow() time.Time {
	if e.ticking {
		return e.tickWall
	}
	return e.stack.Clock().Now()
}
