// Package tcpext is synfin's TCP: a stack.TransportProtocol for gVisor's
// netstack that replaces gVisor's own transport/tcp.
package tcpext

import (
	"crypto/rand"
	"fmt"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/header/parse"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/synfin/synfin/tcpext/cc"
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
	// MinRTO and MaxRTO bound the retransmission timeout (RFC 6298
	// sections 2.4 and 2.5).
	MinRTO, MaxRTO time.Duration
	// UserTimeout, when positive, fails a connection whose data stays
	// unacknowledged that long (RFC 9293 section 3.8.3, RFC 5482).
	UserTimeout time.Duration
	// DelayedACK is the delayed ACK timer (RFC 9293 section 3.8.6.3);
	// zero acknowledges every segment at once.
	DelayedACK time.Duration
	// ChallengeACKLimit caps challenge ACKs per second, stack-wide
	// (RFC 5961 section 7).
	ChallengeACKLimit int
	// RecorderEvents bounds each TCB's flight recorder; zero means
	// the default of 256, negative turns recording off.
	RecorderEvents int
	// ClosedTCBs is how many closed TCBs stay dumpable; zero means the
	// default of 64, negative keeps none.
	ClosedTCBs int
	// OnTransition, if set, is told of every state transition of every
	// TCB. It runs with the TCB locked and must not block or call back
	// into tcpext.
	OnTransition func(Transition)
}

// Transition is one arrow of the state diagram taken by one TCB.
type Transition struct {
	ID       uint64
	From, To State
	Cause    string
	At       time.Time
}

// DefaultOptions returns the RFC defaults.
func DefaultOptions() Options {
	return Options{
		MSL:               30 * time.Second,
		FinWait2Timeout:   60 * time.Second,
		Keepalive:         KeepaliveOptions{Idle: 2 * time.Hour, Interval: 75 * time.Second, Count: 9},
		CongestionControl: "newreno",
		MinRTO:            defaultMinRTO,
		MaxRTO:            defaultMaxRTO,
		ChallengeACKLimit: 1000,
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
	stack  *stack.Stack
	opts   Options
	secret [32]byte // keys the ISN and ephemeral-port hashes
	epoch  tcpip.MonotonicTime
	nextID atomic.Uint64
	stats  Stats
	acks   ackBatcher

	mu            sync.Mutex
	tcbs          map[uint64]*endpoint
	ports         map[uint16]*portEntry
	nextEphemeral uint32
	// closed holds the TCBs that stay dumpable after CLOSED, a ring
	// whose oldest entry is at closedNext once full.
	closed     []*endpoint
	closedNext int

	// defaultCC names the congestion control of new connections.
	defaultCC atomic.Value

	challengeStart tcpip.MonotonicTime
	challengeCount int

	// isnForTest replaces the RFC 6528 generator in tests (export_test.go).
	isnForTest func(stack.TransportEndpointID) seqnum.Value
}

func newProtocol(s *stack.Stack, opts Options) *Protocol {
	def := DefaultOptions()
	if opts.MinRTO <= 0 {
		opts.MinRTO = def.MinRTO
	}
	if opts.MaxRTO < opts.MinRTO {
		opts.MaxRTO = max(def.MaxRTO, opts.MinRTO)
	}
	if opts.RecorderEvents == 0 {
		opts.RecorderEvents = defaultRecorderEvents
	}
	if opts.ClosedTCBs == 0 {
		opts.ClosedTCBs = defaultClosedTCBs
	}
	if opts.ChallengeACKLimit <= 0 {
		opts.ChallengeACKLimit = def.ChallengeACKLimit
	}
	if _, err := cc.New(opts.CongestionControl, defaultMSS); err != nil {
		opts.CongestionControl = def.CongestionControl
	}
	p := &Protocol{
		stack: s,
		opts:  opts,
		epoch: s.Clock().NowMonotonic(),
		tcbs:  make(map[uint64]*endpoint),
		ports: make(map[uint16]*portEntry),
	}
	p.defaultCC.Store(opts.CongestionControl)
	if _, err := rand.Read(p.secret[:]); err != nil {
		panic(fmt.Sprintf("tcpext: reading the ISN secret: %v", err))
	}
	return p
}

// quiet reports whether the quiet time after start is still running
// (RFC 9293 section 3.4.3): no connections may be opened or accepted.
func (p *Protocol) quiet() bool {
	return p.opts.QuietTime > 0 && p.stack.Clock().NowMonotonic().Sub(p.epoch) < p.opts.QuietTime
}

// track adds e to the TCB table when it leaves CLOSED.
func (p *Protocol) track(e *endpoint) {
	p.mu.Lock()
	p.tcbs[e.id] = e
	p.mu.Unlock()
}

// untrack removes e from the TCB table when it reaches CLOSED.
// A TCB is untracked once, however often its cleanup runs, and is then
// retired to the closed TCBs that stay dumpable.
func (p *Protocol) untrack(e *endpoint) {
	now := p.stack.Clock().NowMonotonic()
	p.mu.Lock()
	if p.tcbs[e.id] == e {
		delete(p.tcbs, e.id)
		e.closedAt = now
		p.retire(e)
	}
	p.mu.Unlock()
}

// TCBs returns a snapshot of every TCB, ordered by id.
func (p *Protocol) TCBs() []TCBInfo {
	p.mu.Lock()
	eps := make([]*endpoint, 0, len(p.tcbs))
	for _, e := range p.tcbs {
		eps = append(eps, e)
	}
	p.mu.Unlock()
	sort.Slice(eps, func(i, j int) bool { return eps[i].id < eps[j].id })
	out := make([]TCBInfo, 0, len(eps))
	for _, e := range eps {
		out = append(out, e.snapshot())
	}
	return out
}

// DefaultCongestionControl names the algorithm new connections use.
func (p *Protocol) DefaultCongestionControl() string {
	return p.defaultCC.Load().(string)
}

// SetDefaultCongestionControl changes the algorithm for new connections;
// existing ones keep theirs.
func (p *Protocol) SetDefaultCongestionControl(name string) error {
	if _, err := cc.New(name, defaultMSS); err != nil {
		return err
	}
	p.defaultCC.Store(name)
	return nil
}

// Abort resets the connection of TCB id, as the ABORT call does (RFC 9293
// section 3.10.5): a RST to a synchronized peer, then CLOSED.
func (p *Protocol) Abort(id uint64) error {
	p.mu.Lock()
	e, ok := p.tcbs[id]
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("no TCB with id %d", id)
	}
	e.mu.Lock()
	e.abort("aborted by operator")
	e.unlock()
	return nil
}

