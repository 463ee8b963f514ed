package tcpext

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// minMSS is the smallest MSS path MTU discovery may lower us to; smaller
// "fragmentation needed" MTUs are forged or broken (Linux's
// tcp_min_snd_mss has the same purpose).
const minMSS = 88

// HandleError implements stack.TransportEndpoint: an ICMP error quoting one
// of our segments. The quoted sequence number must lie in
// [SND.UNA, SND.MAX) or the message is dropped as forged (RFC 5927
// section 4.1).
func (e *endpoint) HandleError(terr stack.TransportError, pkt *stack.PacketBuffer) {
	quoted, ok := pkt.Data().PullUp(8)
	if !ok {
		return
	}
	seq := seqnum.Value(binary.BigEndian.Uint32(quoted[4:]))
	e.mu.Lock()
	defer e.unlock()
	e.proto.stats.ICMPErrors.Add(1)
	if !seq.InRange(e.sndUna, e.sndMax) {
		e.counters.ICMPIgnored++
		return
	}
	var err tcpip.Error
	switch terr.Kind() {
	case stack.PacketTooBigTransportError:
		e.lowerMSS(int(terr.Info()) - header.TCPMinimumSize)
		return
	case stack.DestinationHostUnreachableTransportError, stack.DestinationHostDownTransportError:
		err = &tcpip.ErrHostUnreachable{}
	case stack.DestinationNetworkUnreachableTransportError:
		err = &tcpip.ErrNetworkUnreachable{}
	case stack.DestinationPortUnreachableTransportError, stack.DestinationProtoUnreachableTransportError:
		err = &tcpip.ErrConnectionRefused{}
	default:
		return
	}
	if e.state == StateSynSent {
		// Nothing was established to lose: fail the connect at once.
		e.fail(err, "ICMP "+err.String()+" in SYN-SENT")
		return
	}
	// In synchronized states ICMP errors are soft (RFC 5461 section 4):
	// the path may recover before the retransmission limit.
	e.lastError = err
}

// lowerMSS applies a path MTU learned from "fragmentation needed"
// (RFC 1191 section 6.5) and resends what the smaller MTU dropped.
func (e *endpoint) lowerMSS(mss int) {
	if mss >= e.sndMSS || mss < minMSS {
		return
	}
	e.sndMSS = mss
	e.cc.SetMSS(e.smss())
	e.counters.PMTUUpdates++
	if e.state.synchronized() && e.sndUna.LessThan(e.sndNxt) {
		e.sndNxt = e.sndUna
		e.sendPending()
	}
}
