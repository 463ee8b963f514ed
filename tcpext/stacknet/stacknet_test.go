package stacknet

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	// The adapter is transport-neutral: every test runs over tcpext and
	// over gVisor's own TCP (allowed in tests only) as a reference.
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/synfin/synfin/tcpext"
)

var (
	loopAddr = tcpip.AddrFrom4([4]byte{127, 0, 0, 1})
	// silentAddr is on a link nobody reads: SYNs to it go unanswered.
	silentAddr = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	silentOwn  = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
)

// transports are the TCPs the adapter is tested over.
var transports = []struct {
	name    string
	factory func() stack.TransportProtocolFactory
}{
	{"tcpext", func() stack.TransportProtocolFactory { return tcpext.NewProtocolFactory(tcpext.DefaultOptions()) }},
	{"gvisor", func() stack.TransportProtocolFactory { return tcp.NewProtocol }},
}

// forEachTransport runs f as a subtest over each TCP, on a stack from
// newStack.
func forEachTransport(t *testing.T, f func(t *testing.T, s *stack.Stack, silent *channel.Endpoint)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s, silent := newStack(t, tr.factory(), nil)
			f(t, s, silent)
		})
	}
}

// newStack builds a stack with loopback (127.0.0.1/8) as NIC 1 and a
// silent link (198.18.0.2/24) as NIC 2, whose frames the test reads and
// nothing answers. A nil clock is the real one.
func newStack(t *testing.T, transport stack.TransportProtocolFactory, clock tcpip.Clock) (*stack.Stack, *channel.Endpoint) {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{transport},
		Clock:              clock,
	})
	silent := channel.New(64, 1500, "")
	t.Cleanup(func() {
		s.Close()
		silent.Close()
		s.Wait()
	})
	var routes []tcpip.Route
	for _, n := range []struct {
		id   tcpip.NICID
		ep   stack.LinkEndpoint
		addr tcpip.AddressWithPrefix
	}{
		{1, loopback.New(), tcpip.AddressWithPrefix{Address: loopAddr, PrefixLen: 8}},
		{2, silent, tcpip.AddressWithPrefix{Address: silentOwn, PrefixLen: 24}},
	} {
		if err := s.CreateNIC(n.id, n.ep); err != nil {
			t.Fatalf("CreateNIC %d: %s", n.id, err)
		}
		pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: n.addr}
		if err := s.AddProtocolAddress(n.id, pa, stack.AddressProperties{}); err != nil {
			t.Fatalf("AddProtocolAddress %s: %s", n.addr, err)
		}
		routes = append(routes, tcpip.Route{Destination: n.addr.Subnet(), NIC: n.id})
	}
	s.SetRouteTable(routes)
	return s, silent
}

func listen(t *testing.T, s *stack.Stack) *Listener {
	t.Helper()
	ln, err := ListenTCP(s, tcpip.FullAddress{}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func port(a net.Addr) uint16 { return uint16(a.(*net.TCPAddr).Port) }

// pair returns both ends of one connection, dialed from local (which may
// be zero) to ln.
func pair(s *stack.Stack, ln *Listener, local tcpip.FullAddress) (server, client *Conn, err error) {
	accepted := make(chan net.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
	}()
	client, err = DialTCP(context.Background(), s, local, tcpip.FullAddress{Addr: loopAddr, Port: port(ln.Addr())})
	if err != nil {
		return nil, nil, err
	}
	select {
	case c := <-accepted:
		return c.(*Conn), client, nil
	case err = <-acceptErr:
		client.Close()
		return nil, nil, err
	}
}

func mustPair(t *testing.T, s *stack.Stack) (server, client *Conn) {
	t.Helper()
	server, client, err := pair(s, listen(t, s), tcpip.FullAddress{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Close()
		client.Close()
	})
	return server, client
}

func TestConnConformance(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, _ *channel.Endpoint) {
		ln := listen(t, s)
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
			server, client, err := pair(s, ln, tcpip.FullAddress{})
			if err != nil {
				return nil, nil, nil, err
			}
			return server, client, func() { server.Close(); client.Close() }, nil
		})
	})
}

