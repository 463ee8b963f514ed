package mgmt

import (
	"net/netip"
	"sync"
	"time"
)

// Failed logins slow down further attempts from the same address: the
// first few are free, then each attempt waits, twice as long for every
// further failure, up to a cap. A success, or a quiet spell, forgets.
const (
	freeFailures    = 3
	failureDelay    = 500 * time.Millisecond
	maxFailureDelay = 8 * time.Second
	failureMemory   = 10 * time.Minute
	// maxSources bounds the table; past it, forgotten entries are pruned.
	maxSources = 4096
)

// authLimiter counts failed logins per source address.
type authLimiter struct {
	now   func() time.Time
	sleep func(time.Duration)

	mu      sync.Mutex
	sources map[netip.Addr]*failures
}

type failures struct {
	n    int
	last time.Time
}

func newAuthLimiter() *authLimiter {
	return &authLimiter{now: time.Now, sleep: time.Sleep, sources: map[netip.Addr]*failures{}}
}

// delay is how long the next attempt from src must wait.
func (l *authLimiter) delay(src netip.Addr) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[src]
	if f == nil || l.now().Sub(f.last) > failureMemory {
		return 0
	}
	over := f.n - freeFailures
	if over < 0 {
		return 0
	}
	if over >= 8 { // past the cap already; avoids shifting too far
		return maxFailureDelay
	}
	return min(failureDelay<<over, maxFailureDelay)
}

// wait holds an attempt from src back by its delay.
func (l *authLimiter) wait(src netip.Addr) {
	if d := l.delay(src); d > 0 {
		l.sleep(d)
	}
}

// failed counts a failed attempt from src.
func (l *authLimiter) failed(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.sources[src]
	if f == nil || now.Sub(f.last) > failureMemory {
		if len(l.sources) >= maxSources {
			l.pruneLocked(now)
		}
		f = &failures{}
		l.sources[src] = f
	}
	f.n++
	f.last = now
}

// succeeded forgets src's failures.
func (l *authLimiter) succeeded(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.sources, src)
}

func (l *authLimiter) pruneLocked(now time.Time) {
	for src, f := range l.sources {
		if now.Sub(f.last) > failureMemory {
			delete(l.sources, src)
		}
	}
	if len(l.sources) >= maxSources {
		// A flood from many addresses: forgetting them all beats
		// growing without bound.
		clear(l.sources)
	}
}
