package tcpext

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/synfin/synfin/tcpext/cc"
)

// Buffer sizes. The receive buffer bounds the advertised window
// (RFC 9293 section 3.8.6: W = M - N).
const (
	defaultSendBuffer    = 1 << 20
	defaultReceiveBuffer = 1 << 20
	// historyLen bounds the per-TCB state-change history.
	historyLen = 32
)

// endpoint is one TCB together with the socket-like tcpip.Endpoint that the
// netstack and gonet use. Every field below mu is guarded by it.
type endpoint struct {
	tcpip.DefaultSocketOptionsHandler

	proto    *Protocol
	stack    *stack.Stack
	wq       *waiter.Queue
	ops      tcpip.SocketOptions
	netProto tcpip.NetworkProtocolNumber
	nicID    tcpip.NICID
	id       uint64
	// stateA mirrors state for readers that must not take mu (port
	// conflict checks, the TCB table).
	stateA atomic.Uint32

	mu       sync.Mutex
	state    State
	portHeld bool // tid.LocalPort is reserved in proto.ports
	inDemux  bool // registered with the stack's demuxer under tid
	// passiveOpen records that SYN-RECEIVED was reached from LISTEN, which
	// decides where a RST takes it (RFC 9293 section 3.10.7.4).
	passiveOpen bool
	tid         stack.TransportEndpointID
	route       *stack.Route

	// lq is the listener side, allocated by Listen.
	lq *listenQueue

	// Child side: the listener that spawned this TCB, until accepted.
	listener *endpoint

	// Send sequence variables (RFC 9293 section 3.3.1).
	iss    seqnum.Value
	sndUna seqnum.Value
	sndNxt seqnum.Value
	sndWnd seqnum.Size
	sndWL1 seqnum.Value
	sndWL2 seqnum.Value
	// sndMax is the highest sequence number ever sent: after a go-back-N
	// rewind, sndNxt is below it and ACKs up to it stay acceptable.
	sndMax   seqnum.Value
	shortEnd seqnum.Value // end of the last short segment (Nagle)
	sndMSS   int          // effective MSS for our segments

	// Receive sequence variables.
	irs    seqnum.Value
	rcvNxt seqnum.Value
	rcvAdv seqnum.Value // right edge of the window last advertised
	rcvMSS uint16       // MSS we announced

	// Negotiated options (RFC 7323, RFC 2018).
	sndWScale, rcvWScale int8
	wsOK, tsOK, sackOK   bool
	dsackPending         bool
	tsRecent             uint32
	tsOffset             uint32
	lastAckSent          seqnum.Value
	lastOOO              seqnum.Value // start of the newest out-of-order segment
	ackOwed              int32        // in-order segments not yet acknowledged
	tsRecentAt           tcpip.MonotonicTime
	dsack                seqRange
	sb                   scoreboard

	// sndBuf holds the bytes from sndBufSeq on: unacknowledged, then unsent.
	// Segments share its memory rather than copy it (output.go).
	sndBuf    buffer.Buffer
	sndBufSeq seqnum.Value
	// Urgent pointers (RFC 9293 section 3.8.5, RFC 6093), valid while the
	// flags are set.
	sndUp, rcvUp         seqnum.Value
	sndUrgent, rcvUrgent bool
	// sndBufFixed and rcvBufFixed: SO_SNDBUF or SO_RCVBUF was set, so
	// that buffer is not tuned.
	sndBufFixed, rcvBufFixed bool
	// finQueued: the application finished sending; our FIN follows sndBuf.
	finQueued bool
	oowACKed  bool
	// cwndLimited: data waited for the congestion window when last sent
	// (input.go grows the window only then).
	cwndLimited bool
	// ackQueued: the TCB waits in proto.acks for the receive batch to end;
	// rxBatched: the segment being handled came in such a batch
	// (ackbatch.go).
	ackQueued, rxBatched bool
	writing              bool
	sndBufMax            int

	// rcvBuf holds received data until the application reads it; large
	// segments' memory is kept rather than copied (reassembly.go).
	rcvBuf    buffer.Buffer
	ooo       []oooSegment // out-of-order data, sorted by sequence
	oooBytes  int
	rcvBufMax int
	rcvTune   rcvTuning
	// lastOOWACK is when an ACK last answered a segment without data
	// that was out of the window, if oowACKed (oowack.go).
	lastOOWACK tcpip.MonotonicTime
	rcvShut    bool // the application shut down reading
	closed     bool // the application called Close
	// finRcvd: the peer's FIN arrived, so reads end in end of file,
	// also once TIME-WAIT is over and the TCB is closed.
	finRcvd   bool
	hardError tcpip.Error
	lastError tcpip.Error

	rtt rttEstimator
	cc  cc.Controller
	rec recovery
	tlp lossProbe
	// ccName is the congestion control chosen for this connection.
	ccName string
	ka     keepalive
	// userTimeout and progress implement the user timeout: the time since
	// the oldest unacknowledged data was sent or last acknowledged.
	userTimeout time.Duration
	progress    tcpip.MonotonicTime // valid while progressing
	probeSentAt tcpip.MonotonicTime // last zero-window probe, while probing
	maxSndWnd   seqnum.Size         // largest window the peer offered
	progressing bool
	probing     bool
	synRetried  bool // our SYN or SYN,ACK timed out at least once
	// ticking says tick is the clock reading of the current locked
	// section (clock.go).
	ticking bool
	tick    tcpip.MonotonicTime

	rtoTimer      timer // retransmission, doubling as persist
	delackTimer   timer
	timeWaitTimer timer
	finWait2Timer timer
	// clock serves the timers, armed for clockAt (timer.go).
	clock   tcpip.Timer
	clockAt tcpip.MonotonicTime

	counters Counters
	history  []historyEntry
	flight   recorder
	closedAt tcpip.MonotonicTime // when the TCB reached CLOSED, for its dump

	// out and events are collected under mu and delivered after it is
	// released, so a loopback peer answering synchronously cannot deadlock;
	// writing says a goroutine is transmitting out (output.go).
	out    []outPacket
	events waiter.EventMask
}

