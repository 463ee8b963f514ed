package impair

import (
	"fmt"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Endpoint is a stack.LinkEndpoint that impairs the traffic of the link
// endpoint it wraps: what the stack writes passes the outbound Line before
// it reaches the wrapped endpoint, and what the wrapped endpoint receives
// passes the inbound Line before it reaches the stack.
//
// Writes always succeed from the stack's point of view, as on a real link
// whose losses happen out of sight; an error of the wrapped endpoint on a
// delayed packet is counted in WriteErrors and otherwise lost with the
// packet.
type Endpoint struct {
	nested.Endpoint
	child   stack.LinkEndpoint
	out, in *Line // nil when that direction is not impaired

	writeErrors atomic.Uint64
}

var (
	_ stack.LinkEndpoint      = (*Endpoint)(nil)
	_ stack.NetworkDispatcher = (*Endpoint)(nil)
)

// NewEndpoint wraps child, impairing outbound traffic by out and inbound
// traffic by in, on clock (the stack's clock, so that a manual clock drives
// the delays). The two directions must have different seeds to make
// different decisions.
func NewEndpoint(child stack.LinkEndpoint, clock tcpip.Clock, out, in Config) (*Endpoint, error) {
	e := &Endpoint{child: child}
	e.Endpoint.Init(child, e)
	if out.Active() {
		im, err := New(out, clock)
		if err != nil {
			return nil, fmt.Errorf("outbound: %w", err)
		}
		e.out = NewLine(im, e.writeOne)
	}
	if in.Active() {
		im, err := New(in, clock)
		if err != nil {
			return nil, fmt.Errorf("inbound: %w", err)
		}
		e.in = NewLine(im, e.deliverOne)
	}
	return e, nil
}

// WritePackets implements stack.LinkWriter.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	if e.out == nil {
		return e.child.WritePackets(pkts)
	}
	for _, pkt := range pkts.AsSlice() {
		e.out.Send(pkt)
	}
	return pkts.Len(), nil
}

// writeOne hands one outbound copy to the wrapped endpoint.
func (e *Endpoint) writeOne(pkt *stack.PacketBuffer) {
	var pkts stack.PacketBufferList
	pkts.PushBack(pkt)
	if _, err := e.child.WritePackets(pkts); err != nil {
		e.writeErrors.Add(1)
	}
}

// DeliverNetworkPacket implements stack.NetworkDispatcher: the wrapped
// endpoint delivers here, and the inbound Line passes the packet on.
func (e *Endpoint) DeliverNetworkPacket(protocol tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if e.in == nil {
		e.Endpoint.DeliverNetworkPacket(protocol, pkt)
		return
	}
	// The Line hands on packets later and by themselves; the protocol
	// number travels in the packet.
	pkt.NetworkProtocolNumber = protocol
	e.in.Send(pkt)
}

// deliverOne hands one inbound copy to the stack.
func (e *Endpoint) deliverOne(pkt *stack.PacketBuffer) {
	e.Endpoint.DeliverNetworkPacket(pkt.NetworkProtocolNumber, pkt)
}

// Close implements stack.LinkEndpoint: it drops the packets still held
// back and closes the wrapped endpoint.
func (e *Endpoint) Close() {
	if e.out != nil {
		e.out.Close()
	}
	if e.in != nil {
		e.in.Close()
	}
	e.Endpoint.Close()
}

// Configs returns the impairment in effect each way, defaults filled in;
// the zero Config for a direction left alone.
func (e *Endpoint) Configs() (out, in Config) {
	if e.out != nil {
		out = e.out.Impairer().Config()
	}
	if e.in != nil {
		in = e.in.Impairer().Config()
	}
	return out, in
}

// EndpointStats are an Endpoint's counters.
type EndpointStats struct {
	// Out and In are the outbound and inbound Impairers' counters (zero
	// for a direction that is not impaired).
	Out Stats `json:"out"`
	In  Stats `json:"in"`
	// WriteErrors counts delayed outbound packets the wrapped endpoint
	// refused.
	WriteErrors uint64 `json:"write_errors"`
}

// Stats returns the counters.
func (e *Endpoint) Stats() EndpointStats {
	var s EndpointStats
	if e.out != nil {
		s.Out = e.out.Impairer().Stats()
	}
	if e.in != nil {
		s.In = e.in.Impairer().Stats()
	}
	s.WriteErrors = e.writeErrors.Load()
	return s
}
