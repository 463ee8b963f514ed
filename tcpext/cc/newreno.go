package cc

import "time"

// NewReno is the window arithmetic of RFC 5681 with appropriate byte
// counting (RFC 3465); its fast recovery (RFC 6582) is driven by tcpext.
type NewReno struct {
	window
	// acked accumulates bytes acknowledged in congestion avoidance, so
	// cwnd grows by one SMSS per cwnd of data (RFC 5681 section 3.1).
	acked int
}

// NewNewReno returns NewReno at the initial window.
func NewNewReno(mss int) *NewReno {
	return &NewReno{window: newWindow(mss)}
}

// Name implements Controller.
func (*NewReno) Name() string { return "newreno" }

// OnAck implements Controller: slow start below ssthresh, congestion
// avoidance above.
func (r *NewReno) OnAck(acked int, _, _ time.Duration) {
	if r.slowStart(acked) {
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
