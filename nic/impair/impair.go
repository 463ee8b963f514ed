// Package impair degrades packets on purpose, reproducibly: it loses,
// delays, jitters (and so reorders), duplicates, corrupts and rate-limits
// them, so that tests, benchmarks and the lab can watch a TCP cope with a
// bad link.
//
// It comes in three layers:
//
//   - Impairer decides the fate of one packet: dropped, or handed on as one
//     or two copies, each at some time and perhaps with one bit flipped. It
//     holds no packets, so a test pump can use it directly.
//   - Line carries the packets of one direction through an Impairer and
//     hands each copy on when its time comes, on a tcpip.Clock.
//   - Endpoint wraps a stack.LinkEndpoint and runs a Line each way.
//
// Every random decision comes from math/rand/v2 PCG sources seeded from
// Config.Seed, one source per kind of decision, so the same seed and the
// same sequence of packets give the same decisions, and turning one
// impairment on or off leaves the others' decisions unchanged. Time comes
// only from the clock it is given: on a manual clock (gVisor's faketime, or
// SimClock) delays and the rate limit are as deterministic as the decisions.
package impair

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Defaults for the rate limiter when Config leaves them zero.
const (
	// DefaultQueueLimit is the rate limiter's queue, in packets, as netem's
	// default limit.
	DefaultQueueLimit = 1000
	// DefaultBurst lets one maximum-sized IP packet through at once.
	DefaultBurst = 1 << 16
)

// Config describes the impairment of one direction. The zero Config passes
// every packet at once and untouched.
type Config struct {
	// Seed seeds every random decision.
	Seed uint64
	// Loss is the probability that a packet is dropped.
	Loss float64
	// Delay is the fixed one-way delay added to every packet.
	Delay time.Duration
	// Jitter adds a further delay drawn uniformly from [0, Jitter) to each
	// packet independently; packets overtake each other when it exceeds
	// their spacing, which is how the impairment reorders.
	Jitter time.Duration
	// Duplicate is the probability that a packet is delivered twice. The
	// copy gets its own delay (and so may arrive first) and its own
	// corruption decision.
	Duplicate float64
	// Corrupt is the probability that a delivered copy has one bit,
	// chosen uniformly from the packet's network-layer bytes, flipped. The
	// link header is left alone: a real link's frame check would drop a
	// frame with a damaged header, and without one it would merely be
	// misdelivered, which is loss and not corruption.
	Corrupt float64
	// Rate limits the link to this many bytes (of network-layer packet)
	// per second; zero is unlimited. Packets beyond Burst wait in a FIFO
	// queue of QueueLimit packets, and arrivals to a full queue are
	// dropped (tail drop).
	Rate uint64
	// Burst is the token bucket's depth in bytes (DefaultBurst if zero).
	Burst uint64
	// QueueLimit bounds the rate limiter's queue in packets
	// (DefaultQueueLimit if zero).
	QueueLimit int
}

// FieldError is a Config field with an unacceptable value. Field is the Go
// field name, so callers with their own names for the fields (config keys)
// can translate it.
type FieldError struct {
	Field string
	Value any
	Err   error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("impair: %s %v: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

var (
	errProbability = errors.New("want a probability in [0, 1]")
	errNegative    = errors.New("must not be negative")
)

// Validate reports the first field with a value out of range, as a
// *FieldError.
func (c Config) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", c.Loss}, {"Duplicate", c.Duplicate}, {"Corrupt", c.Corrupt}} {
		if !(p.v >= 0 && p.v <= 1) { // also refuses NaN
			return &FieldError{Field: p.name, Value: p.v, Err: errProbability}
		}
	}
	if c.Delay < 0 {
		return &FieldError{Field: "Delay", Value: c.Delay, Err: errNegative}
	}
	if c.Jitter < 0 {
		return &FieldError{Field: "Jitter", Value: c.Jitter, Err: errNegative}
	}
	if c.QueueLimit < 0 {
		return &FieldError{Field: "QueueLimit", Value: c.QueueLimit, Err: errNegative}
	}
	return nil
}

// Active reports whether the Config changes anything at all, so that a
// caller can skip the impairment entirely when it does not.
func (c Config) Active() bool {
	return c.Loss > 0 || c.Delay > 0 || c.Jitter > 0 || c.Duplicate > 0 || c.Corrupt > 0 || c.Rate > 0
}

// Stats count what an Impairer did. Every offered packet is either Dropped,
// RateDropped or Passed; duplicates are extra copies, also counted in
// Passed.
type Stats struct {
	// Packets counts the packets offered.
	Packets uint64 `json:"packets"`
	// Passed counts the copies handed on (duplicates and corrupted copies
	// included).
	Passed uint64 `json:"passed"`
	// Dropped counts packets lost at random (Loss).
	Dropped uint64 `json:"dropped"`
	// Duplicated counts the extra copies made.
	Duplicated uint64 `json:"duplicated"`
	// Corrupted counts the copies handed on with a bit flipped.
	Corrupted uint64 `json:"corrupted"`
	// Delayed counts the copies held back for any time (delay, jitter or
	// the rate limiter's queue).
	Delayed uint64 `json:"delayed"`
	// RateDropped counts the copies dropped by the rate limiter's full
	// queue.
	RateDropped uint64 `json:"rate_dropped"`
}

// Delivery is one copy of a packet to hand on.
type Delivery struct {
	// At is when to hand it on; at or before the time of the decision
	// means at once.
	At tcpip.MonotonicTime
	// Flip is the bit to flip, counted from the most significant bit of
	// the packet's first network-layer byte, or -1 to leave it intact.
	Flip int
}

