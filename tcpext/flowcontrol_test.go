package tcpext_test

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/synfin/synfin/tcpext"
)

// Zero-window probing (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17): with data
// waiting behind a closed window, the first probe goes one RTO after the
// window closed on it, and each further probe waits twice as long, whether
// or not the peer answers with the window still closed; the window opening
// resumes sending at once.
func TestZeroWindowProbeBackoff(t *testing.T) {
	d := newDUT(t, testOptions())
	const peerISN = 7000
	ep, port, iss := d.connect(peerISN)
	write(t, ep, []byte("0123456789"))
	d.expect(ack|psh, uint64(iss+1), peerISN+1)
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 11, flags: ack, window: 0})
	write(t, ep, []byte("waiting"))
	d.expectNone()

	interval := 200 * time.Millisecond // the RTO: the floor, the manual clock's RTT being 0
	for probe := range 6 {
		d.clock.Advance(interval - time.Millisecond)
		d.expectNone()
		d.clock.Advance(time.Millisecond)
		got := d.next()
		if uint32(got.Seq) != iss+11 || string(got.Payload) != "w" {
			t.Fatalf("probe %d: got %s, want one byte (w) at %d", probe, describe(got), iss+11)
		}
		if probe%2 == 1 {
			// Every other probe is answered, the window still closed.
			d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 11, flags: ack, window: 0})
		}
		d.expectNone()
		interval *= 2
	}
	// Three answers with the same ACK are not duplicate ACKs: a probe
	// answered behind a closed window is no sign of loss.
	if tcb := d.proto.TCBs()[0]; tcb.Counters.WindowProbes != 6 || tcb.State != "ESTABLISHED" || tcb.Counters.FastRetransmits != 0 {
		t.Fatalf("window_probes %d fast_retransmits %d state %s, want 6 probes, no fast retransmit, the connection kept",
			tcb.Counters.WindowProbes, tcb.Counters.FastRetransmits, tcb.State)
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 11, flags: ack, window: 65535})
	if got := d.next(); uint32(got.Seq) != iss+11 || string(got.Payload) != "waiting" {
		t.Fatalf("after the window opened: got %s, want the waiting data at once", describe(got))
	}
}

// Receiver-side silly window avoidance (RFC 9293 3.8.6.2.2): once the
// window is closed, its right edge moves only when at least
// min(MSS, buffer/2) has been freed, so small reads offer no small windows.
func TestReceiverSillyWindowAvoidance(t *testing.T) {
	d := newDUT(t, testOptions())
	ep, _ := d.endpoint()
	ep.SocketOptions().SetReceiveBufferSize(10000, true)
	if err := ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: 80}); err == nil {
		t.Fatal("Connect returned nil")
	}
	s := d.expect(syn, anySeq, 0)
	if s.Window != 10000 {
		t.Fatalf("SYN window %d, want the 10000-byte buffer", s.Window)
	}
	port, iss := s.SrcPort, uint32(s.Seq)
	const peerISN = 100
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN, ack: iss + 1, flags: synAck, window: 65535, mss: 1000})
	d.expect(ack, uint64(iss+1), peerISN+1)

	// The peer fills the window.
	payload := bytes.Repeat([]byte("f"), 1000)
	for i := range 10 {
		d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1 + uint32(i)*1000, ack: iss + 1, flags: ack, window: 65535, payload: payload})
	}
	var last uint16 = 0xffff
	for {
		got, ok := d.poll()
		if !ok {
			break
		}
		last = got.Window
	}
	if last != 0 {
		t.Fatalf("window %d with the buffer full, want 0", last)
	}
	readN := func(n int) {
		t.Helper()
		var b bytes.Buffer
		if _, err := ep.Read(&tcpip.LimitedWriter{W: &b, N: int64(n)}, tcpip.ReadOptions{}); err != nil || b.Len() != n {
			t.Fatalf("read %d bytes, %v; want %d", b.Len(), err, n)
		}
	}
	// 500 bytes free is less than our MSS (1460) and less than half the
	// buffer: no window is offered.
	readN(500)
	d.expectNone()
	// The peer's window probe is answered with the window still closed.
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 10001, ack: iss + 1, flags: ack, window: 65535, payload: []byte("p")})
	if got := d.next(); got.Window != 0 || uint32(got.Ack) != peerISN+10001 {
		t.Fatalf("probe answered with %s after a 500-byte read, want ACK %d offering window 0", describe(got), peerISN+10001)
	}
	// With 1500 bytes free (above our 1460-byte MSS) the edge moves, and
	// the window update goes out at once.
	readN(1000)
	if got := d.next(); got.Window != 1500 || got.Flags != ack {
		t.Fatalf("got %s after 1500 bytes were freed, want a window update offering 1500", describe(got))
	}
}

