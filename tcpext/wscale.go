package tcpext

// Window scaling (RFC 7323 section 2): each side announces a shift on its
// SYN; scaling is on only if both SYNs carried the option. Windows in SYN
// segments are never scaled.

// maxWScale is the largest shift allowed (RFC 7323 section 2.3).
const maxWScale = 14

// wscaleFor is the smallest shift whose scaled 16-bit window covers buf.
func wscaleFor(buf int) int8 {
	s := int8(0)
	for s < maxWScale && 0xffff<<s < buf {
		s++
	}
	return s
}

// negotiateWScale applies the peer's SYN: peer is its shift, or -1 when
// its SYN carried no window-scale option.
func (e *endpoint) negotiateWScale(peer int8) {
	if peer < 0 {
		e.wsOK, e.sndWScale, e.rcvWScale = false, 0, 0
		return
	}
	e.wsOK, e.sndWScale = true, peer
	e.rcvWScale = e.rcvWScaleWanted()
}

// maxRcvWindow is the largest window the negotiated shift can express.
func (e *endpoint) maxRcvWindow() int {
	return 0xffff << e.rcvWScale
}
