package tcpext

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// maxBacklog caps the listen backlog whatever the application asks.
const maxBacklog = 1024

// Listen implements tcpip.Endpoint: the passive open, CLOSED → LISTEN.
//
// The backlog bounds the connections a listener holds: those still in
// SYN-RECEIVED plus those established but not yet accepted. A SYN that
// arrives when the bound is reached is dropped silently and counted
// (ListenOverflows), as Linux does: the peer retransmits its SYN and
// succeeds once the application has accepted.
func (e *endpoint) Listen(backlog int) tcpip.Error {
	e.mu.Lock()
	defer e.unlock()
	if e.state == StateListen {
		e.lq.backlog = clampBacklog(backlog)
		return nil
	}
	if e.state != StateClosed || e.closed {
		return &tcpip.ErrInvalidEndpointState{}
	}
	if !e.portHeld {
		port, err := e.proto.bindEphemeral(e)
		if err != nil {
			return err
		}
		e.tid.LocalPort = port
		e.portHeld = true
	}
	id := stack.TransportEndpointID{LocalPort: e.tid.LocalPort, LocalAddress: e.tid.LocalAddress}
	if err := e.proto.register(e, id); err != nil {
		return err
	}
	if e.lq == nil {
		e.lq = &listenQueue{}
	}
	e.lq.backlog = clampBacklog(backlog)
	e.setState(StateListen, "passive open")
	return nil
}

// listenQueue is a listener's state (RFC 9293 section 3.10.7.2): only
// listeners pay for it.
type listenQueue struct {
	backlog  int
	synQueue int // children still in SYN-RECEIVED
	acceptQ  []*endpoint
	// orphans are the unaccepted children of a closed listener, reset
	// once the listener's lock is released.
	orphans []*endpoint
}

func clampBacklog(n int) int {
	return min(max(n, 1), maxBacklog)
}

// Accept implements tcpip.Endpoint.
func (e *endpoint) Accept(peer *tcpip.FullAddress) (tcpip.Endpoint, *waiter.Queue, tcpip.Error) {
	e.mu.Lock()
	defer e.unlock()
	if e.state != StateListen {
		return nil, nil, &tcpip.ErrInvalidEndpointState{}
	}
	q := e.lq
	if len(q.acceptQ) == 0 {
		return nil, nil, &tcpip.ErrWouldBlock{}
	}
	c := q.acceptQ[0]
	q.acceptQ[0] = nil
	q.acceptQ = q.acceptQ[1:]
	if peer != nil {
		*peer = tcpip.FullAddress{Addr: c.tid.RemoteAddress, Port: c.tid.RemotePort, NIC: c.nicID}
	}
	return c, c.wq, nil
}

// handleListen is segment arrival in LISTEN (RFC 9293 section 3.10.7.2). A
// SYN creates a child TCB in SYN-RECEIVED, registered under the full
// 4-tuple, which answers with SYN,ACK; the listener itself stays in LISTEN.
// It returns the child so its SYN,ACK can be sent once locks are released.
func (e *endpoint) handleListen(id stack.TransportEndpointID, seg *Segment, pkt *stack.PacketBuffer) *endpoint {
	switch {
	case seg.has(header.TCPFlagRst):
		return nil
	case seg.has(header.TCPFlagAck):
		e.replyResetVia(id, pkt, seg)
		return nil
	case !seg.has(header.TCPFlagSyn):
		return nil
	case e.proto.quiet():
		return nil
	case e.lq.synQueue+len(e.lq.acceptQ) >= e.lq.backlog:
		e.proto.stats.ListenOverflows.Add(1)
		return nil
	}
	r, err := e.stack.FindRoute(pkt.NICID, id.LocalAddress, id.RemoteAddress, pkt.NetworkProtocolNumber, false)
	if err != nil {
		return nil
	}
	c := newEndpoint(e.proto, e.netProto, &waiter.Queue{})
	c.tid, c.nicID, c.route = id, pkt.NICID, r
	c.listener, c.passiveOpen = e, true
	c.rcvMSS = mssFor(r.MTU())
	c.tsOffset = e.proto.tupleHash(id, true) ^ e.proto.tupleHash(id, false)
	c.initSend(e.proto.isn(id))
	c.initReceive(seg)
	if err := e.proto.reservePort(c, id.LocalPort, false); err != nil {
		r.Release()
		return nil
	}
	c.portHeld = true
	if err := e.proto.register(c, id); err != nil {
		// Another TCB (e.g. in TIME-WAIT) holds this 4-tuple.
		e.proto.releasePort(c, id.LocalPort)
		r.Release()
		return nil
	}
	e.lq.synQueue++
	e.proto.stats.PassiveOpens.Add(1)
	c.mu.Lock()
	c.recordSegment(seg, false, false)
	// The child is born as a copy of the listener's LISTEN TCB, so its
	// history starts on the diagram's LISTEN → SYN-RECEIVED arrow.
	c.state = StateListen
	c.stateA.Store(uint32(StateListen))
	e.proto.track(c)
	c.setState(StateSynReceived, "SYN received in LISTEN")
	c.sendSYNACK()
	c.mu.Unlock()
	return c
}

// replyResetVia answers seg with a RST on a route found for the packet, for
// a listener, which has no route of its own.
func (e *endpoint) replyResetVia(id stack.TransportEndpointID, pkt *stack.PacketBuffer, seg *Segment) {
	rst, ok := resetFor(seg)
	if !ok {
		return
	}
	r, err := e.stack.FindRoute(pkt.NICID, id.LocalAddress, id.RemoteAddress, pkt.NetworkProtocolNumber, false)
	if err != nil {
		return
	}
	e.out = append(e.out, outPacket{r, buildSegment(r, &rst)})
	e.proto.stats.ResetsSent.Add(1)
	e.proto.stats.SegmentsSent.Add(1)
}

// enqueueAccepted moves an established child from the SYN queue to the
// accept queue. Called with the child's lock held; the lock order is
// always child, then listener.
func (e *endpoint) enqueueAccepted(c *endpoint) {
	e.mu.Lock()
	e.lq.synQueue--
	if e.state != StateListen {
		e.mu.Unlock()
		c.abort("listener closed")
		return
	}
	e.lq.acceptQ = append(e.lq.acceptQ, c)
	e.events |= waiter.ReadableEvents
	e.unlock()
}

// returnToListen is the SYN-RECEIVED → LISTEN arrow for a passive open:
// the listener never stopped listening, so the child records the arrow and
// is deleted.
func (e *endpoint) returnToListen(cause string) {
	e.setState(StateListen, cause)
	e.state = StateClosed
	e.stateA.Store(uint32(StateClosed))
	e.cleanup()
}

// listenerFor returns the listener owning port, if any.
func (p *Protocol) listenerFor(port uint16) *endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe := p.ports[port]; pe != nil && pe.exclusive != nil && State(pe.exclusive.stateA.Load()) == StateListen {
		return pe.exclusive
	}
	return nil
}

// leaveSynQueue forgets a child that died in SYN-RECEIVED: for a passive
// open, RST or timeout there returns to LISTEN (RFC 9293 section 3.10.7.4),
// which for us means the listener simply no longer counts it.
func (e *endpoint) leaveSynQueue() {
	e.mu.Lock()
	e.lq.synQueue--
	e.mu.Unlock()
}

// closeListener stops listening: queued connections nobody accepted are
// reset (RFC 9293 section 3.10.4, LISTEN state).
func (e *endpoint) closeListener() []*endpoint {
	q := e.lq.acceptQ
	e.lq.acceptQ = nil
	e.setState(StateClosed, "listener closed")
	return q
}
