package tcpext

import (
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// maxWindow is the largest window without the window-scale option.
const maxWindow = 0xffff

// buildSegment makes a packet holding seg's header (with checksum) and
// payload, ready for r.
func buildSegment(r *stack.Route, seg *Segment) *stack.PacketBuffer {
	return buildSegmentWith(r, seg, buffer.MakeWithData(seg.Payload))
}

// buildSegmentWith is buildSegment with the payload in a buffer, which the
// packet takes over.
func buildSegmentWith(r *stack.Route, seg *Segment, payload buffer.Buffer) *stack.PacketBuffer {
	hdrLen := seg.HeaderLen()
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: hdrLen + int(r.MaxHeaderLength()),
		Payload:            payload,
	})
	h := header.TCP(pkt.TransportHeader().Push(hdrLen))
	seg.EncodeHeader(h)
	pkt.TransportProtocolNumber = ProtocolNumber
	if r.RequiresTXTransportChecksum() {
		xsum := r.PseudoHeaderChecksum(ProtocolNumber, uint16(pkt.Size()))
		xsum = checksum.Combine(xsum, pkt.Data().Checksum())
		h.SetChecksum(^h.CalculateChecksum(xsum))
	}
	return pkt
}

// Segments are built under mu and handed to the network layer after it is
// released, but in the order they were built: the application's goroutine
// and the one delivering ACKs may both send for a connection, and if each
// wrote its own segments the two batches could interleave on the wire,
// which the peer would take for reordering (duplicate ACKs, spurious
// retransmissions). So one goroutine at a time writes the queue, and
// whatever others queue meanwhile it writes too.

// takeOut returns the queued segments for the caller to write, or nil if
// there are none or another goroutine is writing. e.mu is held.
func (e *endpoint) takeOut() []outPacket {
	if e.writing || len(e.out) == 0 {
		return nil
	}
	e.writing = true
	out := e.out
	e.out = nil
	return out
}

// writeOut hands segments to the network layer. e.mu is not held.
func (e *endpoint) writeOut(out []outPacket) {
	for i, o := range out {
		e.proto.write(o.r, o.pkt)
		o.r.Release()
		out[i] = outPacket{}
	}
}

// nextOut returns what was queued while done was being written, or nil once
// nothing was, which ends the caller's turn. A connection with data in
// flight keeps done's array for its next segments; an idle one lets it go.
// e.mu is held.
func (e *endpoint) nextOut(done []outPacket) []outPacket {
	out := e.out
	e.out = nil
	if e.sndUna != e.sndMax {
		e.out = done[:0]
	}
	if len(out) == 0 {
		e.writing = false
		return nil
	}
	return out
}

// emit queues one segment of this connection for transmission after the
// lock is released, carrying the n bytes of the send buffer from seq. Every
// segment but a bare SYN carries ACK and the current receive window
// (RFC 9293 section 3.10.7.4).
func (e *endpoint) emit(flags header.TCPFlags, seq seqnum.Value, n int, opts *SegmentOptions) {
	seg := Segment{
		SrcPort: e.tid.LocalPort,
		DstPort: e.tid.RemotePort,
		Seq:     seq,
		Flags:   flags,
		sent:    n,
	}
	if opts != nil {
		seg.Options = *opts
	} else {
		seg.Options.WindowScale = -1
		if e.tsOK && flags&header.TCPFlagRst == 0 {
			seg.Options.Timestamps = true
			seg.Options.TSVal, seg.Options.TSEcr = e.tsNow(), e.tsRecent
		}
		if flags&header.TCPFlagAck != 0 {
			e.sackBlocks(&seg.Options)
		}
	}
	e.markUrgent(&seg)
	switch {
	case flags&header.TCPFlagSyn != 0:
		// Never scaled on a SYN (RFC 7323 section 2.2).
		w := min(max(e.rcvBufMax-e.rcvQueued(), 0), maxWindow)
		seg.Window = uint16(w)
		if flags&header.TCPFlagAck != 0 {
			e.rcvAdv = e.rcvNxt.Add(seqnum.Size(w))
		}
	case flags&header.TCPFlagRst == 0:
		seg.Window = uint16(e.advertiseWindow() >> e.rcvWScale)
	}
	if flags&header.TCPFlagAck != 0 {
		seg.Ack = e.rcvNxt
		e.lastAckSent = e.rcvNxt
		e.ackSent()
	}
	if e.route == nil {
		return
	}
	occupies := n > 0 || flags&(header.TCPFlagSyn|header.TCPFlagFin) != 0
	e.recordSegment(&seg, true, occupies && seq.LessThan(e.sndMax))
	e.route.Acquire()
	e.out = append(e.out, outPacket{e.route, buildSegmentWith(e.route, &seg, e.sendData(seq, n))})
	e.counters.SegsOut++
	e.counters.BytesOut += uint64(n)
	if flags&header.TCPFlagRst != 0 {
		e.counters.RSTsOut++
	}
	e.proto.stats.SegmentsSent.Add(1)
}

