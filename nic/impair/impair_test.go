package impair

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
)

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"Loss", Config{Loss: 1.5}},
		{"Loss", Config{Loss: -0.1}},
		{"Loss", Config{Loss: math.NaN()}},
		{"Duplicate", Config{Duplicate: 2}},
		{"Corrupt", Config{Corrupt: -1}},
		{"Delay", Config{Delay: -time.Millisecond}},
		{"Jitter", Config{Jitter: -1}},
		{"QueueLimit", Config{QueueLimit: -1}},
	} {
		err := tc.cfg.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
		if _, err := New(tc.cfg, faketime.NewManualClock()); !errors.As(err, &fe) {
			t.Errorf("New(%+v) = %v, want the validation error", tc.cfg, err)
		}
	}
	if err := (Config{Loss: 1, Duplicate: 0, Corrupt: 1, Delay: time.Second}).Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

// everything enables every impairment at once.
func everything(seed uint64) Config {
	return Config{
		Seed: seed, Loss: 0.05, Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond,
		Duplicate: 0.05, Corrupt: 0.05, Rate: 10 << 20, QueueLimit: 50,
	}
}

// decisions offers n packets of varying sizes, 100µs apart, and returns
// every decision relative to the start.
func decisions(t *testing.T, cfg Config, n int) [][]Delivery {
	t.Helper()
	clock := faketime.NewManualClock()
	im, err := New(cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]Delivery, n)
	for i := range n {
		out[i] = im.Decide(40 + (i*7919)%1460)
		clock.Advance(100 * time.Microsecond)
	}
	return out
}

func TestSameSeedSameDecisions(t *testing.T) {
	a := decisions(t, everything(42), 20000)
	b := decisions(t, everything(42), 20000)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different decisions")
	}
	c := decisions(t, everything(43), 20000)
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same decisions")
	}
}

// Each kind of decision has its own random stream: switching duplication
// and corruption off leaves the loss pattern as it was.
func TestDecisionsIndependent(t *testing.T) {
	lossOnly := Config{Seed: 7, Loss: 0.1}
	all := Config{Seed: 7, Loss: 0.1, Duplicate: 0.3, Corrupt: 0.3, Jitter: time.Millisecond}
	a, b := decisions(t, lossOnly, 5000), decisions(t, all, 5000)
	for i := range a {
		if (len(a[i]) == 0) != (len(b[i]) == 0) {
			t.Fatalf("packet %d: lost=%v alone, lost=%v with the other impairments", i, len(a[i]) == 0, len(b[i]) == 0)
		}
	}
}

// within checks that count, out of n trials of probability p, lies within
// five standard deviations of its mean. The decisions are seeded, so the
// check is deterministic; the bound says the generator is not biased.
func within(t *testing.T, what string, count, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if math.Abs(float64(count)-mean) > 5*sd {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f", what, count, n, mean, 5*sd)
	} else {
		t.Logf("%s: %d of %d (expected %.0f)", what, count, n, mean)
	}
}

func TestRates(t *testing.T) {
	const n = 200000
	for _, p := range []float64{0.01, 0.05, 0.2} {
		cfg := Config{Seed: 1, Loss: p, Duplicate: p, Corrupt: p}
		im, err := New(cfg, faketime.NewManualClock())
		if err != nil {
			t.Fatal(err)
		}
		var lost, dup, corrupt, copies int
		bits := make([]int, 8*100)
		for range n {
			ds := im.Decide(100)
			switch len(ds) {
			case 0:
				lost++
			case 2:
				dup++
			}
			for _, d := range ds {
				copies++
				if d.Flip >= 0 {
					corrupt++
					if d.Flip >= len(bits) {
						t.Fatalf("flip of bit %d in a 100-byte packet", d.Flip)
					}
					bits[d.Flip]++
				}
			}
		}
		within(t, "lost", lost, n, p)
		within(t, "duplicated", dup, n-lost, p)
		within(t, "corrupted", corrupt, copies, p)
		// The flipped bit is uniform: each half of the packet gets half.
		first := 0
		for _, c := range bits[:len(bits)/2] {
			first += c
		}
		within(t, "flips in the first half", first, corrupt, 0.5)
		s := im.Stats()
		if s.Packets != n || s.Dropped != uint64(lost) || s.Duplicated != uint64(dup) ||
			s.Corrupted != uint64(corrupt) || s.Passed != uint64(copies) {
			t.Errorf("stats %+v, counted lost %d dup %d corrupt %d copies %d", s, lost, dup, corrupt, copies)
		}
	}
}

