package tcpext_test

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/waiter"
)

const (
	syn    = header.TCPFlagSyn
	ack    = header.TCPFlagAck
	fin    = header.TCPFlagFin
	rst    = header.TCPFlagRst
	psh    = header.TCPFlagPsh
	synAck = syn | ack
	finAck = fin | ack
)

// The peer's MSS with a 1500-byte MTU: 1500 - 20 (IPv4) - 20 (TCP).
const wantMSS = 1460

func (d *dut) endpoint() (tcpip.Endpoint, *waiter.Queue) {
	d.t.Helper()
	var wq waiter.Queue
	ep, err := d.s.NewEndpoint(header.TCPProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		d.t.Fatalf("NewEndpoint: %v", err)
	}
	return ep, &wq
}

// listen opens a listener on port.
func (d *dut) listen(port uint16) tcpip.Endpoint {
	d.t.Helper()
	ep, _ := d.endpoint()
	if err := ep.Bind(tcpip.FullAddress{Port: port}); err != nil {
		d.t.Fatalf("Bind: %v", err)
	}
	if err := ep.Listen(8); err != nil {
		d.t.Fatalf("Listen: %v", err)
	}
	return ep
}

// accept runs a passive open on port from the peer's port 40000 with ISN
// peerISN and returns the accepted endpoint and the DUT's ISS.
func (d *dut) accept(port uint16, peerISN uint32) (tcpip.Endpoint, uint32) {
	d.t.Helper()
	l := d.listen(port)
	d.inject(seg{srcPort: 40000, dstPort: port, seq: peerISN, flags: syn, window: 65535, mss: wantMSS})
	sa := d.expect(synAck, anySeq, peerISN+1)
	if sa.Options.MSS != wantMSS {
		d.t.Fatalf("SYN,ACK MSS option = %d, want %d", sa.Options.MSS, wantMSS)
	}
	iss := uint32(sa.Seq)
	if got := d.state(port, 40000); got != "SYN-RECEIVED" {
		d.t.Fatalf("after SYN: state %q, want SYN-RECEIVED", got)
	}
	d.inject(seg{srcPort: 40000, dstPort: port, seq: peerISN + 1, ack: iss + 1, flags: ack, window: 65535})
	d.expectNone()
	if got := d.state(port, 40000); got != "ESTABLISHED" {
		d.t.Fatalf("after ACK: state %q, want ESTABLISHED", got)
	}
	c, _, err := l.Accept(nil)
	if err != nil {
		d.t.Fatalf("Accept: %v", err)
	}
	return c, iss
}

func read(t *testing.T, ep tcpip.Endpoint) ([]byte, tcpip.Error) {
	t.Helper()
	var b bytes.Buffer
	_, err := ep.Read(&b, tcpip.ReadOptions{})
	return b.Bytes(), err
}

func write(t *testing.T, ep tcpip.Endpoint, p []byte) {
	t.Helper()
	n, err := ep.Write(bytes.NewReader(p), tcpip.WriteOptions{})
	if err != nil || int(n) != len(p) {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(p))
	}
}

// Passive open, data both ways, then the peer closes first: CLOSE-WAIT and
// LAST-ACK on our side, each segment exact.
func TestPassiveOpenDataAndPassiveClose(t *testing.T) {
	d := newDUT(t, testOptions())
	const peerISN = 1000
	c, iss := d.accept(7, peerISN)

	d.inject(seg{srcPort: 40000, dstPort: 7, seq: peerISN + 1, ack: iss + 1, flags: ack | psh, window: 65535, payload: []byte("hello")})
	d.expect(ack, uint64(iss+1), peerISN+6)
	if got, err := read(t, c); err != nil || string(got) != "hello" {
		t.Fatalf("Read = %q, %v", got, err)
	}

	write(t, c, []byte("world"))
	s := d.expect(ack|psh, uint64(iss+1), peerISN+6)
	if string(s.Payload) != "world" {
		t.Fatalf("payload %q, want world", s.Payload)
	}
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: peerISN + 6, ack: iss + 6, flags: ack, window: 65535})

	// The peer's FIN takes one sequence number.
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: peerISN + 6, ack: iss + 6, flags: finAck, window: 65535})
	d.expect(ack, uint64(iss+6), peerISN+7)
	if got := d.state(7, 40000); got != "CLOSE-WAIT" {
		t.Fatalf("state %q, want CLOSE-WAIT", got)
	}
	if _, err := read(t, c); err == nil {
		t.Fatalf("Read after FIN succeeded, want EOF")
	} else if _, ok := err.(*tcpip.ErrClosedForReceive); !ok {
		t.Fatalf("Read after FIN: %v, want ErrClosedForReceive (EOF)", err)
	}
	// Half-close: CLOSE-WAIT still sends.
	write(t, c, []byte("late"))
	d.expect(ack|psh, uint64(iss+6), peerISN+7)
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: peerISN + 7, ack: iss + 10, flags: ack, window: 65535})

	c.Close()
	d.expect(finAck, uint64(iss+10), peerISN+7)
	if got := d.state(7, 40000); got != "LAST-ACK" {
		t.Fatalf("state %q, want LAST-ACK", got)
	}
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: peerISN + 7, ack: iss + 11, flags: ack, window: 65535})
	if got := d.state(7, 40000); got != "" {
		t.Fatalf("TCB still present in %s after the ACK of our FIN", got)
	}
	d.expectNone()
}

