package tcpext_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/synfin/synfin/tcpext"
)

// wireSeg is one segment seen crossing the wire between the stacks.
type wireSeg struct {
	fromDUT bool
	seg     tcpext.Segment
	n       int // payload length
}

// wire joins a tcpext stack and a gVisor-TCP stack by their channel links
// and records every segment. gVisor's TCP processes segments on its own
// goroutines, so the pump moves packets until both directions are quiet.
// All timers run on the shared manual clock. While the wire is quiet the
// pump advances it by a millisecond at a time, so that timer-driven
// recovery (RTO, delayed ACKs, gVisor's RACK) happens as on a real link;
// freeze stops that for tests that measure timers exactly.
type wire struct {
	t        *testing.T
	clock    *faketime.ManualClock
	dut, ref *stack.Stack
	dutLink  *channel.Endpoint
	refLink  *channel.Endpoint

	mu     sync.Mutex
	log    []wireSeg
	frozen bool

	stop chan struct{}
	done chan struct{}
}

func newWire(t *testing.T, opts tcpext.Options) *wire {
	clock := faketime.NewManualClock()
	w := &wire{t: t, clock: clock, stop: make(chan struct{}), done: make(chan struct{})}
	w.dut, w.dutLink = newTestStack(t, clock, dutAddr, tcpext.NewProtocolFactory(opts))
	w.ref, w.refLink = newTestStack(t, clock, peerAddr, tcp.NewProtocol)
	// gVisor's RACK judges loss by elapsed time, and on a manual clock that
	// only moves while the wire is idle its reordering window is zero: every
	// reordering of gVisor's own concurrent transmissions would look like a
	// loss. Classic SACK recovery stays on.
	noRACK := tcpip.TCPRecovery(0)
	if err := w.ref.SetTransportProtocolOption(tcp.ProtocolNumber, &noRACK); err != nil {
		t.Fatalf("disabling RACK: %v", err)
	}
	go w.pump()
	t.Cleanup(func() {
		close(w.stop)
		<-w.done
	})
	return w
}

func (w *wire) pump() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		moved := w.move(w.dutLink, w.refLink, true)
		moved = w.move(w.refLink, w.dutLink, false) || moved
		if !moved {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			pkt := w.refLink.ReadContext(ctx)
			cancel()
			if pkt != nil {
				w.forward(pkt, w.dutLink, false)
			} else if !w.isFrozen() {
				w.clock.Advance(time.Millisecond)
			}
		}
	}
}

// freeze stops the pump from advancing the clock.
func (w *wire) freeze() {
	w.mu.Lock()
	w.frozen = true
	w.mu.Unlock()
}

func (w *wire) isFrozen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.frozen
}

func (w *wire) move(from, to *channel.Endpoint, fromDUT bool) bool {
	moved := false
	for pkt := from.Read(); pkt != nil; pkt = from.Read() {
		w.forward(pkt, to, fromDUT)
		moved = true
	}
	return moved
}

func (w *wire) forward(pkt *stack.PacketBuffer, to *channel.Endpoint, fromDUT bool) {
	b := append([]byte(nil), pkt.ToView().AsSlice()...)
	pkt.DecRef()
	ip := header.IPv4(b)
	if ip.IsValid(len(b)) && ip.TransportProtocol() == header.TCPProtocolNumber {
		if s, err := tcpext.ParseSegment(b[ip.HeaderLength():ip.TotalLength()]); err == nil {
			n := len(s.Payload)
			s.Payload = nil
			w.mu.Lock()
			w.log = append(w.log, wireSeg{fromDUT, s, n})
			w.mu.Unlock()
		}
	}
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	to.InjectInbound(ipv4.ProtocolNumber, in)
	in.DecRef()
}

// segments returns the recorded segments that carry any of flags.
func (w *wire) segments(flags header.TCPFlags) []wireSeg {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []wireSeg
	for _, s := range w.log {
		if s.seg.Flags&flags != 0 {
			out = append(out, s)
		}
	}
	return out
}

