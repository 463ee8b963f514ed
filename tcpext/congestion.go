package tcpext

// congestion is the window arithmetic of RFC 5681: slow start, congestion
// avoidance and the response to a retransmission timeout.
type congestion struct {
	cwnd     int // bytes
	ssthresh int // bytes
	// acked accumulates bytes acknowledged in congestion avoidance so cwnd
	// grows by one SMSS per cwnd of data (RFC 5681 section 3.1, eq. 3).
	acked int
}

// init sets the initial window of RFC 6928 section 2.
func (c *congestion) init(mss int) {
	c.cwnd = min(10*mss, max(2*mss, 14600))
	c.ssthresh = 1 << 30 // "arbitrarily high" (RFC 5681 section 3.1)
}

// onAck grows cwnd for newly acknowledged bytes.
func (c *congestion) onAck(acked, mss int) {
	if c.cwnd < c.ssthresh {
		// Slow start with appropriate byte counting, L = 2 (RFC 3465).
		c.cwnd += min(acked, 2*mss)
		return
	}
	c.acked += acked
	if c.acked >= c.cwnd {
		c.acked -= c.cwnd
		c.cwnd += mss
	}
}

// onTimeout is RFC 5681 section 3.1, equation 4, and the loss window.
func (c *congestion) onTimeout(flight, mss int) {
	c.ssthresh = max(flight/2, 2*mss)
	c.cwnd = mss
	c.acked = 0
}
