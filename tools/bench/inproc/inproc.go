// Package inproc measures TCP implementations in one process: two stacks
// joined by an in-memory link, each direction carried by its own goroutine
// so that neither stack's transmit path runs the other's receive path.
// The same harness runs tcpext and gVisor's own TCP, so their numbers are
// comparable within one run.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/synfin/synfin/nic/impair"
	"github.com/synfin/synfin/tcpext"
)

// Implementations that can be measured.
const (
	TCPExt = "tcpext"
	GVisor = "gvisor"
)

var (
	serverAddr = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	clientAddr = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
)

// Pair is two stacks of one TCP implementation on an in-memory link.
type Pair struct {
	Server, Client *stack.Stack
	links          [2]*channel.Endpoint
	lines          [2]*impair.Line
	cancel         context.CancelFunc
	done           chan struct{}
}

// linkQueue is the depth of each direction's in-memory queue, in packets:
// more than the largest window either TCP opens (4 MiB, about 2900
// segments at MTU 1500), so the lossless rows measure how the stacks move
// data, not how they recover from a queue overflowing; the lossy rows
// measure that.
const linkQueue = 4096

// Options shape a Pair beyond its TCP implementation.
type Options struct {
	// MTU of the link.
	MTU uint32
	// CongestionControl names the algorithm of both stacks, in tcpext's
	// names (newreno, cubic); empty leaves each implementation's default.
	CongestionControl string
	// Impair, if set, impairs both directions of the link the same way
	// (the reverse direction with the seed one higher), on the real clock.
	Impair *impair.Config
	// NoRecorder turns tcpext's flight recorder off, to measure its cost.
	NoRecorder bool
	// AckEverySegment has tcpext acknowledge every segment at once
	// (delayed ACK off), as gVisor's TCP does by default: the lossy rows
	// then compare the two senders with alike receivers.
	AckEverySegment bool
	// ClientTap, if set, sees each packet the client stack sends, on the
	// goroutine that carries it, before the impairment; it must not keep
	// the packet.
	ClientTap func(*stack.PacketBuffer)
}

func transport(impl string, o Options) (stack.TransportProtocolFactory, error) {
	switch impl {
	case TCPExt:
		opts := tcpext.DefaultOptions()
		opts.DelayedACK = 40 * time.Millisecond // as the firmware runs it
		if o.CongestionControl != "" {
			opts.CongestionControl = o.CongestionControl
		}
		if o.AckEverySegment {
			opts.DelayedACK = 0
		}
		if o.NoRecorder {
			opts.RecorderEvents = -1
		}
		return tcpext.NewProtocolFactory(opts), nil
	case GVisor:
		return tcp.NewProtocol, nil
	}
	return nil, fmt.Errorf("inproc: unknown TCP %q", impl)
}

// gvisorCC maps tcpext's algorithm names to gVisor's.
var gvisorCC = map[string]tcpip.CongestionControlOption{"newreno": "reno", "cubic": "cubic"}

