package cc

import "time"

// NewReno is the window arithmetic of RFC 5681 with appropriate byte
// counting (RFC 3465); its fast recovery (RFC 6582) is driven by tcpext.
type NewReno struct {
	mss      int
	cwnd     int
	ssthresh int
	// acked accumulates bytes acknowledged in congestion avoidance, so
	// cwnd grows by one SMSS per cwnd of data (RFC 5681 section 3.1).
	acked int
}

// NewNewReno returns NewReno at the initial window.
func NewNewReno(mss int) *NewReno {
	return &NewReno{mss: mss, cwnd: initialWindow(mss), ssthresh: noThreshold}
}

// Name implements Controller.
func (*NewReno) Name() string { return "newreno" }

// Cwnd implements Controller.
func (r *NewReno) Cwnd() int { return r.cwnd }

// Ssthresh implements Controller.
func (r *NewReno) Ssthresh() int { return r.ssthresh }

// SetCwnd implements Controller.
func (r *NewReno) SetCwnd(b int) { r.cwnd = max(b, r.mss) }

// OnAck implements Controller: slow start below ssthresh, counting at most
// L = 2*SMSS per ACK (RFC 3465 section 2.2), congestion avoidance above.
func (r *NewReno) OnAck(acked int, _, _ time.Duration) {
	if r.cwnd < r.ssthresh {
		r.cwnd += min(acked, 2*r.mss)
		return
	}
	r.acked += acked
	if r.acked >= r.cwnd {
		r.acked -= r.cwnd
		r.cwnd += r.mss
	}
}

// OnLoss implements Controller: RFC 5681 section 3.2, equation 4.
func (r *NewReno) OnLoss(flight int, _ time.Duration) {
	r.ssthresh = max(flight/2, 2*r.mss)
	r.acked = 0
}

// OnRTO implements Controller: equation 4 and the loss window.
func (r *NewReno) OnRTO(flight int, _ time.Duration) {
	r.ssthresh = max(flight/2, 2*r.mss)
	r.cwnd = r.mss
	r.acked = 0
}
