package cc

import (
	"math"
	"time"
)

// CUBIC constants (RFC 9438 section 4).
const (
	cubicC    = 0.4
	cubicBeta = 0.7
	// cubicAlpha makes the Reno-friendly estimate grow like Reno with the
	// same average window (RFC 9438 section 4.3).
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
)

// Cubic is RFC 9438: after a loss the window follows
// W(t) = C*(t-K)^3 + W_max, with a Reno-friendly region and fast
// convergence. Windows are kept in bytes; the cubic runs in segments.
type Cubic struct {
	window

	wMax      float64       // segments, before the last reduction
	wLastMax  float64       // for fast convergence
	k         float64       // seconds to reach wMax again
	epoch     time.Duration // start of the current avoidance epoch; -1 unset
	wEst      float64       // Reno-friendly estimate, segments
	cwndFloat float64       // fractional growth carried between ACKs
}

// NewCubic returns CUBIC at the initial window.
func NewCubic(mss int) *Cubic {
	return &Cubic{window: newWindow(mss), epoch: -1}
}

// Name implements Controller.
func (*Cubic) Name() string { return "cubic" }

// OnAck implements Controller.
func (c *Cubic) OnAck(acked int, rtt, now time.Duration) {
	if c.slowStart(acked) { // as Reno (RFC 9438 section 4.10)
		return
	}
	seg := float64(c.mss)
	cwnd := float64(c.cwnd) / seg
	if c.epoch < 0 {
		// First ACK of an avoidance epoch (RFC 9438 section 4.2).
		c.epoch = now
		if c.wMax <= cwnd {
			c.wMax, c.k = cwnd, 0
		} else {
			c.k = math.Cbrt((c.wMax - cwnd) / cubicC)
		}
		c.wEst = cwnd
	}
	// Target one RTT ahead (RFC 9438 section 4.2, eq. 2).
	t := (now - c.epoch + rtt).Seconds()
	target := cubicC*math.Pow(t-c.k, 3) + c.wMax
	target = min(max(target, cwnd), 1.5*cwnd)

	// Reno-friendly region (RFC 9438 section 4.3).
	c.wEst += cubicAlpha * float64(acked) / seg / cwnd
	if c.wEst > target {
		target = c.wEst
	}
	c.cwndFloat += (target - cwnd) / cwnd * float64(acked)
	if grow := int(c.cwndFloat); grow > 0 {
		c.cwnd += grow
		c.cwndFloat -= float64(grow)
	}
}

// OnLoss implements Controller: multiplicative decrease by beta with fast
// convergence (RFC 9438 sections 4.6 and 4.7).
func (c *Cubic) OnLoss(flight int, _ time.Duration) {
	c.reduce()
}

func (c *Cubic) reduce() {
	cwnd := float64(c.cwnd) / float64(c.mss)
	if cwnd < c.wLastMax {
		c.wLastMax = cwnd
		c.wMax = cwnd * (1 + cubicBeta) / 2
	} else {
		c.wLastMax = cwnd
		c.wMax = cwnd
	}
	c.ssthresh = max(int(float64(c.cwnd)*cubicBeta), 2*c.mss)
	c.epoch = -1
	c.cwndFloat = 0
}

// OnRTO implements Controller (RFC 9438 section 4.8): a congestion event,
// then the loss window.
func (c *Cubic) OnRTO(flight int, _ time.Duration) {
	c.reduce()
	c.cwnd = c.mss
}