func newStack(impl string, opts Options, link *channel.Endpoint, addr tcpip.Address) (*stack.Stack, error) {
	tp, err := transport(impl, opts)
	if err != nil {
		return nil, err
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tp},
	})
	if impl == GVisor {
		// gVisor's TCP at its best: SACK on (its default is off), with
		// RACK loss detection (its default recovery).
		sack := tcpip.TCPSACKEnabled(true)
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
			return nil, fmt.Errorf("inproc: gVisor SACK: %s", err)
		}
		if opts.CongestionControl != "" {
			ccOpt, ok := gvisorCC[opts.CongestionControl]
			if !ok {
				return nil, fmt.Errorf("inproc: gVisor has no congestion control %q", opts.CongestionControl)
			}
			if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &ccOpt); err != nil {
				return nil, fmt.Errorf("inproc: gVisor congestion control %q: %s", ccOpt, err)
			}
		}
	}
	if err := s.CreateNIC(1, link); err != nil {
		return nil, fmt.Errorf("inproc: CreateNIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24}}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("inproc: AddProtocolAddress: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	return s, nil
}

// NewPair builds two stacks running impl on a link of the given MTU.
func NewPair(impl string, mtu uint32) (*Pair, error) {
	return NewPairWith(impl, Options{MTU: mtu})
}

// NewPairWith builds two stacks running impl as opts say.
func NewPairWith(impl string, opts Options) (*Pair, error) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pair{cancel: cancel, done: make(chan struct{})}
	p.links[0] = channel.New(linkQueue, opts.MTU, "")
	p.links[1] = channel.New(linkQueue, opts.MTU, "")
	var err error
	if p.Server, err = newStack(impl, opts, p.links[0], serverAddr); err != nil {
		cancel()
		return nil, err
	}
	if p.Client, err = newStack(impl, opts, p.links[1], clientAddr); err != nil {
		cancel()
		return nil, err
	}
	if opts.Impair != nil {
		clock := tcpip.NewStdClock()
		for i := range p.lines {
			cfg := *opts.Impair
			cfg.Seed += uint64(i)
			im, err := impair.New(cfg, clock)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("inproc: impairment: %w", err)
			}
			to := p.links[1-i]
			p.lines[i] = impair.NewLine(im, func(pkt *stack.PacketBuffer) { inject(to, pkt) })
		}
	}
	// Without impairment each direction is carried like a NIC driver
	// receives, in batches; tcpext acknowledges a batch at its end.
	var flush [2]func()
	if impl == TCPExt && opts.Impair == nil {
		flush[0] = tcpext.ProtocolOf(p.Client).BatchACKs(1)
		flush[1] = tcpext.ProtocolOf(p.Server).BatchACKs(1)
	}
	finished := make(chan struct{}, 2)
	for i := range p.links {
		from, line, to, flush := p.links[i], p.lines[i], p.links[1-i], flush[i]
		var tap func(*stack.PacketBuffer)
		if from == p.links[1] {
			tap = opts.ClientTap
		}
		go func() {
			forward(ctx, from, line, to, flush, tap)
			finished <- struct{}{}
		}()
	}
	go func() {
		<-finished
		<-finished
		close(p.done)
	}()
	return p, nil
}

// rxBudget is how many packets forward delivers in one batch, as a NIC
// driver's poll budget (Linux's NAPI weight is 64).
const rxBudget = 64

// forward carries packets from one link to the other, through line if
// there is one, until ctx ends. It delivers what is queued in batches of
// up to rxBudget packets and calls flush, if set, after each; tap, if set,
// sees each packet first.
func forward(ctx context.Context, from *channel.Endpoint, line *impair.Line, to *channel.Endpoint, flush func(), tap func(*stack.PacketBuffer)) {
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		for n := 1; pkt != nil; n++ {
			if tap != nil {
				tap(pkt)
			}
			if line != nil {
				line.Send(pkt)
			} else {
				inject(to, pkt)
			}
			pkt.DecRef()
			if n == rxBudget {
				break
			}
			pkt = from.Read()
		}
		if flush != nil {
			flush()
		}
	}
}

// inject delivers a copy of pkt to the stack behind to.
func inject(to *channel.Endpoint, pkt *stack.PacketBuffer) {
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
	to.InjectInbound(ipv4.ProtocolNumber, in)
	in.DecRef()
}

// Close tears both stacks down.
func (p *Pair) Close() {
	p.cancel()
	<-p.done
	for _, l := range p.lines {
		if l != nil {
			l.Close()
		}
	}
	for _, s := range []*stack.Stack{p.Server, p.Client} {
		s.Close()
		s.Wait()
	}
}

// Listen listens on the server stack.
func (p *Pair) Listen(port uint16) (net.Listener, error) {
	return gonet.ListenTCP(p.Server, tcpip.FullAddress{Port: port}, ipv4.ProtocolNumber)
}

// Dial connects from the client stack to the server's port.
func (p *Pair) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, p.Client, tcpip.FullAddress{Addr: serverAddr, Port: port}, ipv4.ProtocolNumber)
}

// Bulk sends total bytes from client to server in chunks of chunk bytes
// and returns once the server has read them all.
func (p *Pair) Bulk(total, chunk int) error {
	ln, err := p.Listen(5001)
	if err != nil {
		return err
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		if err == nil && n != int64(total) {
			err = fmt.Errorf("inproc: server read %d bytes, want %d", n, total)
		}
		got <- err
	}()
	c, err := p.Dial(context.Background(), 5001)
	if err != nil {
		return err
	}
	buf := make([]byte, chunk)
	for sent := 0; sent < total; sent += chunk {
		if _, err := c.Write(buf[:min(chunk, total-sent)]); err != nil {
			c.Close()
			return err
		}
	}
	c.Close()
	return <-got
}