// connect runs an active open from the DUT to the peer's port 80 and
// returns the endpoint, the DUT's port and ISS.
func (d *dut) connect(peerISN uint32) (tcpip.Endpoint, uint16, uint32) {
	d.t.Helper()
	ep, _ := d.endpoint()
	if err := ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: 80}); err == nil {
		d.t.Fatalf("Connect returned nil, want ErrConnectStarted")
	} else if _, ok := err.(*tcpip.ErrConnectStarted); !ok {
		d.t.Fatalf("Connect: %v", err)
	}
	s := d.expect(syn, anySeq, 0)
	if s.Options.MSS != wantMSS || s.DstPort != 80 {
		d.t.Fatalf("SYN %s: MSS %d, want %d", describe(s), s.Options.MSS, wantMSS)
	}
	if s.SrcPort < 49152 {
		d.t.Fatalf("ephemeral port %d outside 49152-65535", s.SrcPort)
	}
	iss := uint32(s.Seq)
	if got := d.state(s.SrcPort, 80); got != "SYN-SENT" {
		d.t.Fatalf("state %q, want SYN-SENT", got)
	}
	d.inject(seg{srcPort: 80, dstPort: s.SrcPort, seq: peerISN, ack: iss + 1, flags: synAck, window: 65535, mss: 1400})
	d.expect(ack, uint64(iss+1), peerISN+1)
	if got := d.state(s.SrcPort, 80); got != "ESTABLISHED" {
		d.t.Fatalf("state %q, want ESTABLISHED", got)
	}
	return ep, s.SrcPort, iss
}

// Active open and active close through FIN-WAIT-1, FIN-WAIT-2 and
// TIME-WAIT, which lasts exactly 2*MSL and restarts on a retransmitted FIN.
func TestActiveOpenAndCloseThroughTimeWait(t *testing.T) {
	opts := testOptions()
	d := newDUT(t, opts)
	const peerISN = 5000
	ep, port, iss := d.connect(peerISN)

	// The peer announced MSS 1400: our segments respect it.
	write(t, ep, bytes.Repeat([]byte("x"), 3000))
	for _, want := range []int{1400, 1400, 200} {
		if s := d.next(); len(s.Payload) != want {
			t.Fatalf("segment of %d bytes, want %d", len(s.Payload), want)
		}
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 3001, flags: ack, window: 65535})

	ep.Close()
	d.expect(finAck, uint64(iss+3001), peerISN+1)
	if got := d.state(port, 80); got != "FIN-WAIT-1" {
		t.Fatalf("state %q, want FIN-WAIT-1", got)
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 3002, flags: ack, window: 65535})
	if got := d.state(port, 80); got != "FIN-WAIT-2" {
		t.Fatalf("state %q, want FIN-WAIT-2", got)
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 3002, flags: finAck, window: 65535})
	d.expect(ack, uint64(iss+3002), peerISN+2)
	if got := d.state(port, 80); got != "TIME-WAIT" {
		t.Fatalf("state %q, want TIME-WAIT", got)
	}

	twoMSL := 2 * opts.MSL
	d.clock.Advance(twoMSL / 2)
	// A retransmitted FIN is ACKed again and restarts the 2*MSL timer.
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 3002, flags: finAck, window: 65535})
	d.expect(ack, uint64(iss+3002), peerISN+2)
	// An RST is ignored in TIME-WAIT (RFC 1337).
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 2, flags: rst})
	d.expectNone()

	d.clock.Advance(twoMSL - time.Millisecond)
	if got := d.state(port, 80); got != "TIME-WAIT" {
		t.Fatalf("1ms before 2*MSL: state %q, want TIME-WAIT", got)
	}
	d.clock.Advance(time.Millisecond)
	if got := d.state(port, 80); got != "" {
		t.Fatalf("after 2*MSL: state %q, want the TCB gone", got)
	}
	d.expectNone()
}

