package tcpext

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/ports"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// The dynamic port range of RFC 6335 section 6, used for ephemeral ports.
const (
	firstEphemeral = 49152
	lastEphemeral  = 65535
)

// portEntry is the use of one local port. exclusive is the listener or the
// bound but unconnected endpoint that owns it; connected TCBs (accepted
// children, active opens, TIME-WAIT) share a port, told apart by their
// 4-tuples. That is Linux's SO_REUSEADDR behaviour: a server restarted while
// its old connections sit in TIME-WAIT can bind again at once.
type portEntry struct {
	users     int
	exclusive *endpoint
}

// reservePort claims port for e; exclusive claims fail while another
// endpoint owns the port exclusively.
func (p *Protocol) reservePort(e *endpoint, port uint16, exclusive bool) tcpip.Error {
	p.mu.Lock()
	defer p.mu.Unlock()
	pe := p.ports[port]
	if pe == nil {
		pe = &portEntry{}
		p.ports[port] = pe
	}
	if exclusive {
		if pe.exclusive != nil {
			return &tcpip.ErrPortInUse{}
		}
		pe.exclusive = e
	}
	pe.users++
	return nil
}

// releasePort drops e's claim on port.
func (p *Protocol) releasePort(e *endpoint, port uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pe := p.ports[port]
	if pe == nil {
		return
	}
	if pe.exclusive == e {
		pe.exclusive = nil
	}
	if pe.users--; pe.users <= 0 {
		delete(p.ports, port)
	}
}

// shareExclusivePort turns e's exclusive claim into a shared one, when a
// bound endpoint connects.
func (p *Protocol) shareExclusivePort(e *endpoint, port uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe := p.ports[port]; pe != nil && pe.exclusive == e {
		pe.exclusive = nil
	}
}

// register adds e to the stack's demultiplexer under id, which becomes
// its tid: while e is registered, tid is the key to unregister it by.
func (p *Protocol) register(e *endpoint, id stack.TransportEndpointID) tcpip.Error {
	if err := p.stack.RegisterTransportEndpoint([]tcpip.NetworkProtocolNumber{e.netProto}, ProtocolNumber, id, e, ports.Flags{}, 0); err != nil {
		return err
	}
	e.inDemux, e.tid = true, id
	return nil
}

// unregister removes e from the demultiplexer.
func (p *Protocol) unregister(e *endpoint) {
	p.stack.UnregisterTransportEndpoint([]tcpip.NetworkProtocolNumber{e.netProto}, ProtocolNumber, e.tid, e, ports.Flags{}, 0)
	e.inDemux = false
}

// connectPort picks an ephemeral port for id by RFC 6056 Algorithm 3
// ("simple hash-based"): each remote endpoint walks the range from its own
// keyed offset, so ports are hard to guess yet reuse for one peer is rare.
// It registers e under the chosen 4-tuple and returns the port.
func (p *Protocol) connectPort(e *endpoint, id stack.TransportEndpointID) (uint16, tcpip.Error) {
	const n = lastEphemeral - firstEphemeral + 1
	offset := p.tupleHash(id, false)
	for count := 0; count < n; count++ {
		// next_ephemeral advances on every probe, not once per connect,
		// so a port skipped as busy does not leave the next connect to
		// reuse the port just released (RFC 6056 section 3.3.3).
		p.mu.Lock()
		port := uint16(firstEphemeral + (p.nextEphemeral+offset)%n)
		p.nextEphemeral++
		free := p.ports[port] == nil
		p.mu.Unlock()
		if !free {
			continue
		}
		if err := p.reservePort(e, port, false); err != nil {
			continue
		}
		id.LocalPort = port
		if err := p.register(e, id); err != nil {
			p.releasePort(e, port)
			continue
		}
		return port, nil
	}
	return 0, &tcpip.ErrNoPortAvailable{}
}

// Bind implements tcpip.Endpoint.
func (e *endpoint) Bind(addr tcpip.FullAddress) tcpip.Error {
	e.mu.Lock()
	defer e.unlock()
	if e.state != StateClosed || e.portHeld {
		return &tcpip.ErrAlreadyBound{}
	}
	if addr.Addr.BitLen() != 0 && !addr.Addr.Unspecified() {
		if e.stack.CheckLocalAddress(addr.NIC, e.netProto, addr.Addr) == 0 {
			return &tcpip.ErrBadLocalAddress{}
		}
		e.tid.LocalAddress = addr.Addr
	}
	port := addr.Port
	if port == 0 {
		var err tcpip.Error
		if port, err = e.proto.bindEphemeral(e); err != nil {
			return err
		}
	} else if err := e.proto.reservePort(e, port, true); err != nil {
		return err
	}
	e.tid.LocalPort = port
	e.nicID = addr.NIC
	e.portHeld = true
	return nil
}

// bindEphemeral claims a free ephemeral port for a listener or an explicit
// bind to port 0.
func (p *Protocol) bindEphemeral(e *endpoint) (uint16, tcpip.Error) {
	const n = lastEphemeral - firstEphemeral + 1
	p.mu.Lock()
	start := p.nextEphemeral
	p.nextEphemeral++
	p.mu.Unlock()
	for count := uint32(0); count < n; count++ {
		port := uint16(firstEphemeral + (start+count)%n)
		if p.reservePort(e, port, true) == nil {
			return port, nil
		}
	}
	return 0, &tcpip.ErrNoPortAvailable{}
}