func newEndpoint(p *Protocol, netProto tcpip.NetworkProtocolNumber, wq *waiter.Queue) *endpoint {
	e := &endpoint{
		proto:     p,
		stack:     p.stack,
		wq:        wq,
		netProto:  netProto,
		id:        p.nextID.Add(1),
		sndBufMax: defaultSendBuffer,
		rcvBufMax: defaultReceiveBuffer,
		sndMSS:    defaultMSS,
	}
	e.ops.InitHandler(e, p.stack, tcpip.GetStackSendBufferLimits, tcpip.GetStackReceiveBufferLimits)
	e.ops.SetDelayOption(true) // Nagle on, as RFC 1122 4.2.3.4 asks
	e.rtt.init(p.opts.MinRTO, p.opts.MaxRTO)
	e.ka.idle = p.opts.Keepalive.Idle
	e.ka.interval = p.opts.Keepalive.Interval
	e.ka.count = p.opts.Keepalive.Count
	e.userTimeout = p.opts.UserTimeout
	e.ccName = p.DefaultCongestionControl()
	e.cc = cc.NewNewReno(defaultMSS)
	return e
}

// outPacket is a segment waiting for mu to be released, with a reference
// on the route it leaves by.
type outPacket struct {
	r   *stack.Route
	pkt *stack.PacketBuffer
}