// An application that half-closed and reads slowly still finds the
// peer's data and then end of file after TIME-WAIT has ended and the TCB
// is gone: a FIN received ends the stream for good, as on Linux, rather
// than turning into "not connected".
func TestReadAfterTimeWaitEndsInEOF(t *testing.T) {
	opts := testOptions()
	d := newDUT(t, opts)
	const peerISN = 6000
	ep, port, iss := d.connect(peerISN)

	if err := ep.Shutdown(tcpip.ShutdownWrite); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	d.expect(finAck, uint64(iss+1), peerISN+1)
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 2, flags: ack, window: 65535, payload: []byte("last words")})
	d.expect(ack, uint64(iss+2), peerISN+11)
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 11, ack: iss + 2, flags: finAck, window: 65535})
	d.expect(ack, uint64(iss+2), peerISN+12)
	d.clock.Advance(2 * opts.MSL)
	if got := d.state(port, 80); got != "" {
		t.Fatalf("after 2*MSL: state %q, want the TCB gone", got)
	}

	var buf bytes.Buffer
	if _, err := ep.Read(&buf, tcpip.ReadOptions{}); err != nil || buf.String() != "last words" {
		t.Fatalf("Read = %q, %v; want the peer's data", buf.String(), err)
	}
	for range 2 {
		if _, err := ep.Read(&buf, tcpip.ReadOptions{}); err == nil {
			t.Fatal("Read after the data succeeded, want ErrClosedForReceive (EOF)")
		} else if _, ok := err.(*tcpip.ErrClosedForReceive); !ok {
			t.Fatalf("Read after the data: %v, want ErrClosedForReceive (EOF)", err)
		}
	}
}

// Simultaneous close: both FINs cross, CLOSING, then TIME-WAIT.
func TestSimultaneousClose(t *testing.T) {
	d := newDUT(t, testOptions())
	const peerISN = 7000
	ep, port, iss := d.connect(peerISN)
	ep.Close()
	d.expect(finAck, uint64(iss+1), peerISN+1)
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 1, flags: finAck, window: 65535})
	d.expect(ack, uint64(iss+2), peerISN+2)
	if got := d.state(port, 80); got != "CLOSING" {
		t.Fatalf("state %q, want CLOSING", got)
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 2, ack: iss + 2, flags: ack, window: 65535})
	if got := d.state(port, 80); got != "TIME-WAIT" {
		t.Fatalf("state %q, want TIME-WAIT", got)
	}
}

// A segment to a port with no listener gets a RST whose numbers come from
// the offending segment (RFC 9293 section 3.10.7.1).
func TestResetForNoListener(t *testing.T) {
	d := newDUT(t, testOptions())
	d.inject(seg{srcPort: 40001, dstPort: 81, seq: 100, flags: syn, window: 1000})
	d.expect(rst|ack, 0, 101)
	d.inject(seg{srcPort: 40001, dstPort: 81, seq: 100, ack: 777, flags: ack, window: 1000, payload: []byte("x")})
	d.expect(rst, 777, 0)
	// A RST is never answered.
	d.inject(seg{srcPort: 40001, dstPort: 81, seq: 100, flags: rst})
	d.expectNone()
	if got := d.proto.Stats().NoListener; got != 3 {
		t.Fatalf("NoListener = %d, want 3", got)
	}
}

