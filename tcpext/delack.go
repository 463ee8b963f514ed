package tcpext

// Delayed ACK (RFC 9293 section 3.8.6.3, RFC 5681 section 4.2): in-order
// data is acknowledged at least every second segment, or when the delayed
// ACK timer (Options.DelayedACK, at most 500 ms) fires, whichever is first;
// any segment we send carries the ACK along. Out-of-order data, data that
// fills a gap and FINs are acknowledged at once, but for a FIN that
// arrives in ESTABLISHED: the application usually answers it by closing,
// and our FIN then carries the ACK, as Linux has it (it enters its
// "pingpong" mode on such a FIN). A zero Options.DelayedACK acknowledges
// every segment at once.
//
// A full-sized segment with PSH is acknowledged as a second segment would
// be. A sender at the edge of its window pushes its last segment
// (output.go) and sends nothing more until an ACK: with a window of a few
// segments, an odd one held for a partner that is not coming would stall
// the sender's clock for most of a round trip, each round trip. A short
// pushed segment, a request more likely than a stalled window, keeps the
// delay so that the answer can carry the ACK.

// ackEvery is how many in-order segments may go unacknowledged.
const ackEvery = 2

// ackData acknowledges in-order data, now or a little later; pushed is a
// full-sized segment with PSH.
func (e *endpoint) ackData(pushed bool) {
	if e.proto.opts.DelayedACK <= 0 {
		e.sendACK()
		return
	}
	e.ackOwed++
	if pushed {
		e.ackOwed = max(e.ackOwed, ackEvery)
	}
	if e.ackOwed >= ackEvery && !e.deferACK() {
		e.sendACK()
		return
	}
	e.armDelayedACK()
}

// ackFIN acknowledges the peer's FIN received in ESTABLISHED a little
// later, unless a segment of ours carries the ACK first.
func (e *endpoint) ackFIN() {
	if e.proto.opts.DelayedACK <= 0 {
		e.sendACK()
		return
	}
	e.ackOwed = max(e.ackOwed, 1)
	e.armDelayedACK()
}

// armDelayedACK starts the delayed-ACK timer unless it runs already: the
// owed ACK goes no later than that after the first segment that owed it.
func (e *endpoint) armDelayedACK() {
	if !e.delackTimer.running() {
		e.delackTimer.set(e, e.proto.opts.DelayedACK)
	}
}

// acked notes that a segment carrying our ACK is going out.
func (e *endpoint) ackSent() {
	e.ackOwed = 0
	if e.delackTimer.running() {
		e.delackTimer.stop()
	}
}

func (e *endpoint) onDelayedACK() {
	e.mu.Lock()
	defer e.unlock()
	if !e.expired(&e.delackTimer, "delayed-ack") || e.ackOwed == 0 || !e.state.synchronized() {
		return
	}
	e.sendACK()
}