func (w *wire) resetLog() {
	w.mu.Lock()
	w.log = nil
	w.mu.Unlock()
}

// waitState waits (bounded) until the DUT's only TCB matching remote port
// is in state, since the gVisor side answers asynchronously.
func (w *wire) waitState(local uint16, want string) {
	w.t.Helper()
	p := tcpext.ProtocolOf(w.dut)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := ""
		for _, tcb := range p.TCBs() {
			if hasPort(tcb.Local, local) && tcb.Remote != "*:*" {
				got = tcb.State
			}
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("TCB on port %d: state %q, want %q", local, got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRefClosed waits (bounded) until the gVisor stack holds no TCP
// endpoint but listeners.
func (w *wire) waitRefClosed() {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		open := connections(w.ref)
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("gVisor side still has %d connections", open)
		}
		time.Sleep(time.Millisecond)
	}
}

// connections counts the connected TCP endpoints of a gVisor-TCP stack.
func connections(s *stack.Stack) int {
	n := 0
	for _, ep := range s.RegisteredEndpoints() {
		if e, ok := ep.(tcpip.Endpoint); ok {
			if _, err := e.GetRemoteAddress(); err == nil {
				n++
			}
		}
	}
	return n
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// transfer sends 1 MiB each way over c (on one stack) and o (the other)
// and checks it byte for byte.
func transfer(t *testing.T, c, o net.Conn) {
	t.Helper()
	const size = 1 << 20
	a, b := randomBytes(t, size), randomBytes(t, size)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	send := func(conn net.Conn, p []byte) {
		defer wg.Done()
		if _, err := conn.Write(p); err != nil {
			errs <- err
		}
	}
	recv := func(conn net.Conn, want []byte) {
		defer wg.Done()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(conn, got); err != nil {
			errs <- err
			return
		}
		if !bytes.Equal(got, want) {
			errs <- io.ErrUnexpectedEOF
		}
	}
	wg.Add(4)
	go send(c, a)
	go recv(o, a)
	go send(o, b)
	go recv(c, b)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("transfer: %v", err)
	}
}

func checkHandshake(t *testing.T, w *wire, activeDUT bool) {
	t.Helper()
	hs := w.segments(header.TCPFlagSyn)
	if len(hs) != 2 {
		t.Fatalf("%d SYN segments on the wire, want 2", len(hs))
	}
	s1, s2 := hs[0], hs[1]
	if s1.fromDUT != activeDUT || s1.seg.Flags != header.TCPFlagSyn || s2.seg.Flags != header.TCPFlagSyn|header.TCPFlagAck {
		t.Fatalf("handshake %+v then %+v", s1, s2)
	}
	if s2.seg.Ack != s1.seg.Seq+1 {
		t.Fatalf("SYN,ACK acks %d, want %d: the SYN takes one sequence number", s2.seg.Ack, s1.seg.Seq+1)
	}
	dutSyn := s1
	if !activeDUT {
		dutSyn = s2
	}
	if dutSyn.seg.Options.MSS != wantMSS {
		t.Fatalf("DUT's SYN announces MSS %d, want %d", dutSyn.seg.Options.MSS, wantMSS)
	}
	// The third segment of the handshake: the active side's ACK of the SYN,ACK.
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.log {
		if s.fromDUT == activeDUT && s.seg.Flags&header.TCPFlagSyn == 0 {
			if s.seg.Flags&header.TCPFlagAck == 0 || s.seg.Ack != s2.seg.Seq+1 || s.seg.Seq != s1.seg.Seq+1 {
				t.Fatalf("third segment %s, want ACK seq=%d ack=%d", describe(s.seg), s1.seg.Seq+1, s2.seg.Seq+1)
			}
			return
		}
	}
	t.Fatal("no third segment of the handshake")
}

// checkClose asserts the four-way close: FIN from the closer, the other
// side's FIN, each acknowledged as taking one sequence number.
func checkClose(t *testing.T, w *wire, dutFirst bool) {
	t.Helper()
	fins := w.segments(header.TCPFlagFin)
	if len(fins) != 2 {
		t.Fatalf("%d FIN segments, want 2", len(fins))
	}
	if fins[0].fromDUT != dutFirst || fins[1].fromDUT == dutFirst {
		t.Fatalf("FIN order: first from DUT=%v, want %v", fins[0].fromDUT, dutFirst)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range fins {
		acked := false
		for _, s := range w.log {
			if s.fromDUT != f.fromDUT && s.seg.Flags&header.TCPFlagAck != 0 && s.seg.Ack == f.seg.Seq+1 {
				acked = true
			}
		}
		if !acked {
			t.Fatalf("FIN %s never acknowledged as seq+1", describe(f.seg))
		}
	}
}

// connect listens on port of the server stack (whose address is addr),
// dials it from the client stack through gonet and returns both ends.
func (w *wire) connect(srv, cli *stack.Stack, addr tcpip.Address, port uint16) (server, client net.Conn) {
	w.t.Helper()
	ln, err := gonet.ListenTCP(srv, tcpip.FullAddress{Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			w.t.Error(err)
		}
		accepted <- c
	}()
	client, err = gonet.DialContextTCP(context.Background(), cli, tcpip.FullAddress{Addr: addr, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		w.t.Fatal(err)
	}
	return <-accepted, client
}

// A tcpext server and a gVisor-TCP client: handshake, 1 MiB each way,
// the DUT closes first and holds TIME-WAIT for exactly 2*MSL.
func TestInteropGVisorClientDUTClosesFirst(t *testing.T) {
	opts := testOptions()
	w := newWire(t, opts)
	server, client := w.connect(w.dut, w.ref, dutAddr, 7)
	checkHandshake(t, w, false)
	transfer(t, server, client)

	w.resetLog()
	w.freeze()
	server.Close()
	buf := make([]byte, 1)
	if _, err := client.Read(buf); err != io.EOF {
		t.Fatalf("client read after server close: %v, want EOF", err)
	}
	client.Close()
	w.waitState(7, "TIME-WAIT")
	// The peer must have seen our last ACK, or its own retransmission
	// timer, on the same manual clock, would resend its FIN and rightly
	// restart our TIME-WAIT.
	w.waitRefClosed()
	checkClose(t, w, true)

	p := tcpext.ProtocolOf(w.dut)
	w.clock.Advance(2*opts.MSL - time.Millisecond)
	if n := len(p.TCBs()); n != 2 { // the listener and the TIME-WAIT TCB
		t.Fatalf("%d TCBs 1ms before 2*MSL, want 2", n)
	}
	w.clock.Advance(time.Millisecond)
	for _, tcb := range p.TCBs() {
		if tcb.State != "LISTEN" {
			t.Fatalf("after 2*MSL a TCB is still in %s", tcb.State)
		}
	}
}

// A tcpext client and a gVisor-TCP server: the peer closes first, the DUT
// passes CLOSE-WAIT and LAST-ACK and leaves no TIME-WAIT behind.
func TestInteropGVisorServerPeerClosesFirst(t *testing.T) {
	w := newWire(t, testOptions())
	server, client := w.connect(w.ref, w.dut, peerAddr, 80)
	checkHandshake(t, w, true)
	transfer(t, client, server)

	local := uint16(client.LocalAddr().(*net.TCPAddr).Port)
	w.resetLog()
	server.Close()
	buf := make([]byte, 1)
	if _, err := client.Read(buf); err != io.EOF {
		t.Fatalf("read after peer close: %v, want EOF", err)
	}
	w.waitState(local, "CLOSE-WAIT")
	client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(tcpext.ProtocolOf(w.dut).TCBs()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("TCBs left after LAST-ACK: %+v", tcpext.ProtocolOf(w.dut).TCBs())
		}
		time.Sleep(time.Millisecond)
	}
	checkClose(t, w, false)
}
