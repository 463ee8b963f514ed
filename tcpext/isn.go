package tcpext

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// isn chooses an initial sequence number per RFC 6528 section 3:
// ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M
// is a timer ticking every 4 microseconds and F a keyed hash, so ISNs of one
// 4-tuple keep increasing while other tuples' ISNs are unpredictable.
func (p *Protocol) isn(id stack.TransportEndpointID) seqnum.Value {
	p.mu.Lock()
	f := p.isnForTest
	p.mu.Unlock()
	if f != nil {
		return f(id)
	}
	m := uint32(p.stack.Clock().NowMonotonic().Sub(p.epoch) / (4 * time.Microsecond))
	return seqnum.Value(m + p.tupleHash(id, true))
}

// tupleHash is F of RFC 6528 (withLocalPort) or of RFC 6056 Algorithm 3,
// which leaves the local port out since that is what it picks.
func (p *Protocol) tupleHash(id stack.TransportEndpointID, withLocalPort bool) uint32 {
	h := sha256.New()
	h.Write(p.secret[:])
	h.Write(id.LocalAddress.AsSlice())
	h.Write(id.RemoteAddress.AsSlice())
	var ports [4]byte
	binary.BigEndian.PutUint16(ports[0:], id.RemotePort)
	if withLocalPort {
		binary.BigEndian.PutUint16(ports[2:], id.LocalPort)
	}
	h.Write(ports[:])
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint32(h.Sum(sum[:0]))
}