// unlock releases mu, then transmits queued segments and wakes waiters.
func (e *endpoint) unlock() {
	ev := e.events
	e.events = 0
	var orphans []*endpoint
	if e.lq != nil {
		orphans, e.lq.orphans = e.lq.orphans, nil
	}
	e.ticking, e.rxBatched = false, false
	out := e.takeOut()
	e.mu.Unlock()
	for out != nil {
		e.writeOut(out)
		e.mu.Lock()
		out = e.nextOut(out)
		e.mu.Unlock()
	}
	if ev != 0 {
		e.wq.Notify(ev)
	}
	for _, c := range orphans {
		c.mu.Lock()
		c.abort("listener closed")
		c.unlock()
	}
}

// setState moves the TCB along an arrow of the RFC 9293 diagram and records
// why, for the flight history.
func (e *endpoint) setState(s State, cause string) {
	if e.state == s {
		return
	}
	if len(e.history) == historyLen {
		copy(e.history, e.history[1:])
		e.history = e.history[:historyLen-1]
	}
	e.history = append(e.history, historyEntry{at: e.monoNow(), from: e.state, to: s, cause: causeIndex(cause)})
	old := e.state
	e.recordState(old, s, cause)
	e.state = s
	e.stateA.Store(uint32(s))
	if f := e.proto.opts.OnTransition; f != nil {
		f(Transition{ID: e.id, From: old, To: s, Cause: cause, At: e.stack.Clock().Now()})
	}
	switch {
	case old == StateClosed:
		e.proto.track(e)
	case s == StateClosed:
		e.cleanup()
	}
	if keepaliveState(s) != keepaliveState(old) {
		e.armKeepalive()
	}
	switch s {
	case StateListen, StateSynSent, StateSynReceived:
		// Nothing becomes readable or writable there, and a waiter woken
		// as writable in SYN-SENT (gonet's Dial) takes the connection for
		// made before the handshake is.
	default:
		e.events |= waiter.EventIn | waiter.EventOut
	}
}

// Close implements tcpip.Endpoint: a full close (RFC 9293 section 3.10.4).
func (e *endpoint) Close() {
	e.mu.Lock()
	e.closed = true
	e.rcvShut = true
	if l := e.ops.GetLinger(); l.Enabled && l.Timeout == 0 && e.state != StateListen {
		// SO_LINGER with a zero timeout: an abortive close, queued data
		// dropped and a RST sent (RFC 9293 section 3.10.5).
		e.abort("close with linger 0")
	} else {
		e.close()
	}
	e.unlock()
}

// Abort implements tcpip.Endpoint.
func (e *endpoint) Abort() {
	e.mu.Lock()
	e.closed = true
	e.abort("application abort")
	e.unlock()
}

// Read implements tcpip.Endpoint.
func (e *endpoint) Read(w io.Writer, opts tcpip.ReadOptions) (tcpip.ReadResult, tcpip.Error) {
	e.mu.Lock()
	defer e.unlock()
	if e.rcvQueued() == 0 {
		switch {
		case e.state == StateListen:
			return tcpip.ReadResult{}, &tcpip.ErrInvalidEndpointState{}
		case e.rcvShut || e.finRcvd && e.hardError == nil:
			return tcpip.ReadResult{}, &tcpip.ErrClosedForReceive{}
		case e.hardError != nil:
			return tcpip.ReadResult{}, e.hardError
		case e.state == StateClosed:
			return tcpip.ReadResult{}, &tcpip.ErrNotConnected{}
		}
		return tcpip.ReadResult{}, &tcpip.ErrWouldBlock{}
	}
	m, err := e.rcvBuf.ReadToWriter(w, e.rcvBuf.Size())
	n := int(m)
	if n == 0 && err != nil {
		return tcpip.ReadResult{}, &tcpip.ErrBadBuffer{}
	}
	if !opts.Peek {
		e.consumed(n)
	}
	return tcpip.ReadResult{Count: n, Total: n}, nil
}

// Write implements tcpip.Endpoint: data joins the send buffer and goes out
// as the windows allow (RFC 9293 section 3.10.2).
func (e *endpoint) Write(p tcpip.Payloader, _ tcpip.WriteOptions) (int64, tcpip.Error) {
	return e.write(p, false)
}

