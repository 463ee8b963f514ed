package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Buffer auto-tuning, as Linux does it (dynamic right-sizing, "Dynamic
// Right-Sizing for Flow Control", Fisk and Feng; tcp_rcv_space_adjust and
// tcp_sndbuf_expand): a connection starts with the default buffers and
// grows them to what its path needs, so that one connection fills a long
// fat pipe without hand tuning, while a slow or idle one never holds more.
// The buffers are only limits: memory is taken as data arrives.
//
//   - Receive: once per round trip (the smallest RTT seen), the buffer
//     grows to twice what the application read in it, since a sender in
//     slow start doubles its flight every round trip.
//   - Send: the buffer grows to twice the congestion window, so that a full
//     window can be in flight while the application refills the rest.
//
// Setting SO_RCVBUF or SO_SNDBUF fixes that buffer and ends its tuning.

const (
	// maxReceiveBuffer and maxSendBuffer bound the tuning, as Linux's
	// tcp_rmem and tcp_wmem do: 4 MiB carries 330 Mbit/s across 100 ms,
	// more than the boards this runs on can move.
	maxReceiveBuffer = 4 << 20
	maxSendBuffer    = 4 << 20
	// unknownRTTInterval stands for the round trip of a connection that
	// has no RTT sample yet (or one below the clock's reach).
	unknownRTTInterval = time.Millisecond
)

// rcvTuning is the receive side's measurement.
type rcvTuning struct {
	copied int // bytes the application read since start
	start  tcpip.MonotonicTime
}

// tuneReceive accounts n bytes read by the application and, once a round
// trip has passed, grows the receive buffer to twice that round trip's
// reading.
func (e *endpoint) tuneReceive(n int) {
	if e.rcvBufFixed {
		return
	}
	t := &e.rcvTune
	t.copied += n
	now := e.monoNow()
	// The path's own round trip, without the queues: measured by SRTT, a
	// buffer filling a queue would see the RTT grow with it, read more
	// per round trip, grow again, and so fill every queue on the path.
	rtt := e.rtt.minRTT
	if rtt <= 0 {
		rtt = unknownRTTInterval
	}
	if now.Sub(t.start) < rtt {
		return
	}
	if want := min(2*t.copied, maxReceiveBuffer, e.maxRcvWindow()); want > e.rcvBufMax {
		e.rcvBufMax = want
	}
	t.copied, t.start = 0, now
}

// tuneSend grows the send buffer with the congestion window.
func (e *endpoint) tuneSend() {
	if e.sndBufFixed {
		return
	}
	if want := min(2*e.cc.Cwnd(), maxSendBuffer); want > e.sndBufMax {
		e.sndBufMax = want
		e.events |= waiter.WritableEvents
	}
}

// rcvWScaleWanted is the window-scale shift to announce on our SYN: enough
// for the largest buffer the connection may grow to (RFC 7323 section 2.3).
func (e *endpoint) rcvWScaleWanted() int8 {
	if e.rcvBufFixed {
		return wscaleFor(e.rcvBufMax)
	}
	return wscaleFor(maxReceiveBuffer)
}

// OnSetReceiveBufferSize implements tcpip.SocketOptionsHandler: SO_RCVBUF
// fixes the receive buffer. It can grow the window at once but never shrink
// the right edge already advertised (RFC 9293 section 3.8.6).
func (e *endpoint) OnSetReceiveBufferSize(v, _ int64) (int64, func()) {
	e.mu.Lock()
	defer e.unlock()
	e.rcvBufFixed = true
	e.rcvBufMax = int(v)
	return v, nil
}

// OnSetSendBufferSize implements tcpip.SocketOptionsHandler: SO_SNDBUF
// fixes the send buffer.
func (e *endpoint) OnSetSendBufferSize(v int64) int64 {
	e.mu.Lock()
	defer e.unlock()
	e.sndBufFixed = true
	e.sndBufMax = int(v)
	e.events |= waiter.WritableEvents
	return v
}
