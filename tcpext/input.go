package tcpext

import (
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// decode checks a received segment's checksum (with the pseudo-header,
// RFC 9293 section 3.1) and parses it. Bad segments are counted and
// dropped. The payload aliases pkt.
func (p *Protocol) decode(id stack.TransportEndpointID, pkt *stack.PacketBuffer) (Segment, bool) {
	p.stats.SegmentsReceived.Add(1)
	h := header.TCP(pkt.TransportHeader().Slice())
	if len(h) < header.TCPMinimumSize || int(h.DataOffset()) < header.TCPMinimumSize || int(h.DataOffset()) != len(h) {
		// parse.TCP consumed only the fixed header when the data offset
		// pointed past the end of the segment.
		p.stats.MalformedDropped.Add(1)
		return Segment{}, false
	}
	size := pkt.Data().Size()
	if !pkt.RXChecksumValidated && !h.IsChecksumValid(id.RemoteAddress, id.LocalAddress, pkt.Data().Checksum(), uint16(size)) {
		p.stats.ChecksumErrors.Add(1)
		return Segment{}, false
	}
	seg, err := parseHeader(h)
	if err != nil {
		p.stats.MalformedDropped.Add(1)
		return Segment{}, false
	}
	if size > 0 {
		seg.setPayload(pkt, size)
	}
	return seg, true
}

// payloadScratch holds the copies that make split payloads contiguous.
var payloadScratch = sync.Pool{New: func() any { b := make([]byte, 0, 1<<16); return &b }}

// setPayload points the segment's payload at the size bytes of pkt's data,
// which end its buffer, for reading only. When they lie in one view that
// is the view's memory; PullUp would instead return writable memory and so
// copy a chunk the packet shares (a segment of a stack in the same process
// shares its sender's send buffer). A payload split across views (a large
// segment that spans two chunks of the sender's buffer) is copied into
// pooled scratch memory, which release gives back; the packet's views
// still hold it for the receive buffer (share).
func (s *Segment) setPayload(pkt *stack.PacketBuffer, size int) {
	views, _ := pkt.AsViewList()
	if last := views.Back(); last != nil && last.Size() >= size {
		b := last.AsSlice()
		s.Payload, s.view = b[len(b)-size:], last
		return
	}
	skip := -size
	for v := views.Front(); v != nil; v = v.Next() {
		skip += v.Size()
	}
	s.scratch = payloadScratch.Get().(*[]byte)
	b := (*s.scratch)[:0]
	for v := views.Front(); v != nil; v = v.Next() {
		p := v.AsSlice()
		if skip >= len(p) {
			skip -= len(p)
			continue
		}
		b = append(b, p[max(skip, 0):]...)
		skip = 0
	}
	*s.scratch, s.Payload, s.split = b, b, pkt
}

// share returns p, all or part of the segment's payload, as references to
// the received packet's memory, so that the application's read is the one
// copy the data takes; or false if p is to be copied: when it is small
// (it would pin a chunk much larger than itself) or the segment has no
// packet behind it.
func (s *Segment) share(p []byte) (buffer.Buffer, bool) {
	switch {
	case s == nil || len(p) < minSharedPayload:
		return buffer.Buffer{}, false
	case s.view != nil:
		c := s.view.Clone()
		// p is a slice of the view's bytes, so the difference in their
		// capacities is p's offset in them.
		c.TrimFront(cap(s.view.AsSlice()) - cap(p))
		c.CapLength(len(p))
		return buffer.MakeWithView(c), true
	case s.split != nil:
		// Likewise p is a slice of the scratch copy of the packet's data.
		b := s.split.Data().ToBuffer()
		b.TrimFront(int64(cap(*s.scratch) - cap(p)))
		b.Truncate(int64(len(p)))
		return b, true
	}
	return buffer.Buffer{}, false
}

// release gives back the scratch memory of a split payload, once the
// segment has been handled.
func (s *Segment) release() {
	if s.scratch != nil {
		*s.scratch = (*s.scratch)[:0]
		payloadScratch.Put(s.scratch)
		s.scratch, s.Payload, s.split = nil, nil, nil
	}
}

// HandlePacket implements stack.TransportEndpoint: segment arrival,
// dispatched on the TCB's state as in RFC 9293 section 3.10.7.
func (e *endpoint) HandlePacket(id stack.TransportEndpointID, pkt *stack.PacketBuffer) {
	seg, ok := e.proto.decode(id, pkt)
	if !ok {
		return
	}
	e.mu.Lock()
	e.startTick()
	e.rxBatched = e.proto.acks.batches(pkt.NICID)
	e.counters.SegsIn++
	e.counters.BytesIn += uint64(len(seg.Payload))
	e.recordSegment(&seg, false, false)
	e.heard()
	var child, reincarnate *endpoint
	switch e.state {
	case StateClosed:
		e.replyResetVia(id, pkt, &seg)
	case StateListen:
		child = e.handleListen(id, &seg, pkt)
	case StateSynSent:
		e.handleSynSent(&seg)
	case StateTimeWait:
		reincarnate = e.handleTimeWait(&seg)
	default:
		e.handleSegment(&seg)
	}
	e.unlock()
	if reincarnate != nil {
		// The TIME-WAIT TCB has gone; its listener takes the new SYN.
		reincarnate.mu.Lock()
		child = reincarnate.handleListen(id, &seg, pkt)
		reincarnate.unlock()
	}
	if child != nil {
		child.mu.Lock()
		child.unlock()
	}
	seg.release()
}

// handleSegment is segment arrival in SYN-RECEIVED and the synchronized
// states (RFC 9293 section 3.10.7.4), step by step.
func (e *endpoint) handleSegment(seg *Segment) {
	// A retransmitted SYN while our SYN,ACK is unanswered: it was lost, so
	// send it again rather than a bare ACK.
	if e.state == StateSynReceived && seg.has(header.TCPFlagSyn) && seg.Seq == e.irs {
		if !seg.has(header.TCPFlagAck) {
			e.sendSYNACK()
			return
		}
		// Simultaneous open (RFC 9293 figure 7): the peer's SYN,ACK
		// repeats its SYN and acknowledges ours; the SYN part is old, the
		// ACK completes our SYN-RECEIVED.
		seg.Seq = seg.Seq.Add(1)
		seg.Flags &^= header.TCPFlagSyn
	}
	// First: PAWS (RFC 7323 section 5.3), then the sequence number check.
	if e.pawsReject(seg) {
		e.counters.PAWSDropped++
		e.proto.stats.DroppedPAWS.Add(1)
		e.sendOOWACK(seg)
		return
	}
	if !e.acceptable(seg) {
		e.counters.DupSegsIn++
		e.proto.stats.DroppedUnacceptable.Add(1)
		if !seg.has(header.TCPFlagRst) {
			if seg.Seq.LessThan(e.rcvNxt) {
				e.noteDuplicate(seg)
			}
			e.sendOOWACK(seg)
		}
		return
	}
	e.updateTSRecent(seg)
	e.trimToWindow(seg)
	// Second: RST, with RFC 5961 section 3.2 protection.
	if seg.has(header.TCPFlagRst) {
		if seg.Seq != e.rcvNxt {
			e.challengeACK()
			return
		}
		e.counters.RSTsIn++
		e.proto.stats.ResetsReceived.Add(1)
		e.onReset()
		return
	}
	// Fourth: a SYN in a synchronized state (RFC 5961 section 4.2).
	if seg.has(header.TCPFlagSyn) {
		e.challengeACK()
		return
	}
	// Fifth: ACK.
	if !seg.has(header.TCPFlagAck) {
		return
	}
	if e.state == StateSynReceived {
		if !e.sndUna.LessThan(seg.Ack) || e.sndMax.LessThan(seg.Ack) {
			e.replyReset(seg)
			return
		}
		e.sndUna = seg.Ack
		e.rtt.acked(seg.Ack, e.monoNow(), e.tsRTT(seg))
		e.updateWindow(seg)
		e.established("ACK of SYN,ACK received")
	} else if !e.processACK(seg) {
		return
	}
	if e.state == StateClosed {
		return
	}
	e.receiveUrgent(seg)
	e.processText(seg)
	e.sendRecovery()
}

// acceptable is the four-case test of RFC 9293 section 3.10.7.4.
func (e *endpoint) acceptable(seg *Segment) bool {
	wnd := e.rcvNxt.Size(e.rcvAdv)
	if e.rcvAdv.LessThan(e.rcvNxt) {
		wnd = 0
	}
	n := seqnum.Size(len(seg.Payload))
	if seg.has(header.TCPFlagSyn) {
		n++
	}
	if seg.has(header.TCPFlagFin) {
		n++
	}
	switch {
	case n == 0 && wnd == 0:
		return seg.Seq == e.rcvNxt
	case n == 0:
		return seg.Seq.InWindow(e.rcvNxt, wnd)
	case wnd == 0:
		return false
	}
	return seg.Seq.InWindow(e.rcvNxt, wnd) || seg.Seq.Add(n-1).InWindow(e.rcvNxt, wnd)
}

// trimToWindow cuts what lies before RCV.NXT or past the window off an
// acceptable segment; a FIN past the window is cut with it.
func (e *endpoint) trimToWindow(seg *Segment) {
	if seg.Seq.LessThan(e.rcvNxt) {
		cut := seg.Seq.Size(e.rcvNxt)
		if seg.has(header.TCPFlagSyn) {
			seg.Flags &^= header.TCPFlagSyn
			cut--
		}
		seg.Payload = seg.Payload[min(int(cut), len(seg.Payload)):]
		seg.Seq = e.rcvNxt
	}
	if room := int(seg.Seq.Size(e.rcvAdv)); len(seg.Payload) > room && room >= 0 {
		seg.Payload = seg.Payload[:room]
		seg.Flags &^= header.TCPFlagFin
	}
}

// onReset handles an exact RST (RFC 9293 section 3.10.7.4, second step).
func (e *endpoint) onReset() {
	switch e.state {
	case StateSynReceived:
		if e.passiveOpen {
			e.returnToListen("RST in SYN-RECEIVED (passive open)")
			return
		}
		e.fail(&tcpip.ErrConnectionRefused{}, "RST in SYN-RECEIVED (active open)")
	case StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait:
		e.fail(&tcpip.ErrConnectionReset{}, "RST received")
	default:
		e.setState(StateClosed, "RST received")
	}
}

// processACK is the fifth step for the synchronized states. It reports
// whether processing of the segment goes on.
func (e *endpoint) processACK(seg *Segment) bool {
	ack := seg.Ack
	if e.sndMax.LessThan(ack) {
		// It acknowledges something not yet sent.
		e.sendACK()
		return false
	}
	newlySACKed := false
	if e.sackOK && seg.Options.NumSACK > 0 {
		una := e.sndUna
		if una.LessThan(ack) {
			una = ack
		}
		newlySACKed = e.sb.update(&seg.Options, una, e.sndMax)
	}
	e.onProbeAck(seg)
	if e.isDupAck(seg, newlySACKed) {
		e.onDupAck()
	}
	if e.sndUna.LessThan(ack) {
		acked := e.sndUna.Size(ack)
		if e.sndBufSeq.LessThan(ack) {
			n := min(int(e.sndBufSeq.Size(ack)), e.sndQueued())
			e.sndBuf.TrimFront(int64(n))
			e.sndBufSeq = e.sndBufSeq.Add(seqnum.Size(n))
		}
		e.sndUna = ack
		e.urgentAcked()
		if e.sndNxt.LessThan(ack) {
			e.sndNxt = ack
		}
		e.rtt.acked(ack, e.monoNow(), e.tsRTT(seg))
		e.sb.ack(ack)
		e.rtt.backoff = 0
		e.progress, e.progressing = e.monoNow(), true
		e.rec.trail(ack)
		if e.rec.active {
			e.onRecoveryAck(int(acked))
		} else {
			e.rec.dupAcks = 0
			// The window grows only while it limits the sending (RFC
			// 7661 section 4.3): a sender held back by the peer's window
			// or by its application would grow cwnd, and the send buffer
			// with it, far beyond anything the path has shown it can take.
			if e.cwndLimited {
				e.cc.OnAck(int(acked), e.rtt.srtt, e.now())
				e.tuneSend()
			}
		}
		e.cwndLimited = false
		if e.sndUna == e.sndMax {
			e.stopRTO()
		} else {
			e.restartRTO()
		}
		e.schedulePTO()
		if e.sendSpace() {
			e.events |= waiter.WritableEvents
		}
		e.checkLoss()
	}
	if !ack.LessThan(e.sndUna) {
		e.updateWindow(seg)
	}
	if !e.finAcked() {
		return true
	}
	switch e.state {
	case StateFinWait1:
		if seg.has(header.TCPFlagFin) && seg.Seq.Add(seqnum.Size(len(seg.Payload))) == e.rcvNxt {
			// The peer's FIN rides on the ACK of ours: processFIN takes
			// FIN-WAIT-1 straight to TIME-WAIT.
			return true
		}
		e.setState(StateFinWait2, "ACK of FIN")
		e.armFinWait2()
	case StateClosing:
		e.enterTimeWait("ACK of FIN in CLOSING")
		return false
	case StateLastAck:
		e.setState(StateClosed, "ACK of FIN in LAST-ACK")
		return false
	}
	return true
}

// updateWindow takes the peer's window from a segment newer than the last
// one used (the SND.WL1/SND.WL2 rule of RFC 9293 section 3.10.7.4).
func (e *endpoint) updateWindow(seg *Segment) {
	if e.sndWL1.LessThan(seg.Seq) || (e.sndWL1 == seg.Seq && !seg.Ack.LessThan(e.sndWL2)) {
		e.sndWnd = seqnum.Size(seg.Window) << e.sndWScale
		e.maxSndWnd = max(e.maxSndWnd, e.sndWnd)
		e.sndWL1, e.sndWL2 = seg.Seq, seg.Ack
		if e.sndWnd > 0 {
			e.windowOpened()
		}
	}
}

// processText is the sixth to eighth steps: segment text, then FIN.
// Data beyond a gap is held and answered at once with a duplicate ACK
// (RFC 5681 section 4.2); data that fills a gap is ACKed at once too.
func (e *endpoint) processText(seg *Segment) {
	fin := seg.has(header.TCPFlagFin)
	if len(seg.Payload) == 0 && !fin {
		return
	}
	switch e.state {
	case StateEstablished, StateFinWait1, StateFinWait2:
	default:
		// Text and FIN after the peer's FIN are ignored.
		return
	}
	if len(seg.Payload) > 0 && e.closed {
		// Nobody will read it: the application closed fully, so the peer
		// learns at once (RFC 9293 section 3.10.7.4, RFC 2525).
		e.abort("data received after close")
		return
	}
	if seg.Seq != e.rcvNxt {
		e.holdOutOfOrder(seg.Seq, seg.Payload, fin)
		e.sendACK()
		return
	}
	if n := e.deliver(seg.Payload, seg); n < len(seg.Payload) {
		fin = false
	}
	gap := len(e.ooo) > 0
	if gap && e.drainOutOfOrder() {
		fin = true
	}
	switch {
	case fin:
		e.processFIN()
	case gap:
		e.sendACK()
	default:
		e.ackData(seg.Flags&header.TCPFlagPsh != 0 && len(seg.Payload) >= e.maxPayload())
	}
}

// processFIN is the eighth step: the peer's FIN takes one sequence number
// and moves us along the closing arrows.
func (e *endpoint) processFIN() {
	e.rcvNxt = e.rcvNxt.Add(1)
	e.finRcvd = true
	e.events |= waiter.ReadableEvents
	switch e.state {
	case StateSynReceived, StateEstablished:
		e.setState(StateCloseWait, "FIN received")
		// The application usually answers a FIN by closing: the ACK waits
		// to ride on our FIN (delack.go), as Linux's does.
		e.ackFIN()
		return
	case StateFinWait1:
		if e.finAcked() {
			e.enterTimeWait("FIN received in FIN-WAIT-1, our FIN acked")
		} else {
			e.setState(StateClosing, "simultaneous close: FIN received in FIN-WAIT-1")
		}
	case StateFinWait2:
		e.enterTimeWait("FIN received in FIN-WAIT-2")
	}
	e.sendACK()
}
