// Package inproc measures TCP implementations in one process: two stacks
// joined by an in-memory link, each direction carried by its own goroutine
// so that neither stack's transmit path runs the other's receive path.
// The same harness runs tcpext and gVisor's own TCP, so their numbers are
// comparable within one run.
package inproc

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

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
	cancel         context.CancelFunc
	done           chan struct{}
}

func transport(impl string) (stack.TransportProtocolFactory, error) {
	switch impl {
	case TCPExt:
		opts := tcpext.DefaultOptions()
		opts.DelayedACK = 40 * time.Millisecond // as the firmware runs it
		return tcpext.NewProtocolFactory(opts), nil
	case GVisor:
		return tcp.NewProtocol, nil
	}
	return nil, fmt.Errorf("inproc: unknown TCP %q", impl)
}

func newStack(impl string, link *channel.Endpoint, addr tcpip.Address) (*stack.Stack, error) {
	tp, err := transport(impl)
	if err != nil {
		return nil, err
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tp},
	})
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
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pair{cancel: cancel, done: make(chan struct{})}
	p.links[0] = channel.New(1024, mtu, "")
	p.links[1] = channel.New(1024, mtu, "")
	var err error
	if p.Server, err = newStack(impl, p.links[0], serverAddr); err != nil {
		cancel()
		return nil, err
	}
	if p.Client, err = newStack(impl, p.links[1], clientAddr); err != nil {
		cancel()
		return nil, err
	}
	finished := make(chan struct{}, 2)
	for i := range p.links {
		from, to := p.links[i], p.links[1-i]
		go func() {
			forward(ctx, from, to)
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

// forward carries packets from one link to the other until ctx ends.
func forward(ctx context.Context, from, to *channel.Endpoint) {
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
		pkt.DecRef()
		to.InjectInbound(ipv4.ProtocolNumber, in)
		in.DecRef()
	}
}

// Close tears both stacks down.
func (p *Pair) Close() {
	p.cancel()
	<-p.done
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

// IdleMemory opens n connections, leaves them idle and returns the heap
// bytes they hold per connection (both ends, both stacks).
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
	before := heap()
	conns := make([]net.Conn, 0, 2*n)
	for i := 0; i < n; i++ {
		c, err := p.Dial(context.Background(), 5003)
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
	}
	for i := 0; i < n; i++ {
		select {
		case c := <-accepted:
			conns = append(conns, c)
		case <-time.After(30 * time.Second):
			return 0, fmt.Errorf("inproc: %d of %d connections accepted", i, n)
		}
	}
	per := float64(heap()-before) / float64(n)
	for _, c := range conns {
		c.Close()
	}
	return per, nil
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
