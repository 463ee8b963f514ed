package tcpext

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/synfin/synfin/tcpext/cc"
)

// defaultMSS is assumed when the peer sends no MSS option
// (RFC 9293 section 3.7.1).
const defaultMSS = 536

// Connect implements tcpip.Endpoint: the active open, CLOSED → SYN-SENT
// (RFC 9293 section 3.10.1).
func (e *endpoint) Connect(addr tcpip.FullAddress) tcpip.Error {
	e.mu.Lock()
	defer e.unlock()
	switch e.state {
	case StateClosed, StateListen:
	case StateSynSent, StateSynReceived:
		return &tcpip.ErrAlreadyConnecting{}
	default:
		return &tcpip.ErrAlreadyConnected{}
	}
	if e.closed || e.hardError != nil {
		return &tcpip.ErrInvalidEndpointState{}
	}
	if e.proto.quiet() {
		// RFC 9293 section 3.4.3: no new connections during the quiet time.
		return &tcpip.ErrConnectionRefused{}
	}
	nic := addr.NIC
	if e.nicID != 0 {
		nic = e.nicID
	}
	r, err := e.stack.FindRoute(nic, e.tid.LocalAddress, addr.Addr, e.netProto, false)
	if err != nil {
		return err
	}
	cause := "active open"
	if e.state == StateListen {
		// SEND in LISTEN turns the passive open active (RFC 9293 section
		// 3.10.2); connections not yet accepted are reset.
		e.proto.unregister(e)
		e.lq.orphans = append(e.lq.orphans, e.lq.acceptQ...)
		e.lq.acceptQ = nil
		cause = "connect in LISTEN: passive open made active"
	}
	id := e.tid
	id.LocalAddress = r.LocalAddress()
	id.RemoteAddress = r.RemoteAddress()
	id.RemotePort = addr.Port
	if e.portHeld {
		if err := e.proto.register(e, id); err != nil {
			r.Release()
			return err
		}
		e.proto.shareExclusivePort(e, id.LocalPort)
	} else {
		port, err := e.proto.connectPort(e, id)
		if err != nil {
			r.Release()
			return err
		}
		id.LocalPort = port
		e.portHeld = true
	}
	e.tid = id
	e.route = r
	e.nicID = r.NICID()
	e.initSend(e.proto.isn(id))
	e.rcvMSS = mssFor(r.MTU())
	e.rcvWScale = e.rcvWScaleWanted()
	e.tsOffset = e.proto.tupleHash(id, true) ^ e.proto.tupleHash(id, false)
	e.proto.stats.ActiveOpens.Add(1)
	e.setState(StateSynSent, cause)
	e.sendSYN()
	return &tcpip.ErrConnectStarted{}
}

// mssFor is the MSS to announce for a network-layer MTU (RFC 9293 3.7.1).
func mssFor(mtu uint32) uint16 {
	return uint16(min(mtu-header.TCPMinimumSize, 0xffff))
}

// initSend sets the send sequence variables from the ISS; the SYN takes the
// first sequence number, data begins after it (RFC 9293 section 3.4).
func (e *endpoint) initSend(iss seqnum.Value) {
	e.iss, e.sndUna, e.sndNxt, e.sndMax = iss, iss, iss, iss
	e.rec = recovery{point: iss, highRxt: iss}
	e.shortEnd = iss
	e.sndBufSeq = iss.Add(1)
}

// initReceive records the peer's SYN: IRS, RCV.NXT, its window (never
// scaled on a SYN, RFC 7323 section 2.2), its MSS and which options both
// sides now use.
func (e *endpoint) initReceive(seg *Segment) {
	e.negotiateWScale(seg.Options.WindowScale)
	e.negotiateTimestamps(seg)
	e.sackOK = seg.Options.SACKPermitted
	e.irs = seg.Seq
	e.rcvNxt = seg.Seq.Add(1)
	e.rcvAdv = e.rcvNxt
	e.sndWnd = seqnum.Size(seg.Window)
	e.maxSndWnd = e.sndWnd
	e.sndWL1 = seg.Seq
	peer := int(seg.Options.MSS)
	if peer == 0 {
		peer = defaultMSS
	}
	e.sndMSS = min(peer, int(e.rcvMSS))
	e.cc, _ = cc.New(e.ccName, e.smss()) // ccName was validated when set
}