// The congestion window grows only while it limits the sending (RFC 7661
// section 4.3): a sender whose application writes a little at a time, or
// whom the peer's window holds back, keeps its window, and so does its
// send buffer.
func TestCwndGrowsOnlyWhenItLimits(t *testing.T) {
	d := newDUT(t, testOptions())
	const peerISN = 4000
	ep, port, iss := d.connect(peerISN)
	initial := d.proto.TCBs()[0].Cwnd
	sent := uint32(0)
	for range 50 {
		write(t, ep, bytes.Repeat([]byte("a"), 100))
		d.next()
		sent += 100
		d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 1 + sent, flags: ack, window: 65535})
	}
	if cwnd := d.proto.TCBs()[0].Cwnd; cwnd != initial {
		t.Fatalf("cwnd %d after 50 application-limited round trips, want it kept at %d", cwnd, initial)
	}
	// Held back by a peer window of 2000 bytes: still no growth.
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 1 + sent, flags: ack, window: 2000})
	write(t, ep, bytes.Repeat([]byte("b"), 20000))
	acked := iss + 1 + sent
	for {
		got, ok := d.poll()
		if !ok {
			break
		}
		acked = uint32(got.Seq) + uint32(len(got.Payload))
		d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: acked, flags: ack, window: 2000})
	}
	if acked != iss+1+sent+20000 {
		t.Fatalf("acked up to %d, want all 20000 bytes through the 2000-byte window (%d)", acked, iss+1+sent+20000)
	}
	if cwnd := d.proto.TCBs()[0].Cwnd; cwnd != initial {
		t.Fatalf("cwnd %d while the peer's window held the sender back, want it kept at %d", cwnd, initial)
	}
	// Limited by cwnd itself, it grows (slow start).
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 1 + sent + 20000, flags: ack, window: 65535})
	write(t, ep, bytes.Repeat([]byte("c"), 60000))
	first := d.next()
	for {
		if _, ok := d.poll(); !ok {
			break
		}
	}
	d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: uint32(first.Seq) + uint32(len(first.Payload)), flags: ack, window: 65535})
	if cwnd := d.proto.TCBs()[0].Cwnd; cwnd <= initial {
		t.Fatalf("cwnd %d after an ACK while cwnd-limited, want above %d", cwnd, initial)
	}
}

// Reading a little of a window the peer has barely used sends no window
// update, even though the window may now grow from the SYN,ACK's unscaled
// 64 KiB to the whole buffer: the peer is not held back, and the larger
// window rides on the next segment. Once the peer has fewer than four
// segments of the window left, a read that doubles it is announced at
// once, or the peer could stop short of what earns it an ACK.
func TestNoWindowUpdateWhileThePeerHasRoom(t *testing.T) {
	opts := testOptions()
	opts.DelayedACK = 200 * time.Millisecond
	d := newDUT(t, opts)
	c, iss := d.acceptWithOptions(tcpext.SegmentOptions{WindowScale: 7}, tcpext.SegmentOptions{WindowScale: -1})
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: 101, ack: iss + 1, flags: ack | psh, window: 512, payload: []byte("q")})
	if got, err := read(t, c); err != nil || string(got) != "q" {
		t.Fatalf("read %q, %v", got, err)
	}
	d.expectNone()
	write(t, c, []byte("r"))
	if got := d.expect(ack|psh, uint64(iss+1), 102); got.Window != 1<<20>>7 {
		t.Fatalf("echo offers window %d, want the whole 1 MiB buffer scaled by 7 (%d)", got.Window, 1<<20>>7)
	}

	// The peer fills all but 4 000 bytes (under three segments) of the
	// window; reading it all back opens the window far more than twice.
	next := uint32(102)
	for next < 102+(1<<20)-4000 {
		n := min(1460, 102+(1<<20)-4000-next)
		d.inject(seg{srcPort: 40000, dstPort: 7, seq: next, ack: iss + 2, flags: ack, window: 512, payload: bytes.Repeat([]byte("f"), int(n))})
		next += n
	}
	for {
		if _, ok := d.poll(); !ok {
			break
		}
	}
	for total := 0; total < (1<<20)-4000-1; {
		got, err := read(t, c)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", total, err)
		}
		total += len(got)
	}
	if got := d.expect(ack, uint64(iss+2), next); got.Window != 1<<20>>7 {
		t.Fatalf("window update offers %d, want %d", got.Window, 1<<20>>7)
	}
}