func TestDelayAndJitterBounds(t *testing.T) {
	clock := faketime.NewManualClock()
	const delay, jitter = 20 * time.Millisecond, 10 * time.Millisecond
	im, err := New(Config{Seed: 3, Delay: delay, Jitter: jitter}, clock)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.NowMonotonic()
	const n = 100000
	var sum time.Duration
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for range n {
		d := im.Decide(100)[0].At.Sub(now)
		sum += d
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < delay || hi >= delay+jitter {
		t.Fatalf("delays in [%v, %v], want within [%v, %v)", lo, hi, delay, delay+jitter)
	}
	// The mean of n uniform draws over [0, J) has standard deviation
	// J/sqrt(12n).
	mean := sum / n
	sd := time.Duration(float64(jitter) / math.Sqrt(12*n))
	if want := delay + jitter/2; mean < want-5*sd || mean > want+5*sd {
		t.Fatalf("mean delay %v, want %v ± %v", mean, want, 5*sd)
	}
	if s := im.Stats(); s.Delayed != n {
		t.Fatalf("delayed %d, want %d", s.Delayed, n)
	}
}

// A sender offering twice the configured rate gets exactly the rate
// through, in order, and the rest is tail-dropped once the queue is full.
func TestRateLimitThroughput(t *testing.T) {
	clock := faketime.NewManualClock()
	const rate, size, limit = 1_000_000, 1000, 100 // 1 MB/s
	im, err := New(Config{Rate: rate, Burst: 10 * size, QueueLimit: limit}, clock)
	if err != nil {
		t.Fatal(err)
	}
	start := clock.NowMonotonic()
	// Offered at 2 MB/s for 10 s: one packet every size/(2*rate) s.
	const gap = 500 * time.Microsecond
	var last tcpip.MonotonicTime
	passed := 0
	for i := 0; clock.NowMonotonic().Sub(start) < 10*time.Second; i++ {
		for _, d := range im.Decide(size) {
			if d.At.Before(last) {
				t.Fatalf("packet %d leaves at %v, before the one ahead of it (%v)", i, d.At, last)
			}
			last = d.At
			passed++
		}
		clock.Advance(gap)
	}
	elapsed := last.Sub(start)
	got := float64(passed*size) / elapsed.Seconds()
	// Over 10 s, the burst and the queue's head start are worth at most
	// (burst + queue)/rate ≈ 0.1 s, so 2 % is generous.
	if math.Abs(got-rate)/rate > 0.02 {
		t.Fatalf("throughput %.0f B/s, want %d ± 2%%", got, rate)
	}
	s := im.Stats()
	if s.RateDropped == 0 || s.Passed+s.RateDropped != s.Packets {
		t.Fatalf("stats %+v: want tail drops, and every packet passed or dropped", s)
	}
	// Half the offered load is over the rate and must be dropped, less
	// what the bucket and the queue held.
	if f := float64(s.RateDropped) / float64(s.Packets); f < 0.48 || f > 0.5 {
		t.Fatalf("%.3f of the packets tail-dropped, want just under half", f)
	}
	t.Logf("%.0f B/s through; %+v", got, s)

	// Below the rate nothing waits beyond its own serialisation, and
	// nothing is dropped.
	im, _ = New(Config{Rate: rate, Burst: size, QueueLimit: 1}, clock)
	for range 1000 {
		now := clock.NowMonotonic()
		ds := im.Decide(size)
		if len(ds) != 1 || ds[0].At != now {
			t.Fatalf("at half the rate: %+v", ds)
		}
		clock.Advance(4 * gap)
	}
}