// write queues data, marking it urgent if asked (see WriteUrgent).
func (e *endpoint) write(p tcpip.Payloader, urgent bool) (int64, tcpip.Error) {
	e.mu.Lock()
	defer e.unlock()
	e.startTick()
	switch {
	case e.hardError != nil:
		return 0, e.hardError
	case e.state == StateSynSent || e.state == StateSynReceived:
		return 0, &tcpip.ErrWouldBlock{}
	case e.state == StateClosed || e.state == StateListen:
		return 0, &tcpip.ErrClosedForSend{}
	case !e.state.canSend() || e.finQueued:
		return 0, &tcpip.ErrClosedForSend{}
	}
	avail := e.sndBufMax - e.sndQueued()
	if avail <= 0 {
		return 0, &tcpip.ErrWouldBlock{}
	}
	m, err := e.sndBuf.WriteFromReader(p, int64(min(avail, p.Len())))
	if m == 0 && err != nil {
		return 0, &tcpip.ErrBadBuffer{}
	}
	if urgent {
		e.sndUp, e.sndUrgent = e.finSeq(), true
	}
	e.sendPending()
	return int64(m), nil
}

// Disconnect implements tcpip.Endpoint; TCP cannot disconnect.
func (*endpoint) Disconnect() tcpip.Error { return &tcpip.ErrNotSupported{} }

// Shutdown implements tcpip.Endpoint: a half-close (RFC 9293 section 3.6).
func (e *endpoint) Shutdown(flags tcpip.ShutdownFlags) tcpip.Error {
	e.mu.Lock()
	defer e.unlock()
	if e.state == StateListen {
		// Shutting down a listener stops it accepting, like Linux.
		e.close()
		return nil
	}
	if e.state == StateClosed || e.state == StateSynSent {
		return &tcpip.ErrNotConnected{}
	}
	if flags&tcpip.ShutdownRead != 0 {
		e.rcvShut = true
		e.rcvBuf.Release()
		e.events |= waiter.EventIn
	}
	if flags&tcpip.ShutdownWrite != 0 {
		e.queueFIN()
	}
	return nil
}

// GetLocalAddress implements tcpip.Endpoint.
func (e *endpoint) GetLocalAddress() (tcpip.FullAddress, tcpip.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return tcpip.FullAddress{Addr: e.tid.LocalAddress, Port: e.tid.LocalPort, NIC: e.nicID}, nil
}

// GetRemoteAddress implements tcpip.Endpoint.
func (e *endpoint) GetRemoteAddress() (tcpip.FullAddress, tcpip.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tid.RemotePort == 0 {
		return tcpip.FullAddress{}, &tcpip.ErrNotConnected{}
	}
	return tcpip.FullAddress{Addr: e.tid.RemoteAddress, Port: e.tid.RemotePort, NIC: e.nicID}, nil
}

// Readiness implements tcpip.Endpoint.
func (e *endpoint) Readiness(mask waiter.EventMask) waiter.EventMask {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r waiter.EventMask
	switch e.state {
	case StateListen:
		if len(e.lq.acceptQ) > 0 {
			r |= waiter.ReadableEvents
		}
	case StateSynSent, StateSynReceived:
	case StateClosed:
		r |= waiter.EventIn | waiter.EventOut | waiter.EventHUp
		if e.hardError != nil {
			r |= waiter.EventErr
		}
	default:
		if e.rcvQueued() > 0 || e.state.finReceived() || e.rcvShut {
			r |= waiter.ReadableEvents
		}
		if !e.state.canSend() || e.finQueued || e.sendSpace() {
			r |= waiter.WritableEvents
		}
	}
	return r & mask
}