func TestDialFromBoundPort(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, _ *channel.Endpoint) {
		ln := listen(t, s)
		const local = 40001
		server, client, err := pair(s, ln, tcpip.FullAddress{Port: local})
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		defer client.Close()
		if got := port(client.LocalAddr()); got != local {
			t.Errorf("client's local port %d, want %d", got, local)
		}
		if got := port(server.RemoteAddr()); got != local {
			t.Errorf("server sees remote port %d, want %d", got, local)
		}
		if got, want := client.RemoteAddr().String(), server.LocalAddr().String(); got != want {
			t.Errorf("client's remote %s, server's local %s", got, want)
		}

		// The port is taken while the connection lives.
		_, err = DialTCP(context.Background(), s, tcpip.FullAddress{Port: port(ln.Addr())}, tcpip.FullAddress{Addr: loopAddr, Port: local})
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("dial from the listener's port = %v, want EADDRINUSE", err)
		}
	})
}

func TestDialRefused(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, _ *channel.Endpoint) {
		// A port that nothing listens on: bind one, note it, free it.
		ln := listen(t, s)
		closed := port(ln.Addr())
		ln.Close()

		_, err := DialTCP(context.Background(), s, tcpip.FullAddress{}, tcpip.FullAddress{Addr: loopAddr, Port: closed})
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("DialTCP to a closed port = %v, want ECONNREFUSED", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "dial" || port(oe.Addr) != closed {
			t.Fatalf("DialTCP error %#v is not a dial OpError naming port %d", err, closed)
		}
	})
}

func TestDialCanceled(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, silent *channel.Endpoint) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := DialTCP(ctx, s, tcpip.FullAddress{}, tcpip.FullAddress{Addr: silentAddr, Port: 80})
			done <- err
		}()
		// Once the SYN is on the link the dial is under way.
		if pkt := silent.ReadContext(ctx); pkt != nil {
			pkt.DecRef()
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("DialTCP after cancel = %v, want context.Canceled", err)
		}
	})
}

func TestDialTimesOut(t *testing.T) {
	clock := faketime.NewManualClock()
	s, silent := newStack(t, tcpext.NewProtocolFactory(tcpext.DefaultOptions()), clock)
	done := make(chan error, 1)
	go func() {
		_, err := DialTCP(context.Background(), s, tcpip.FullAddress{}, tcpip.FullAddress{Addr: silentAddr, Port: 80})
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pkt := silent.ReadContext(ctx)
	if pkt == nil {
		t.Fatal("no SYN on the link")
	}
	pkt.DecRef()
	// Nothing answers. Moving the clock past each retransmission timer
	// lets out one more SYN, until tcpext gives up. The dialing goroutine
	// may arm its first timer only after the test saw the SYN (slowly,
	// under qemu-user), so the clock moves on until DialTCP returns
	// rather than until a step finds no SYN.
	syns := 1
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if !errors.Is(err, syscall.ETIMEDOUT) {
				t.Fatalf("DialTCP to a silent peer = %v, want ETIMEDOUT", err)
			}
			waiting = false
		case <-ctx.Done():
			t.Fatalf("DialTCP has not returned after %d SYNs", syns)
		default:
			clock.Advance(2 * time.Minute)
			for pkt := silent.Read(); pkt != nil; pkt = silent.Read() {
				syns++
				pkt.DecRef()
			}
			if syns > 20 {
				t.Fatal("still sending SYNs after 20")
			}
			runtime.Gosched()
		}
	}
	if syns < 2 {
		t.Fatalf("%d SYN before the timeout, want retransmissions", syns)
	}
	clock.Advance(time.Hour)
	if pkt := silent.Read(); pkt != nil {
		pkt.DecRef()
		t.Fatal("a SYN after DialTCP returned")
	}
	if tcbs := tcpext.ProtocolOf(s).TCBs(); len(tcbs) != 0 {
		t.Fatalf("TCBs left after the timeout: %+v", tcbs)
	}
}