// Echo1 runs n connections one after the other, each opening, sending one
// byte each way and closing, as in a connections-per-second test.
func (p *Pair) Echo1(n int) error {
	ln, err := p.Listen(5002)
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				if _, err := io.ReadFull(c, b); err == nil {
					c.Write(b)
				}
			}()
		}
	}()
	b := make([]byte, 1)
	for i := 0; i < n; i++ {
		c, err := p.Dial(context.Background(), 5002)
		if err != nil {
			return err
		}
		if _, err := c.Write(b); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// FetchStall is how long a short transfer may take before Fetch abandons
// it and counts it at that.
const FetchStall = 5 * time.Second

// Fetch runs n short transfers one after the other, each on a connection
// of its own over which the server sends size bytes and closes, as a web
// client fetching small objects. It returns how long each took, from the
// server's accept to the client's end of file: a lost SYN, SYN,ACK or
// third ACK costs any TCP that keeps RFC 6298's initial one-second timeout
// the same second, and is left out. A transfer not done after FetchStall
// is abandoned, counted as FetchStall, and reported in stalled.
func (p *Pair) Fetch(n, size int) (took []time.Duration, stalled int, err error) {
	ln, err := p.Listen(5004)
	if err != nil {
		return nil, 0, err
	}
	defer ln.Close()
	accepted := make(chan time.Time, 1)
	go func() {
		body := make([]byte, size)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- time.Now()
			go func() {
				defer c.Close()
				c.Write(body)
			}()
		}
	}()
	for range n {
		c, err := p.Dial(context.Background(), 5004)
		if err != nil {
			return nil, 0, err
		}
		var start time.Time
		select {
		case start = <-accepted:
		case <-time.After(10 * time.Second):
			return nil, 0, fmt.Errorf("inproc: the server never accepted transfer %d", len(took))
		}
		c.SetReadDeadline(start.Add(FetchStall))
		got, err := io.Copy(io.Discard, c)
		c.Close()
		var timeout net.Error
		switch {
		case errors.As(err, &timeout) && timeout.Timeout():
			stalled++
			took = append(took, FetchStall)
		case err != nil:
			return nil, 0, err
		case got != int64(size):
			return nil, 0, fmt.Errorf("inproc: fetched %d bytes, want %d", got, size)
		default:
			took = append(took, time.Since(start))
		}
	}
	return took, stalled, nil
}

// IdleMemory opens n connections, leaves them idle and returns the heap
// bytes they hold per connection (both ends, both stacks). It measures the
// heap after n/2 connections and after n, and takes the slope: what the
// first connections bring along (a listener, pools warming up, garbage of
// earlier work still being freed) falls out.
func (p *Pair) IdleMemory(n int) (float64, error) {
	ln, err := p.Listen(5003)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, n)
	go func() {
		for i := 0; i < n; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	conns := make([]net.Conn, 0, 2*n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func(k int) error {
		for i := 0; i < k; i++ {
			c, err := p.Dial(context.Background(), 5003)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		for i := 0; i < k; i++ {
			select {
			case c := <-accepted:
				conns = append(conns, c)
			case <-time.After(30 * time.Second):
				return fmt.Errorf("inproc: %d of %d connections accepted", i, k)
			}
		}
		return nil
	}
	half := n / 2
	if err := open(half); err != nil {
		return 0, err
	}
	mid := heap()
	if err := open(n - half); err != nil {
		return 0, err
	}
	// Signed, in case the heap shrank meanwhile.
	return float64(int64(heap())-int64(mid)) / float64(n-half), nil
}

// heap is the live heap once it has settled: stacks closed just before
// (gVisor's TCP ends its goroutines in the background) go on freeing
// memory for a while, which would be taken off the connections measured.
func heap() uint64 {
	var last uint64
	for range 20 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if last != 0 && m.HeapAlloc <= last && last-m.HeapAlloc < last/1000 {
			return m.HeapAlloc
		}
		last = m.HeapAlloc
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// LossyLink is the impaired link of the loss benchmark: 1 % loss each
// way, 5 ms each way (a 10 ms RTT), 100 Mbit/s with a 100-packet queue.
func LossyLink() *impair.Config {
	return &impair.Config{Seed: 1, Loss: 0.01, Delay: 5 * time.Millisecond, Rate: 100_000_000 / 8, QueueLimit: 100}
}

// Settle lets the stacks of an earlier run finish closing (gVisor's TCP
// ends its goroutines in the background) and collects their garbage, so
// that a measurement that follows is not charged for them. CPU time is
// the whole process's.
func Settle() {
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
}

// CPUTime is the CPU time, user and system, the process has used so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
