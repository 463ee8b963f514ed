// Package tcpext is synfin's TCP: a stack.TransportProtocol for gVisor's
// netstack that replaces gVisor's own transport/tcp.
package tcpext

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/header/parse"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// ProtocolNumber is TCP's IP protocol number.
const ProtocolNumber = header.TCPProtocolNumber

// KeepaliveOptions are the keepalive timers (RFC 9293 3.8.4).
type KeepaliveOptions struct {
	Idle     time.Duration
	Interval time.Duration
	Count    int
}

// Options configure the protocol for every endpoint it creates.
type Options struct {
	// MSL is the maximum segment lifetime; TIME-WAIT lasts 2*MSL.
	MSL time.Duration
	// FinWait2Timeout bounds FIN-WAIT-2 after a full close.
	FinWait2Timeout time.Duration
	// QuietTime refuses new connections for this long after start.
	QuietTime time.Duration
	// Keepalive holds the keepalive timers.
	Keepalive KeepaliveOptions
	// CongestionControl names the default congestion control.
	CongestionControl string
}

// DefaultOptions returns the RFC defaults.
func DefaultOptions() Options {
	return Options{
		MSL:               30 * time.Second,
		FinWait2Timeout:   60 * time.Second,
		Keepalive:         KeepaliveOptions{Idle: 2 * time.Hour, Interval: 75 * time.Second, Count: 9},
		CongestionControl: "newreno",
	}
}

// NewProtocolFactory returns a factory for stack.Options.TransportProtocols.
func NewProtocolFactory(opts Options) stack.TransportProtocolFactory {
	return func(s *stack.Stack) stack.TransportProtocol {
		return newProtocol(s, opts)
	}
}

// ProtocolOf returns the tcpext protocol installed in s, or nil.
func ProtocolOf(s *stack.Stack) *Protocol {
	p, _ := s.TransportProtocolInstance(ProtocolNumber).(*Protocol)
	return p
}

// Protocol is the tcpext transport protocol. Its exported methods are the
// read-only introspection API used by the management shell.
type Protocol struct {
	stack *stack.Stack
	opts  Options
}

func newProtocol(s *stack.Stack, opts Options) *Protocol {
	return &Protocol{stack: s, opts: opts}
}

// TCBs returns a snapshot of every TCB, ordered by id.
func (p *Protocol) TCBs() []TCBInfo { return nil }

// TCB returns a snapshot of one TCB.
func (p *Protocol) TCB(id uint64) (TCBInfo, bool) { return TCBInfo{}, false }

// Number implements stack.TransportProtocol.
func (*Protocol) Number() tcpip.TransportProtocolNumber { return ProtocolNumber }

// NewEndpoint implements stack.TransportProtocol.
func (p *Protocol) NewEndpoint(netProto tcpip.NetworkProtocolNumber, wq *waiter.Queue) (tcpip.Endpoint, tcpip.Error) {
	return nil, &tcpip.ErrNotSupported{}
}

// NewRawEndpoint implements stack.TransportProtocol; raw TCP is not offered.
func (*Protocol) NewRawEndpoint(tcpip.NetworkProtocolNumber, *waiter.Queue) (tcpip.Endpoint, tcpip.Error) {
	return nil, &tcpip.ErrNotSupported{}
}

// MinimumPacketSize implements stack.TransportProtocol.
func (*Protocol) MinimumPacketSize() int { return header.TCPMinimumSize }

// ParsePorts implements stack.TransportProtocol.
func (*Protocol) ParsePorts(b []byte) (src, dst uint16, err tcpip.Error) {
	if len(b) < 4 {
		return 0, 0, &tcpip.ErrBadBuffer{}
	}
	h := header.TCP(b)
	return h.SourcePort(), h.DestinationPort(), nil
}

// HandleUnknownDestinationPacket implements stack.TransportProtocol.
func (p *Protocol) HandleUnknownDestinationPacket(id stack.TransportEndpointID, pkt *stack.PacketBuffer) stack.UnknownDestinationPacketDisposition {
	return stack.UnknownDestinationPacketHandled
}

// SetOption implements stack.TransportProtocol.
func (*Protocol) SetOption(tcpip.SettableTransportProtocolOption) tcpip.Error {
	return &tcpip.ErrUnknownProtocolOption{}
}

// Option implements stack.TransportProtocol.
func (*Protocol) Option(tcpip.GettableTransportProtocolOption) tcpip.Error {
	return &tcpip.ErrUnknownProtocolOption{}
}

// Close implements stack.TransportProtocol.
func (*Protocol) Close() {}

// Wait implements stack.TransportProtocol.
func (*Protocol) Wait() {}

// Pause implements stack.TransportProtocol.
func (*Protocol) Pause() {}

// Resume implements stack.TransportProtocol.
func (*Protocol) Resume() {}

// Restore implements stack.TransportProtocol.
func (*Protocol) Restore() {}

// Parse implements stack.TransportProtocol.
func (*Protocol) Parse(pkt *stack.PacketBuffer) bool { return parse.TCP(pkt) }
