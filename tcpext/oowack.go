package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// An unacceptable segment is answered with an ACK (RFC 9293 section
// 3.10.7.4), and so is one PAWS rejects (RFC 7323 section 5.3). When the
// segment carries no data, that answer can start an ACK loop: two TCBs
// that disagree about the window, or a forger, bounce ACKs at each other
// as fast as the path allows (RFC 5961 section 5 discusses the storm). As
// Linux does (tcp_oow_rate_limited), such answers go out at most once per
// oowACKInterval per TCB. Data and SYNs are always answered: a retransmitted
// segment the peer needs our ACK for is not part of a loop.

// oowACKInterval is Linux's default tcp_invalid_ratelimit.
const oowACKInterval = 500 * time.Millisecond

// sendOOWACK answers an unacceptable segment, rate-limited as above.
func (e *endpoint) sendOOWACK(seg *Segment) {
	if len(seg.Payload) == 0 && !seg.has(header.TCPFlagSyn) {
		now := e.monoNow()
		if e.oowACKed && now.Sub(e.lastOOWACK) < oowACKInterval {
			e.proto.stats.OOWACKsSuppressed.Add(1)
			return
		}
		e.lastOOWACK, e.oowACKed = now, true
	}
	e.sendACK()
}
