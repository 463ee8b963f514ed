package tcpext

import (
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// SetISNForTest makes p choose its initial sequence numbers with f, so
// tests can replay worked examples with fixed ISNs.
func SetISNForTest(p *Protocol, f func() uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isnForTest = func(stack.TransportEndpointID) seqnum.Value { return seqnum.Value(f()) }
}