// windowEdge is where the right edge of the receive window may be
// advertised now. It never moves left (RFC 9293 section 3.8.6), and it moves
// right only in steps of at least min(MSS, buffer/2), the receiver side of
// silly window syndrome avoidance (RFC 9293 section 3.8.6.2.2).
func (e *endpoint) windowEdge() seqnum.Value {
	free := max(e.rcvBufMax-e.rcvQueued(), 0)
	edge := e.rcvNxt.Add(seqnum.Size(min(free, e.maxRcvWindow())))
	if e.rcvAdv.LessThan(e.rcvNxt) {
		return edge
	}
	step := seqnum.Size(min(int(e.rcvMSS), e.rcvBufMax/2))
	if edge.LessThanEq(e.rcvAdv) || e.rcvAdv.Size(edge) < step {
		return e.rcvAdv
	}
	return edge
}

// advertiseWindow returns the window to send, unscaled, and records its
// right edge.
func (e *endpoint) advertiseWindow() int {
	e.rcvAdv = e.windowEdge()
	return int(e.rcvNxt.Size(e.rcvAdv))
}

// sendACK queues a bare ACK for everything received so far. Its sequence
// number is the highest we have sent: after a go-back-N rewind SND.NXT is
// below what the peer already holds, and an ACK numbered there would be
// unacceptable to it (RFC 9293 section 3.10.7.4, first check).
func (e *endpoint) sendACK() {
	e.emit(header.TCPFlagAck, e.sndMax, 0, nil)
}

// sendData returns the n bytes of the send buffer from seq. They share the
// buffer's memory, as a segment in flight and its retransmissions may: the
// application's bytes are copied once, into the send buffer.
func (e *endpoint) sendData(seq seqnum.Value, n int) buffer.Buffer {
	var b buffer.Buffer
	off := int(e.sndBufSeq.Size(seq))
	views := e.sndBuf.AsViewList()
	for v := views.Front(); v != nil && n > 0; v = v.Next() {
		if off >= v.Size() {
			off -= v.Size()
			continue
		}
		c := v.Clone()
		c.TrimFront(off)
		off = 0
		c.CapLength(n)
		n -= c.Size()
		b.Append(c)
	}
	return b
}

// sndQueued is how many bytes the send buffer holds.
func (e *endpoint) sndQueued() int { return int(e.sndBuf.Size()) }

// maxPayload is the data one segment carries: the effective MSS less the
// options it will bear, timestamps and any SACK blocks (RFC 9293 section
// 3.7.1), so that no segment exceeds the path MTU.
func (e *endpoint) maxPayload() int {
	o := SegmentOptions{WindowScale: -1, Timestamps: e.tsOK}
	e.addSACKBlocks(&o)
	return e.sndMSS - o.Len()
}

