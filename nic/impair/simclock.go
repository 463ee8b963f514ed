package impair

import (
	"container/heap"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// SimClock is a tcpip.Clock for simulations: its time moves only when
// told, like gVisor's faketime.ManualClock, and it can also tell when its
// next timer is due and jump straight there. A simulation that advances
// the clock whenever its network is idle thus skips dead time (a delay
// line, a retransmission timeout) in one step instead of creeping through
// it.
//
// Timers due at the same instant fire in the order they were set, so a run
// is as reproducible as its goroutines allow. Callbacks run on the
// goroutine that advances the clock, without the clock's lock, except
// those of timers set to fire at once, which (like a real timer's) run on
// a goroutine of their own; Advance waits for those before it moves on.
type SimClock struct {
	// running counts the callbacks of timers set to fire at once that
	// have not returned. (A WaitGroup would do, but it forbids an Add from
	// zero during a Wait, and timers are set from any goroutine.)
	runMu   sync.Mutex
	runDone sync.Cond
	running int

	mu     sync.Mutex
	now    time.Duration // since the epoch
	timers timerHeap
	seq    uint64
}

// simEpoch is the wall-clock time of a SimClock's zero, as faketime's.
var simEpoch = time.Unix(0, 0)

var _ tcpip.Clock = (*SimClock)(nil)

// NewSimClock returns a SimClock at its epoch.
func NewSimClock() *SimClock {
	c := &SimClock{}
	c.runDone.L = &c.runMu
	return c
}

// Now implements tcpip.Clock.
func (c *SimClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return simEpoch.Add(c.now)
}

// NowMonotonic implements tcpip.Clock.
func (c *SimClock) NowMonotonic() tcpip.MonotonicTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tcpip.MonotonicTime{}.Add(c.now)
}

// Elapsed returns the time since the epoch.
func (c *SimClock) Elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements tcpip.Clock.
func (c *SimClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	t := &simTimer{clock: c, f: f, index: -1}
	t.Reset(d)
	return t
}

// Next returns how long until the earliest timer is due, if one is set.
func (c *SimClock) Next() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	return c.timers[0].due - c.now, true
}

// Advance moves the clock forward by d, firing every timer due meanwhile
// in order, each with the clock at its due time.
func (c *SimClock) Advance(d time.Duration) {
	c.waitRunning()
	c.mu.Lock()
	until := c.now + d
	c.mu.Unlock()
	for c.fireNext(until) {
	}
	c.mu.Lock()
	if c.now < until {
		c.now = until
	}
	c.mu.Unlock()
}

// AdvanceToNext moves the clock to the earliest timer's due time and fires
// every timer due then. It returns how far the clock moved, and false (not
// moving it) if no timer is set.
func (c *SimClock) AdvanceToNext() (time.Duration, bool) {
	c.waitRunning()
	c.mu.Lock()
	if len(c.timers) == 0 {
		c.mu.Unlock()
		return 0, false
	}
	start, due := c.now, c.timers[0].due
	c.mu.Unlock()
	for c.fireNext(due) {
	}
	return due - start, true
}

// fireNext fires the earliest timer if it is due by until, and reports
// whether it did.
func (c *SimClock) fireNext(until time.Duration) bool {
	c.mu.Lock()
	if len(c.timers) == 0 || c.timers[0].due > until {
		c.mu.Unlock()
		return false
	}
	t := heap.Pop(&c.timers).(*simTimer)
	if t.due > c.now {
		c.now = t.due
	}
	c.mu.Unlock()
	t.f()
	// A callback may set timers to fire at once; theirs come first.
	c.waitRunning()
	return true
}

// waitRunning waits for the callbacks of timers set to fire at once.
func (c *SimClock) waitRunning() {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	for c.running > 0 {
		c.runDone.Wait()
	}
}

func (c *SimClock) doneRunning() {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	c.running--
	if c.running == 0 {
		c.runDone.Broadcast()
	}
}

// simTimer is a SimClock's tcpip.Timer; its fields belong to the clock's
// lock.
type simTimer struct {
	clock *SimClock
	f     func()
	due   time.Duration
	seq   uint64
	index int // in clock.timers, or -1 when not set
}

// Stop implements tcpip.Timer.
func (t *simTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&c.timers, t.index)
	return true
}

// Reset implements tcpip.Timer.
func (t *simTimer) Reset(d time.Duration) {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.index >= 0 {
		heap.Remove(&c.timers, t.index)
	}
	if d <= 0 {
		c.runMu.Lock()
		c.running++
		c.runMu.Unlock()
		go func() {
			defer c.doneRunning()
			t.f()
		}()
		return
	}
	c.seq++
	t.due, t.seq = c.now+d, c.seq
	heap.Push(&c.timers, t)
}

type timerHeap []*simTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*simTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}
