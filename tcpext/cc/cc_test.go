package cc

import (
	"math"
	"testing"
	"time"
)

const mss = 1000

// rtt delivers one round trip of ACKs, one per MSS of the window, and
// returns the window in segments at the end of it.
func rtt(c Controller, now time.Duration, srtt time.Duration) int {
	n := c.Cwnd() / mss
	for i := 0; i < n; i++ {
		c.OnAck(mss, srtt, now+srtt*time.Duration(i)/time.Duration(n))
	}
	return c.Cwnd() / mss
}

// The classic sawtooth: ssthresh 16 segments, slow start doubling per RTT,
// linear growth above ssthresh, a timeout at cwnd 20 → ssthresh 10 and
// cwnd 1, slow start to 10, then linear growth again.
func TestNewRenoSawtooth(t *testing.T) {
	r := NewNewReno(mss)
	r.SetCwnd(mss)
	r.ssthresh = 16 * mss
	var got []int
	got = append(got, r.Cwnd()/mss)
	for r.Cwnd() < 20*mss {
		got = append(got, rtt(r, 0, 0))
	}
	want := []int{1, 2, 4, 8, 16, 17, 18, 19, 20}
	if !equal(got, want) {
		t.Fatalf("trajectory %v, want %v", got, want)
	}
	r.OnRTO(r.Cwnd(), 0) // the whole window is in flight
	if r.Ssthresh() != 10*mss || r.Cwnd() != mss {
		t.Fatalf("after RTO: ssthresh %d cwnd %d, want 10 and 1 segments", r.Ssthresh()/mss, r.Cwnd()/mss)
	}
	got = []int{1}
	for i := 0; i < 7; i++ {
		got = append(got, rtt(r, 0, 0))
	}
	want = []int{1, 2, 4, 8, 10, 11, 12, 13}
	if !equal(got, want) {
		t.Fatalf("after the timeout: %v, want %v", got, want)
	}
}

// A lower path MTU keeps both windows' count of segments, whatever the
// algorithm, and the threshold's floor of two segments.
func TestSetMSSKeepsSegments(t *testing.T) {
	for _, name := range Names() {
		c, _ := New(name, mss)
		c.SetCwnd(15*mss + mss/2)
		c.OnLoss(c.Cwnd(), 0)
		wantSsthresh := c.Ssthresh() / mss * 600
		c.SetCwnd(15*mss + mss/2)
		c.SetMSS(600)
		if c.Cwnd() != 15*600 || c.Ssthresh() != wantSsthresh {
			t.Errorf("%s: cwnd %d ssthresh %d after the MSS fell to 600, want %d and %d", name, c.Cwnd(), c.Ssthresh(), 15*600, wantSsthresh)
		}
		c.SetCwnd(2 * 600)
		c.OnLoss(2*600, 0)
		c.SetMSS(500)
		if c.Ssthresh() != 2*500 {
			t.Errorf("%s: ssthresh %d after a loss at 2 segments and the MSS at 500, want the floor %d", name, c.Ssthresh(), 2*500)
		}
		fresh, _ := New(name, mss)
		fresh.SetMSS(600)
		if fresh.Cwnd() != 10*600 || fresh.Ssthresh() < 1<<20 {
			t.Errorf("%s: initial cwnd %d ssthresh %d after the MSS fell, want 10 segments and no threshold", name, fresh.Cwnd(), fresh.Ssthresh())
		}
	}
}

func TestNewRenoFastRetransmitThreshold(t *testing.T) {
	r := NewNewReno(mss)
	r.OnLoss(3*mss, 0)
	if r.Ssthresh() != 2*mss {
		t.Fatalf("ssthresh %d, want the 2*SMSS floor", r.Ssthresh())
	}
	r.OnLoss(40*mss, 0)
	if r.Ssthresh() != 20*mss {
		t.Fatalf("ssthresh %d, want FlightSize/2", r.Ssthresh())
	}
}

// After a loss CUBIC's window follows W(t) = C*(t-K)^3 + W_max: concave up
// to W_max at t = K, then convex beyond it.
func TestCubicFollowsItsCurve(t *testing.T) {
	c := NewCubic(mss)
	c.ssthresh = 0 // congestion avoidance from the start
	c.SetCwnd(100 * mss)
	c.OnLoss(c.Cwnd(), 0)
	if c.Ssthresh() != 70*mss {
		t.Fatalf("ssthresh %d segments after loss at 100, want 70 (beta 0.7)", c.Ssthresh()/mss)
	}
	c.SetCwnd(c.Ssthresh()) // recovery ends at ssthresh
	const srtt = 100 * time.Millisecond
	k := math.Cbrt(100 * (1 - cubicBeta) / cubicC)
	now := time.Duration(0)
	for now < 8*time.Second {
		rtt(c, now, srtt)
		now += srtt
		tt := (now + srtt).Seconds()
		w := cubicC*math.Pow(tt-k, 3) + 100
		got := float64(c.Cwnd()) / mss
		if math.Abs(got-w) > 0.1*w+2 {
			t.Fatalf("at t=%v cwnd %.1f segments, curve says %.1f (K=%.2fs)", now, got, w, k)
		}
	}
	if c.Cwnd() <= 100*mss {
		t.Fatalf("cwnd %d segments: never probed past W_max", c.Cwnd()/mss)
	}
}

// Fast convergence: a loss below the previous W_max releases bandwidth by
// remembering a lower W_max (RFC 9438 section 4.7).
func TestCubicFastConvergence(t *testing.T) {
	c := NewCubic(mss)
	c.SetCwnd(100 * mss)
	c.OnLoss(0, 0)
	c.SetCwnd(80 * mss)
	c.OnLoss(0, 0)
	if want := 80 * (1 + cubicBeta) / 2; math.Abs(c.wMax-want) > 1e-9 {
		t.Fatalf("W_max %.2f, want %.2f", c.wMax, want)
	}
}

func TestNewUnknown(t *testing.T) {
	if _, err := New("vegas", mss); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
	for _, n := range Names() {
		c, err := New(n, mss)
		if err != nil || c.Name() != n || c.Cwnd() != 10*mss {
			t.Fatalf("New(%q) = %v, %v", n, c, err)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