// finSeq is the sequence number our FIN takes once queued.
func (e *endpoint) finSeq() seqnum.Value {
	return e.sndBufSeq.Add(seqnum.Size(e.sndQueued()))
}

// finSent reports whether our FIN has been transmitted at least once.
func (e *endpoint) finSent() bool {
	return e.finQueued && e.finSeq().LessThan(e.sndMax)
}

// finAcked reports whether the peer acknowledged our FIN.
func (e *endpoint) finAcked() bool {
	return e.finQueued && e.finSeq().LessThan(e.sndUna)
}

// sendPending transmits queued data, then our FIN, as far as the send window
// (the peer's window limited by cwnd, RFC 5681 section 2) allows, and keeps
// the retransmission timer running while anything is outstanding
// (RFC 6298 section 5.1).
func (e *endpoint) sendPending() {
	if !e.state.synchronized() || e.sndNxt.LessThan(e.sndBufSeq) {
		return
	}
	end := e.finSeq()
	cwnd := seqnum.Size(e.cc.Cwnd() + e.limitedTransmit())
	wnd := min(e.sndWnd, cwnd)
	wndEnd := e.sndUna.Add(wnd)
	if e.rec.active && e.sackOK {
		// In SACK recovery the congestion window bounds the pipe, not
		// the span from SND.UNA (RFC 6675 section 5, NextSeg rule 2); the
		// peer's window still bounds the span.
		wndEnd = e.sndUna.Add(e.sndWnd)
		if room := e.cc.Cwnd() - e.pipe(); e.sndNxt.Add(seqnum.Size(max(room, 0))).LessThan(wndEnd) {
			wndEnd = e.sndNxt.Add(seqnum.Size(max(room, 0)))
		}
	}
	resending := e.sackOK && e.sndNxt.LessThan(e.sndMax) && !e.rec.active
	if resending {
		// Going back after a timeout: what the peer SACKed since is not
		// in flight and is not sent again (RFC 6675 section 5.1).
		wndEnd = e.widenForSACKed(wndEnd, seqnum.Size(e.sb.sackedBelow(e.sndNxt)))
	}
	sentNew := false
	for e.sndNxt.LessThan(end) && e.sndNxt.LessThan(wndEnd) {
		if resending {
			if b, ok := e.sb.sackedAt(e.sndNxt); ok {
				wndEnd = e.widenForSACKed(wndEnd, e.sndNxt.Size(b.End))
				e.sndNxt = b.End
				continue
			}
		}
		data := e.sndNxt.Size(end)
		mp := seqnum.Size(e.maxPayload())
		n := min(data, e.sndNxt.Size(wndEnd), mp)
		if resending && e.sndNxt.LessThan(e.sndMax) {
			n = min(n, e.sndNxt.Size(e.sb.nextSACKed(e.sndNxt, e.sndMax)))
		}
		if e.holdShort(n, n == data) {
			break
		}
		next := e.sndNxt.Add(n)
		flags := e.dataFlags(next, end, wndEnd.LessThan(next.Add(mp)))
		if n < mp {
			e.sentShort(next)
		}
		sentNew = sentNew || e.sndNxt == e.sndMax
		e.transmit(flags, e.sndNxt, int(n))
	}
	if e.finQueued && e.sndNxt == end {
		sentNew = sentNew || e.sndNxt == e.sndMax
		e.transmit(header.TCPFlagAck|header.TCPFlagFin, e.sndNxt, 0)
	}
	if e.sndNxt.LessThan(end) && wndEnd.LessThan(e.sndNxt.Add(seqnum.Size(e.maxPayload()))) && cwnd <= e.sndWnd {
		// Data waits for the congestion window, not for the peer's
		// window or the application: only then may cwnd grow. What is
		// left of the window may be a runt that SWS avoidance holds.
		e.cwndLimited = true
	}
	if e.sndUna.LessThan(e.sndNxt) {
		e.armRTO()
		if sentNew {
			e.schedulePTO()
		}
	} else if e.sndNxt.LessThan(end) && e.sndWnd == 0 {
		// Zero window with data waiting: the timer doubles as the persist
		// timer and sends a one-byte probe (RFC 9293 section 3.8.6.1).
		e.armRTO()
	}
}