// The SYN is retransmitted on timeout with exponential backoff, and the
// connection is refused by a RST that acknowledges it. Until then the
// connecting endpoint is not writable: a waiter woken in SYN-SENT (gonet's
// Dial) would take the connection for made.
func TestSynRetransmissionAndRefusal(t *testing.T) {
	d := newDUT(t, testOptions())
	ep, wq := d.endpoint()
	we, ch := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	if err := ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: 80}); err == nil {
		t.Fatal("Connect returned nil")
	}
	first := d.expect(syn, anySeq, 0)
	d.clock.Advance(999 * time.Millisecond)
	d.expectNone()
	d.clock.Advance(time.Millisecond)
	d.expect(syn, uint64(first.Seq), 0)
	select {
	case <-ch:
		t.Fatal("connecting endpoint woken as writable in SYN-SENT")
	default:
	}
	d.clock.Advance(2*time.Second - time.Millisecond)
	d.expectNone()
	d.clock.Advance(time.Millisecond)
	d.expect(syn, uint64(first.Seq), 0)

	d.inject(seg{srcPort: 80, dstPort: first.SrcPort, ack: uint32(first.Seq) + 1, flags: rst | ack})
	select {
	case <-ch:
	default:
		t.Fatal("connecting endpoint was not woken by the RST")
	}
	if err := ep.LastError(); err == nil {
		t.Fatal("LastError = nil, want connection refused")
	} else if _, ok := err.(*tcpip.ErrConnectionRefused); !ok {
		t.Fatalf("LastError = %v, want ErrConnectionRefused", err)
	}
	if got := d.state(first.SrcPort, 80); got != "" {
		t.Fatalf("state %q after RST, want gone", got)
	}
}

// Data unacknowledged for an RTO is retransmitted from SND.UNA.
func TestDataRetransmissionOnTimeout(t *testing.T) {
	d := newDUT(t, testOptions())
	const peerISN = 9000
	ep, port, iss := d.connect(peerISN)
	write(t, ep, []byte("payload"))
	d.expect(ack|psh, uint64(iss+1), peerISN+1)
	// The handshake's RTT sample was 0 on the manual clock, so RTO is at
	// its 200 ms floor.
	if rto := d.proto.TCBs()[0].RTOms; rto != 200 {
		t.Fatalf("rto_ms = %d, want 200", rto)
	}
	d.clock.Advance(199 * time.Millisecond)
	d.expectNone()
	d.clock.Advance(time.Millisecond)
	s := d.expect(ack|psh, uint64(iss+1), peerISN+1)
	if string(s.Payload) != "payload" {
		t.Fatalf("retransmitted %q", s.Payload)
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 8, flags: ack, window: 65535})
	d.clock.Advance(10 * time.Second)
	d.expectNone()
	tcb := d.proto.TCBs()[0]
	if tcb.Counters.Retransmits != 1 || tcb.SndUna != iss+8 {
		t.Fatalf("retransmits=%d snd_una=%d, want 1 and %d", tcb.Counters.Retransmits, tcb.SndUna, iss+8)
	}
}

// A segment with a bad checksum is dropped and counted, without reply.
func TestBadChecksumDropped(t *testing.T) {
	d := newDUT(t, testOptions())
	d.listen(7)
	d.injectRaw(encodeSegment(seg{srcPort: 40000, dstPort: 7, seq: 1, flags: syn, window: 1000}), true)
	d.expectNone()
	if got := d.proto.Stats().ChecksumErrors; got != 1 {
		t.Fatalf("ChecksumErrors = %d, want 1", got)
	}
	if got := d.state(7, 40000); got != "" {
		t.Fatalf("a TCB in %s was created from a corrupt SYN", got)
	}
}

// Each probe of the ephemeral range advances it (RFC 6056 algorithm 3): a
// port skipped as busy must not make the next connect reuse the port the
// previous one just released, whose 4-tuple the peer still holds in
// TIME-WAIT.
func TestEphemeralPortsNotReusedAtOnce(t *testing.T) {
	d := newDUT(t, testOptions())
	after := func(p uint16, k int) uint16 { return uint16(49152 + (int(p)-49152+k)%16384) }
	connectAndAbort := func(isn uint32) uint16 {
		ep, port, _ := d.connect(isn)
		ep.Abort()
		d.next() // its RST
		return port
	}
	p0 := connectAndAbort(1000)
	busy, _ := d.endpoint()
	if err := busy.Bind(tcpip.FullAddress{Port: after(p0, 2)}); err != nil {
		t.Fatal(err)
	}
	if got := connectAndAbort(2000); got != after(p0, 1) {
		t.Fatalf("second connect on port %d, want %d", got, after(p0, 1))
	}
	p2 := connectAndAbort(3000)
	if p2 != after(p0, 3) {
		t.Fatalf("third connect on port %d, want %d (skipping the bound %d)", p2, after(p0, 3), after(p0, 2))
	}
	if p3 := connectAndAbort(4000); p3 == p2 {
		t.Fatalf("fourth connect reused port %d just released", p3)
	}
}