// SetSockOpt implements tcpip.Endpoint.
func (e *endpoint) SetSockOpt(opt tcpip.SettableSocketOption) tcpip.Error {
	e.mu.Lock()
	defer e.unlock()
	switch v := opt.(type) {
	case *tcpip.KeepaliveIdleOption:
		if *v <= 0 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.ka.idle = time.Duration(*v)
		e.armKeepalive()
	case *tcpip.KeepaliveIntervalOption:
		if *v <= 0 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.ka.interval = time.Duration(*v)
		e.armKeepalive()
	case *tcpip.TCPUserTimeoutOption:
		if *v < 0 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.userTimeout = time.Duration(*v)
	case *tcpip.CongestionControlOption:
		// Chosen before the handshake; it takes effect at ESTABLISHED.
		if _, err := cc.New(string(*v), e.sndMSS); err != nil || e.state.synchronized() {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.ccName = string(*v)
	default:
		return &tcpip.ErrUnknownProtocolOption{}
	}
	return nil
}

// SetSockOptInt implements tcpip.Endpoint.
func (e *endpoint) SetSockOptInt(opt tcpip.SockOptInt, v int) tcpip.Error {
	e.mu.Lock()
	defer e.unlock()
	switch opt {
	case tcpip.KeepaliveCountOption:
		if v < 1 {
			return &tcpip.ErrInvalidOptionValue{}
		}
		e.ka.count = v
	default:
		return &tcpip.ErrUnknownProtocolOption{}
	}
	return nil
}

// GetSockOpt implements tcpip.Endpoint.
func (e *endpoint) GetSockOpt(opt tcpip.GettableSocketOption) tcpip.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch v := opt.(type) {
	case *tcpip.KeepaliveIdleOption:
		*v = tcpip.KeepaliveIdleOption(e.ka.idle)
	case *tcpip.KeepaliveIntervalOption:
		*v = tcpip.KeepaliveIntervalOption(e.ka.interval)
	case *tcpip.TCPUserTimeoutOption:
		*v = tcpip.TCPUserTimeoutOption(e.userTimeout)
	case *tcpip.CongestionControlOption:
		*v = tcpip.CongestionControlOption(e.ccName)
	default:
		return &tcpip.ErrUnknownProtocolOption{}
	}
	return nil
}

// GetSockOptInt implements tcpip.Endpoint.
func (e *endpoint) GetSockOptInt(opt tcpip.SockOptInt) (int, tcpip.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch opt {
	case tcpip.ReceiveQueueSizeOption:
		return e.rcvQueued(), nil
	case tcpip.SendQueueSizeOption:
		return e.sndQueued(), nil
	case tcpip.KeepaliveCountOption:
		return e.ka.count, nil
	}
	return 0, &tcpip.ErrUnknownProtocolOption{}
}

// State implements tcpip.Endpoint.
func (e *endpoint) State() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return uint32(e.state)
}

// ModerateRecvBuf implements tcpip.Endpoint; receive-buffer auto-tuning is
// not done yet, the buffer has a fixed size.
func (*endpoint) ModerateRecvBuf(int) {}

// Info implements tcpip.Endpoint.
func (e *endpoint) Info() tcpip.EndpointInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &stack.TransportEndpointInfo{NetProto: e.netProto, TransProto: ProtocolNumber, ID: e.tid}
}

// Stats implements tcpip.Endpoint.
func (*endpoint) Stats() tcpip.EndpointStats { return &tcpip.TransportEndpointStats{} }

// SetOwner implements tcpip.Endpoint.
func (*endpoint) SetOwner(tcpip.PacketOwner) {}

// LastError implements tcpip.Endpoint.
func (e *endpoint) LastError() tcpip.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.lastError
	e.lastError = nil
	return err
}

// SocketOptions implements tcpip.Endpoint.
func (e *endpoint) SocketOptions() *tcpip.SocketOptions { return &e.ops }

// Wait implements stack.TransportEndpoint; tcpext runs no goroutines.
func (*endpoint) Wait() {}