// TCB returns a snapshot of one TCB.
func (p *Protocol) TCB(id uint64) (TCBInfo, bool) {
	p.mu.Lock()
	e, ok := p.tcbs[id]
	p.mu.Unlock()
	if !ok {
		return TCBInfo{}, false
	}
	return e.snapshot(), true
}

// Stats returns the protocol-wide counters.
func (p *Protocol) Stats() StatsSnapshot { return p.stats.snapshot() }

// write hands one built segment to the network layer.
func (p *Protocol) write(r *stack.Route, pkt *stack.PacketBuffer) {
	defer pkt.DecRef()
	if err := r.WritePacket(stack.NetworkHeaderParams{Protocol: ProtocolNumber, TTL: r.DefaultTTL()}, pkt); err != nil {
		p.stats.SendErrors.Add(1)
	}
}

// Number implements stack.TransportProtocol.
func (*Protocol) Number() tcpip.TransportProtocolNumber { return ProtocolNumber }

// NewEndpoint implements stack.TransportProtocol.
func (p *Protocol) NewEndpoint(netProto tcpip.NetworkProtocolNumber, wq *waiter.Queue) (tcpip.Endpoint, tcpip.Error) {
	return newEndpoint(p, netProto, wq), nil
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
// A segment for a port with no TCB is answered with a RST (RFC 9293
// section 3.10.7.1).
func (p *Protocol) HandleUnknownDestinationPacket(id stack.TransportEndpointID, pkt *stack.PacketBuffer) stack.UnknownDestinationPacketDisposition {
	seg, ok := p.decode(id, pkt)
	if !ok {
		return stack.UnknownDestinationPacketHandled
	}
	defer seg.release()
	p.stats.NoListener.Add(1)
	if rst, ok := resetFor(&seg); ok {
		if r, err := p.stack.FindRoute(pkt.NICID, id.LocalAddress, id.RemoteAddress, pkt.NetworkProtocolNumber, false); err == nil {
			p.stats.SegmentsSent.Add(1)
			p.stats.ResetsSent.Add(1)
			p.write(r, buildSegment(r, &rst))
			r.Release()
		}
	}
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