func TestReadEOFThenWriteBack(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, _ *channel.Endpoint) {
		server, client := mustPair(t, s)
		if _, err := client.Write([]byte("bye")); err != nil {
			t.Fatal(err)
		}
		if err := client.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(server)
		if err != nil || string(got) != "bye" {
			t.Fatalf("server ReadAll = %q, %v; want \"bye\", nil", got, err)
		}
		// Half-closed: the other direction still works.
		if _, err := server.Write([]byte("ok")); err != nil {
			t.Fatalf("server Write after the client's FIN: %v", err)
		}
		server.Close()
		got, err = io.ReadAll(client)
		if err != nil || string(got) != "ok" {
			t.Fatalf("client ReadAll = %q, %v; want \"ok\", nil", got, err)
		}
		if _, err := client.Write([]byte("more")); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("Write after CloseWrite = %v, want EPIPE", err)
		}
	})
}

func TestLingerZeroResets(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, _ *channel.Endpoint) {
		server, client := mustPair(t, s)
		if err := client.SetLinger(0); err != nil {
			t.Fatal(err)
		}
		client.Close()
		_, err := server.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) {
			t.Fatalf("Read after the peer's abortive close = %v, want ECONNRESET", err)
		}
		// Like Linux, a TCP may report the reset once and EPIPE after.
		if _, err := server.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("Write after the peer's abortive close = %v, want ECONNRESET or EPIPE", err)
		}
		if err := client.SetLinger(5); err == nil {
			t.Fatal("SetLinger(5) accepted; Close cannot wait")
		}
	})
}

func TestKeepAliveProbes(t *testing.T) {
	clock := faketime.NewManualClock()
	opts := tcpext.DefaultOptions()
	opts.Keepalive = tcpext.KeepaliveOptions{Idle: time.Minute, Interval: time.Second, Count: 3}
	s, _ := newStack(t, tcpext.NewProtocolFactory(opts), clock)
	server, client := mustPair(t, s)
	if err := server.SetKeepAlive(true); err != nil {
		t.Fatal(err)
	}
	probes := func() uint64 {
		for _, tcb := range tcpext.ProtocolOf(s).TCBs() {
			if tcb.Local == server.LocalAddr().String() && tcb.Remote == server.RemoteAddr().String() {
				return tcb.Counters.KeepaliveProbes
			}
		}
		t.Fatal("the server's TCB is gone")
		return 0
	}
	clock.Advance(opts.Keepalive.Idle)
	if n := probes(); n != 1 {
		t.Fatalf("%d keepalive probes after the idle time, want 1", n)
	}
	// The peer answered the probe: the connection is fine and idles again.
	clock.Advance(opts.Keepalive.Idle / 2)
	if n := probes(); n != 1 {
		t.Fatalf("%d keepalive probes half an idle time after an answered probe, want 1", n)
	}
	if _, err := client.Write([]byte("alive")); err != nil {
		t.Fatal(err)
	}
	if err := server.SetKeepAlive(false); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * opts.Keepalive.Idle)
	if n := probes(); n != 1 {
		t.Fatalf("%d keepalive probes with keepalive off, want still 1", n)
	}
}

func TestAcceptUnblockedByClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, _ *channel.Endpoint) {
		ln := listen(t, s)
		done := make(chan error)
		go func() {
			_, err := ln.Accept()
			done <- err
		}()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
		}
		if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close = %v, want net.ErrClosed", err)
		}
	})
}

func TestReadDeadlineMovedWhileBlocked(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, _ *channel.Endpoint) {
		server, _ := mustPair(t, s)
		server.SetReadDeadline(time.Now().Add(time.Hour))
		done := make(chan error)
		go func() {
			_, err := server.Read(make([]byte, 1))
			done <- err
		}()
		time.Sleep(10 * time.Millisecond)
		server.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read = %v, want deadline exceeded", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read did not notice the earlier deadline")
		}
	})
}

func TestListenPortInUse(t *testing.T) {
	forEachTransport(t, func(t *testing.T, s *stack.Stack, _ *channel.Endpoint) {
		ln := listen(t, s)
		_, err := ListenTCP(s, tcpip.FullAddress{Port: port(ln.Addr())}, ipv4.ProtocolNumber)
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("second listener on the same port = %v, want EADDRINUSE", err)
		}
	})
}
