package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// Retransmission timer bounds (RFC 6298). The floor is Linux's 200 ms
// rather than RFC 6298 section 2.4's 1 s: on the short paths an appliance
// serves, 1 s turns every loss into a long stall.
const (
	initialRTO    = time.Second     // RFC 6298 section 2.1
	synTimeoutRTO = 3 * time.Second // RFC 6298 section 5.7
	defaultMinRTO = 200 * time.Millisecond
	defaultMaxRTO = 60 * time.Second // RFC 6298 section 2.5
	clockGranule  = time.Millisecond // G of RFC 6298 section 2
	maxSynRetries = 6
	maxRetries    = 15
)

// rttEstimator holds SRTT, RTTVAR and RTO (RFC 6298 section 2) and the one
// segment being timed. Karn's algorithm (RFC 6298 section 3): a segment that
// was retransmitted is never timed.
type rttEstimator struct {
	minRTO, maxRTO    time.Duration
	srtt, rttvar, rto time.Duration
	// minRTT is the smallest sample: the path's round trip without the
	// queues (autotune.go sizes the receive buffer by it).
	minRTT   time.Duration
	backoff  int32
	timedEnd seqnum.Value
	measured bool
	timing   bool
	// ambiguous: the timed range was retransmitted, so only an echoed
	// timestamp can still measure it (RFC 7323 section 4.1).
	ambiguous bool
	timedSent tcpip.MonotonicTime
}

func (r *rttEstimator) init(minRTO, maxRTO time.Duration) {
	r.minRTO, r.maxRTO = minRTO, maxRTO
	r.rto = min(max(initialRTO, minRTO), maxRTO)
}

// sent notes a transmission of [seq, end).
func (r *rttEstimator) sent(seq, end seqnum.Value, retransmit bool, now tcpip.MonotonicTime) {
	if retransmit {
		// Karn: an ACK covering a retransmitted range is ambiguous.
		if r.timing && seq.LessThan(r.timedEnd) {
			r.ambiguous = true
		}
		return
	}
	if !r.timing {
		r.timing, r.ambiguous, r.timedEnd, r.timedSent = true, false, end, now
	}
}

// acked takes a sample if ack covers the timed segment: from our own clock,
// or, after a retransmission, from the echoed timestamp tsRTT if there is
// one.
func (r *rttEstimator) acked(ack seqnum.Value, now tcpip.MonotonicTime, tsRTT time.Duration) {
	if !r.timing || ack.LessThan(r.timedEnd) {
		return
	}
	r.timing = false
	switch {
	case !r.ambiguous:
		r.sample(now.Sub(r.timedSent))
	case tsRTT > 0:
		r.sample(tsRTT)
	}
}

// sample folds one RTT measurement in (RFC 6298 section 2.2 and 2.3).
func (r *rttEstimator) sample(m time.Duration) {
	if !r.measured {
		r.srtt, r.rttvar, r.measured = m, m/2, true
		r.minRTT = m
	} else {
		r.minRTT = min(r.minRTT, m)
		d := r.srtt - m
		if d < 0 {
			d = -d
		}
		r.rttvar = (3*r.rttvar + d) / 4
		r.srtt = (7*r.srtt + m) / 8
	}
	r.rto = min(max(r.srtt+max(clockGranule, 4*r.rttvar), r.minRTO), r.maxRTO)
	r.backoff = 0
}

// current is the RTO with exponential backoff applied (RFC 6298 section 5.5).
func (r *rttEstimator) current() time.Duration {
	d := r.rto
	for i := int32(0); i < r.backoff && d < r.maxRTO; i++ {
		d *= 2
	}
	return min(d, r.maxRTO)
}

// armRTO starts the retransmission timer unless it is running
// (RFC 6298 section 5.1).
func (e *endpoint) armRTO() {
	if e.rtoTimer.running() {
		return
	}
	e.restartRTO()
}

// restartRTO (re)starts the retransmission timer from now (RFC 6298 5.3).
func (e *endpoint) restartRTO() {
	d := e.rtt.current()
	if e.userTimeout > 0 && e.progressing && e.state.synchronized() {
		// Fire no later than the user timeout, which fails the connection
		// then rather than at the next backed-off RTO.
		left := e.progress.Add(e.userTimeout).Sub(e.monoNow())
		d = max(min(d, left), time.Millisecond)
	}
	e.rtoTimer.set(e, d)
}

func (e *endpoint) stopRTO() { e.rtoTimer.stop() }

// onRTO is the retransmission timeout (RFC 6298 section 5.4 to 5.7).
func (e *endpoint) onRTO() {
	e.mu.Lock()
	defer e.unlock()
	if !e.rtoTimer.fire(e.stack.Clock()) {
		return
	}
	if e.zeroWindowStall() {
		e.recordTimer("persist")
		e.onPersist()
		return
	}
	e.recordTimer("retransmit")
	limit := maxRetries
	if !e.state.synchronized() {
		limit = maxSynRetries
	}
	if int(e.rtt.backoff) >= limit {
		e.timeout("retransmission limit reached")
		return
	}
	if e.userTimeout > 0 && e.state.synchronized() && e.progressing &&
		e.stack.Clock().NowMonotonic().Sub(e.progress) >= e.userTimeout {
		e.timeout("user timeout: data unacknowledged too long")
		return
	}
	e.rtt.backoff++
	switch e.state {
	case StateSynSent:
		e.sendSYN()
	case StateSynReceived:
		e.sendSYNACK()
	case StateClosed, StateListen, StateTimeWait:
		return
	default:
		if e.sndUna == e.iss {
			// Closed in SYN-RECEIVED before our SYN was acknowledged: the
			// SYN,ACK goes again; the FIN waits behind it.
			o := e.synOptions(false)
			e.emit(header.TCPFlagSyn|header.TCPFlagAck, e.iss, 0, &o)
			e.counters.Retransmits++
			break
		}
		e.proto.stats.RetransmitTimeouts.Add(1)
		e.cc.OnRTO(int(e.sndUna.Size(e.sndMax)), e.now())
		e.recordCC("rto")
		// RFC 6675 section 5.1: the scoreboard may be stale (the peer can
		// renege), so it is dropped and the go-back from SND.UNA skips
		// only what the peer SACKs after the timeout (sendPending).
		e.rec = recovery{point: e.sndMax, highRxt: e.sndUna}
		e.sb = scoreboard{}
		e.endProbe()
		// Go back N: resend from SND.UNA as the loss window allows.
		e.sndNxt = e.sndUna
		e.sendPending()
	}
	e.armRTO()
}

// timeout fails the connection with a timeout error, resetting a
// synchronized peer that may still be there.
func (e *endpoint) timeout(cause string) {
	e.hardError = &tcpip.ErrTimeout{}
	e.lastError = e.hardError
	e.abort(cause)
}
