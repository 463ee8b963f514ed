// Package cc holds tcpext's congestion control algorithms: the window
// arithmetic only. Loss detection and recovery (duplicate ACKs, fast
// retransmit, NewReno partial ACKs, SACK) live in tcpext and call into a
// Controller at the congestion events.
package cc

import (
	"fmt"
	"sort"
	"time"
)

// Controller is one connection's congestion control state. Windows are in
// bytes. Now is a monotonic clock reading (any fixed origin).
type Controller interface {
	// Name is the algorithm's name as configured ("newreno", "cubic").
	Name() string
	// Cwnd and Ssthresh are the congestion window and the slow start
	// threshold.
	Cwnd() int
	Ssthresh() int
	// SetCwnd sets the window during loss recovery (inflation and
	// deflation of RFC 6582, or RFC 6675's pipe-based sending).
	SetCwnd(bytes int)
	// OnAck grows the window for acked newly acknowledged bytes, outside
	// loss recovery. rtt is the smoothed round-trip time (0 if unknown).
	OnAck(acked int, rtt time.Duration, now time.Duration)
	// OnLoss is a congestion event found by fast retransmit: it sets
	// ssthresh (and the algorithm's own state) for the recovery to use.
	OnLoss(flight int, now time.Duration)
	// OnRTO is a retransmission timeout: ssthresh from the flight, cwnd to
	// the loss window of one segment (RFC 5681 section 3.1).
	OnRTO(flight int, now time.Duration)
	// SetMSS changes the SMSS, when the path MTU falls: the windows keep
	// their size in segments.
	SetMSS(mss int)
}

// Factory makes a Controller for a connection with the given SMSS.
type Factory func(mss int) Controller

var registry = map[string]Factory{
	"newreno": func(mss int) Controller { return NewNewReno(mss) },
	"cubic":   func(mss int) Controller { return NewCubic(mss) },
}

// New returns a Controller of the named algorithm.
func New(name string, mss int) (Controller, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("congestion control %q: unknown (have %v)", name, Names())
	}
	return f(mss), nil
}

// Names lists the registered algorithms.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// initialWindow is RFC 6928 section 2: min(10*MSS, max(2*MSS, 14600)).
func initialWindow(mss int) int {
	return min(10*mss, max(2*mss, 14600))
}

// noThreshold is the initial ssthresh, "arbitrarily high" (RFC 5681 3.1).
const noThreshold = 1 << 30

// window is the state every algorithm shares, with the methods of
// Controller that do not differ between them.
type window struct {
	mss      int
	cwnd     int
	ssthresh int
}

func newWindow(mss int) window {
	return window{mss: mss, cwnd: initialWindow(mss), ssthresh: noThreshold}
}

// Cwnd implements Controller.
func (w *window) Cwnd() int { return w.cwnd }

// Ssthresh implements Controller.
func (w *window) Ssthresh() int { return w.ssthresh }

// SetCwnd implements Controller.
func (w *window) SetCwnd(b int) { w.cwnd = max(b, w.mss) }

// SetMSS implements Controller. A smaller MTU does not make the path
// hold fewer packets, so the windows keep their count of segments, as
// Linux's do (it counts cwnd in packets), rather than their bytes, which
// would leave a runt in every window and shrink it needlessly.
func (w *window) SetMSS(mss int) {
	if mss <= 0 || mss == w.mss {
		return
	}
	w.cwnd = max(w.cwnd/w.mss, 1) * mss
	if w.ssthresh != noThreshold {
		w.ssthresh = max(w.ssthresh/w.mss, 2) * mss
	}
	w.mss = mss
}

// slowStart grows cwnd while it is below ssthresh, counting at most
// L = 2*SMSS per ACK (RFC 3465 section 2.2), and reports whether it did.
func (w *window) slowStart(acked int) bool {
	if w.cwnd >= w.ssthresh {
		return false
	}
	w.cwnd += min(acked, 2*w.mss)
	return true
}