// synOptions are the options of our SYN or SYN,ACK: a SYN offers them all;
// a SYN,ACK answers only those the peer's SYN offered (RFC 7323 sections
// 2.2 and 3.2, RFC 2018 section 2).
func (e *endpoint) synOptions(offer bool) SegmentOptions {
	o := SegmentOptions{MSS: e.rcvMSS, WindowScale: -1}
	if offer || e.wsOK {
		o.WindowScale = int8(e.rcvWScale)
	}
	o.SACKPermitted = offer || e.sackOK
	if offer || e.tsOK {
		o.Timestamps, o.TSVal, o.TSEcr = true, e.tsNow(), e.tsRecent
	}
	return o
}

// sendSYN sends (or resends) <SEQ=ISS><CTL=SYN>.
func (e *endpoint) sendSYN() {
	e.emitSYN(header.TCPFlagSyn)
}

// sendSYNACK sends (or resends) <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
func (e *endpoint) sendSYNACK() {
	e.emitSYN(header.TCPFlagSyn | header.TCPFlagAck)
}

func (e *endpoint) emitSYN(flags header.TCPFlags) {
	retransmit := e.sndMax != e.iss
	o := e.synOptions(flags&header.TCPFlagAck == 0)
	e.emit(flags, e.iss, 0, &o)
	e.sndNxt, e.sndMax = e.iss.Add(1), e.iss.Add(1)
	if retransmit {
		e.counters.Retransmits++
		e.proto.stats.Retransmits.Add(1)
		e.synRetried = true
	}
	e.rtt.sent(e.iss, e.sndNxt, retransmit, e.monoNow())
	e.armRTO()
}

// handleSynSent is segment arrival in SYN-SENT (RFC 9293 section 3.10.7.3).
func (e *endpoint) handleSynSent(seg *Segment) {
	ackOK := false
	if seg.has(header.TCPFlagAck) {
		// First: an ACK for something we never sent is answered by a RST.
		if seg.Ack.LessThanEq(e.iss) || e.sndMax.LessThan(seg.Ack) {
			e.replyReset(seg)
			return
		}
		ackOK = true
	}
	// Second: a RST is honoured only if it acknowledges our SYN.
	if seg.has(header.TCPFlagRst) {
		if ackOK {
			e.counters.RSTsIn++
			e.proto.stats.ResetsReceived.Add(1)
			e.fail(&tcpip.ErrConnectionRefused{}, "RST in SYN-SENT: connection refused")
		}
		return
	}
	// Fourth: the peer's SYN.
	if !seg.has(header.TCPFlagSyn) {
		return
	}
	e.initReceive(seg)
	if ackOK {
		e.sndUna = seg.Ack
		e.sndWL2 = seg.Ack
		e.rtt.acked(seg.Ack, e.monoNow(), e.tsRTT(seg))
		e.established("SYN,ACK received")
		e.sendACK()
		// Data or FIN riding on the SYN,ACK continue at the sixth step.
		seg.Seq = seg.Seq.Add(1)
		seg.Flags &^= header.TCPFlagSyn | header.TCPFlagAck
		e.processText(seg)
		e.sendPending()
		return
	}
	// Simultaneous open: a bare SYN takes SYN-SENT to SYN-RECEIVED and the
	// same TCB answers with SYN,ACK from its original ISS.
	e.setState(StateSynReceived, "simultaneous open: SYN received in SYN-SENT")
	e.sndMax = e.iss
	e.sendSYNACK()
}

// established completes the handshake: ESTABLISHED, congestion state, and
// wake whoever waits — the connecting application, or the listener's accept
// queue for a passive open.
func (e *endpoint) established(cause string) {
	e.rtt.backoff = 0
	if e.synRetried && !e.rtt.measured {
		// RFC 6298 section 5.7: after a SYN timeout, data starts with an
		// RTO of at least 3 s.
		e.rtt.rto = max(e.rtt.rto, synTimeoutRTO)
	}
	e.stopRTO()
	e.setState(StateEstablished, cause)
	e.events |= waiter.WritableEvents
	if e.finQueued {
		// Close was called during the handshake (RFC 9293 section 3.10.4).
		e.setState(StateFinWait1, "close during handshake")
	}
	if l := e.listener; l != nil {
		e.listener = nil
		l.enqueueAccepted(e)
	}
}