// dataFlags are the flags of a data segment that ends at next, where end is
// the end of the data queued. PSH marks the end of the data (RFC 9293
// section 3.9.1) and, if windowEdge, the last segment the window lets out:
// nothing follows either until an ACK comes, and the peer need not delay
// that ACK for a segment that is not on its way (delack.go). Once the
// application has closed, the FIN rides on the last data rather than in a
// segment of its own.
func (e *endpoint) dataFlags(next, end seqnum.Value, windowEdge bool) header.TCPFlags {
	flags := header.TCPFlagAck
	if next == end || windowEdge {
		flags |= header.TCPFlagPsh
	}
	if next == end && e.finQueued {
		flags |= header.TCPFlagFin
	}
	return flags
}

// widenForSACKed moves the end of the congestion window on by n SACKed
// bytes, which count against neither window's flight, up to the end of
// the peer's window.
func (e *endpoint) widenForSACKed(wndEnd seqnum.Value, n seqnum.Size) seqnum.Value {
	wndEnd = wndEnd.Add(n)
	if peerEnd := e.sndUna.Add(e.sndWnd); peerEnd.LessThan(wndEnd) {
		return peerEnd
	}
	return wndEnd
}

// transmit sends a segment that occupies sequence space (data or FIN) and
// advances SND.NXT past it.
func (e *endpoint) transmit(flags header.TCPFlags, seq seqnum.Value, n int) {
	retransmit := seq.LessThan(e.sndMax)
	if e.sndUna == e.sndMax {
		e.progress, e.progressing = e.monoNow(), true
	}
	e.emit(flags, seq, n, nil)
	l := seqnum.Size(n)
	if flags&header.TCPFlagFin != 0 {
		l++
	}
	e.sndNxt = seq.Add(l)
	if e.sndMax.LessThan(e.sndNxt) {
		e.sndMax = e.sndNxt
	}
	if retransmit {
		e.counters.Retransmits++
		e.proto.stats.Retransmits.Add(1)
	}
	e.rtt.sent(seq, e.sndNxt, retransmit, e.monoNow())
}

// consumed removes n bytes the application read and, if that opened the
// window enough, tells the peer at once (RFC 9293 section 3.8.6.2.2).
func (e *endpoint) consumed(n int) {
	e.rcvBuf.TrimFront(int64(n))
	e.tuneReceive(n)
	if !e.state.synchronized() || e.state.finReceived() {
		return
	}
	// A pure window update is worth a segment only once the window has at
	// least doubled (as Linux does), and only once the peer has used half
	// of the window last advertised or has fewer than four segments of it
	// left: a peer with more is not held back, and the larger window
	// rides on the next ACK. (A short exchange would otherwise spend a
	// segment telling the peer that the SYN's unscaled 64 KiB have become
	// the whole buffer.) Four segments, because with fewer the peer may
	// stop before we owe it an ACK (delack.go).
	edge := e.windowEdge()
	open := e.rcvNxt.Size(e.rcvAdv)
	used := open < max(e.lastAckSent.Size(e.rcvAdv)/2, 4*seqnum.Size(e.rcvMSS))
	if e.rcvAdv.LessThan(edge) && used && e.rcvNxt.Size(edge) >= 2*open {
		e.sendACK()
	}
}

// sendSpace reports whether the send buffer has room enough to wake a
// writer: a third of it, as Linux's sk_stream_is_writeable has it. A
// writer woken for every ACK would queue a segment or two per wakeup and
// spend its time being scheduled.
func (e *endpoint) sendSpace() bool {
	free := e.sndBufMax - e.sndQueued()
	return free > 0 && free >= e.sndBufMax/3
}