// Independent PCG streams, one per kind of decision.
const (
	streamLoss = iota + 1
	streamDuplicate
	streamCorrupt
	streamJitter
)

// Impairer decides the fate of the packets of one direction. It is safe
// for concurrent use; decisions are taken in the order of the calls.
type Impairer struct {
	cfg   Config
	clock tcpip.Clock

	mu                            sync.Mutex
	loss, dup, corrupt, jitterRNG *rand.Rand
	// The token bucket: tokens bytes at time stamp. stamp never goes
	// backwards, and lastOut is when the last admitted packet leaves the
	// queue, so that departures keep their arrival order.
	tokens  float64
	stamp   tcpip.MonotonicTime
	lastOut tcpip.MonotonicTime
	// queued holds the departure times of packets still in the queue, in
	// order.
	queued []tcpip.MonotonicTime
	stats  Stats
}

// New returns an Impairer for cfg whose delays and rate are measured on
// clock.
func New(cfg Config, clock tcpip.Clock) (*Impairer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		return nil, errors.New("impair: no clock")
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.QueueLimit == 0 {
		cfg.QueueLimit = DefaultQueueLimit
	}
	src := func(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(cfg.Seed, stream)) }
	now := clock.NowMonotonic()
	return &Impairer{
		cfg:       cfg,
		clock:     clock,
		loss:      src(streamLoss),
		dup:       src(streamDuplicate),
		corrupt:   src(streamCorrupt),
		jitterRNG: src(streamJitter),
		tokens:    float64(cfg.Burst),
		stamp:     now,
		lastOut:   now,
	}, nil
}

// Config returns the configuration in effect, defaults filled in.
func (im *Impairer) Config() Config { return im.cfg }

// Clock returns the clock the Impairer measures time on.
func (im *Impairer) Clock() tcpip.Clock { return im.clock }

// Stats returns a copy of the counters.
func (im *Impairer) Stats() Stats {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.stats
}

// Decide decides the fate of one packet of n bytes (from its network
// header on) offered now: no Delivery if it is lost, otherwise one, or two
// if it is duplicated, in the order drawn (not necessarily the order of
// their times).
func (im *Impairer) Decide(n int) []Delivery {
	return im.DecideAt(im.clock.NowMonotonic(), n)
}

// DecideAt is Decide for a packet offered at now, for a caller that reads
// the clock itself.
func (im *Impairer) DecideAt(now tcpip.MonotonicTime, n int) []Delivery {
	return im.AppendDecisions(nil, now, n)
}

// AppendDecisions is DecideAt appending to dst, so that a caller with room
// for two Deliveries decides without allocating.
func (im *Impairer) AppendDecisions(dst []Delivery, now tcpip.MonotonicTime, n int) []Delivery {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.stats.Packets++
	if im.cfg.Loss > 0 && im.loss.Float64() < im.cfg.Loss {
		im.stats.Dropped++
		return dst
	}
	copies := 1
	if im.cfg.Duplicate > 0 && im.dup.Float64() < im.cfg.Duplicate {
		copies = 2
		im.stats.Duplicated++
	}
	for range copies {
		at, ok := im.admit(now, n)
		if !ok {
			im.stats.RateDropped++
			continue
		}
		at = at.Add(im.cfg.Delay)
		if im.cfg.Jitter > 0 {
			at = at.Add(time.Duration(im.jitterRNG.Int64N(int64(im.cfg.Jitter))))
		}
		d := Delivery{At: at, Flip: -1}
		if im.cfg.Corrupt > 0 && n > 0 && im.corrupt.Float64() < im.cfg.Corrupt {
			d.Flip = im.corrupt.IntN(8 * n)
			im.stats.Corrupted++
		}
		if at.After(now) {
			im.stats.Delayed++
		}
		im.stats.Passed++
		dst = append(dst, d)
	}
	return dst
}

// admit runs one packet of n bytes through the rate limiter and returns
// when it leaves it, or false if the queue is full.
func (im *Impairer) admit(now tcpip.MonotonicTime, n int) (tcpip.MonotonicTime, bool) {
	if im.cfg.Rate == 0 {
		return now, true
	}
	// Forget the packets that have left the queue by now.
	i := 0
	for i < len(im.queued) && !im.queued[i].After(now) {
		i++
	}
	im.queued = im.queued[i:]
	if len(im.queued) >= im.cfg.QueueLimit {
		return tcpip.MonotonicTime{}, false
	}
	rate := float64(im.cfg.Rate) / float64(time.Second) // bytes per ns
	// A packet can leave no earlier than now, nor before the one ahead of
	// it; the bucket fills up to Burst meanwhile.
	t := now
	if im.lastOut.After(t) {
		t = im.lastOut
	}
	if t.After(im.stamp) {
		im.tokens = math.Min(float64(im.cfg.Burst), im.tokens+float64(t.Sub(im.stamp))*rate)
		im.stamp = t
	}
	size := float64(n)
	if im.tokens < size {
		// Wait for the missing tokens. A packet larger than the bucket
		// still goes once it has its size in tokens, so that a small Burst
		// slows big packets down instead of blocking them for ever.
		wait := time.Duration(math.Ceil((size - im.tokens) / rate))
		t = t.Add(wait)
		im.tokens += float64(wait) * rate
		im.stamp = t
	}
	im.tokens -= size
	im.lastOut = t
	if t.After(now) {
		im.queued = append(im.queued, t)
	}
	return t, true
}
