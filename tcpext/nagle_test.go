package tcpext_test

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Nagle: while a short segment is unacknowledged, further short writes
// wait and then go out together; with no delay they go at once.
func TestNagle(t *testing.T) {
	for _, noDelay := range []bool{false, true} {
		d := newDUT(t, testOptions())
		ep, port, iss := d.connect(100)
		if noDelay {
			ep.SocketOptions().SetDelayOption(false)
		}
		write(t, ep, []byte("a"))
		d.expect(ack|psh, uint64(iss+1), 101)
		write(t, ep, []byte("b"))
		write(t, ep, []byte("c"))
		if noDelay {
			d.expect(ack|psh, uint64(iss+2), 101)
			d.expect(ack|psh, uint64(iss+3), 101)
			continue
		}
		d.expectNone()
		d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: iss + 2, flags: ack, window: 65535})
		if s := d.expect(ack|psh, uint64(iss+2), 101); string(s.Payload) != "bc" {
			t.Fatalf("after the ACK: %q, want the held bytes together", s.Payload)
		}
	}
}

// Closing ends Nagle's wait, since no later write can join the held
// bytes, and the FIN rides on them. Data held by the window goes with the
// FIN once the window opens.
func TestFINRidesOnLastData(t *testing.T) {
	d := newDUT(t, testOptions())
	ep, port, iss := d.connect(100)
	write(t, ep, []byte("a"))
	d.expect(ack|psh, uint64(iss+1), 101)
	write(t, ep, []byte("b"))
	d.expectNone()
	ep.Close()
	if s := d.expect(ack|psh|fin, uint64(iss+2), 101); string(s.Payload) != "b" {
		t.Fatalf("at close: %q, want the held byte with the FIN", s.Payload)
	}

	d2 := newDUT(t, testOptions())
	ep, port, iss = d2.connect(100)
	d2.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: iss + 1, flags: ack, window: 0})
	write(t, ep, bytes.Repeat([]byte("c"), 3000))
	ep.Close()
	d2.expectNone()
	d2.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: iss + 1, flags: ack, window: 65535})
	d2.expect(ack, uint64(iss+1), 101)
	d2.expect(ack, uint64(iss+1401), 101)
	if s := d2.expect(ack|psh|fin, uint64(iss+2801), 101); len(s.Payload) != 200 {
		t.Fatalf("last segment %d bytes, want the 200-byte tail", len(s.Payload))
	}
	d2.expectNone()
}

// Sender-side silly window avoidance: a segment cut short by the peer's
// window, far below half the largest window it offered, waits.
func TestSenderSillyWindowAvoidance(t *testing.T) {
	d := newDUT(t, testOptions())
	ep, port, iss := d.connect(100)
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: iss + 1, flags: ack, window: 1500})
	write(t, ep, bytes.Repeat([]byte("s"), 3000))
	if s := d.next(); len(s.Payload) != 1400 {
		t.Fatalf("first segment %d bytes, want 1400", len(s.Payload))
	}
	d.expectNone() // not a 100-byte sliver
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: iss + 1401, flags: ack, window: 3000})
	if s := d.next(); len(s.Payload) != 1400 {
		t.Fatalf("second segment %d bytes, want 1400", len(s.Payload))
	}
	if s := d.next(); len(s.Payload) != 200 {
		t.Fatalf("third segment %d bytes, want the 200-byte tail (data-limited)", len(s.Payload))
	}
}

// Delayed ACK: one segment is acknowledged when the timer fires, every
// second one at once, out-of-order data at once.
func TestDelayedACK(t *testing.T) {
	opts := testOptions()
	opts.DelayedACK = 200 * time.Millisecond
	d := newDUT(t, opts)
	_, iss := d.accept(7, 1000)
	data := func(seq uint32, n int) seg {
		return seg{srcPort: 40000, dstPort: 7, seq: seq, ack: iss + 1, flags: ack, window: 65535, payload: bytes.Repeat([]byte("x"), n)}
	}
	d.inject(data(1001, 100))
	d.expectNone()
	d.clock.Advance(199 * time.Millisecond)
	d.expectNone()
	d.clock.Advance(time.Millisecond)
	d.expect(ack, uint64(iss+1), 1101)

	d.inject(data(1101, 100))
	d.expectNone()
	d.inject(data(1201, 100))
	d.expect(ack, uint64(iss+1), 1301)
	d.clock.Advance(time.Second)
	d.expectNone() // the timer was stopped by the ACK

	d.inject(data(1401, 100)) // beyond a gap
	d.expect(ack, uint64(iss+1), 1301)
	d.inject(data(1301, 100)) // fills it
	d.expect(ack, uint64(iss+1), 1501)
}

// A full-sized segment with PSH is the last a window let out: it is
// acknowledged at once, as a second segment would be. A short pushed
// segment, or a full-sized one without PSH, waits for the timer.
func TestPushedFullSegmentACKedAtOnce(t *testing.T) {
	opts := testOptions()
	opts.DelayedACK = 200 * time.Millisecond
	d := newDUT(t, opts)
	_, iss := d.accept(7, 1000)
	data := func(seq uint32, n int, flags header.TCPFlags) seg {
		return seg{srcPort: 40000, dstPort: 7, seq: seq, ack: iss + 1, flags: flags, window: 65535, payload: bytes.Repeat([]byte("x"), n)}
	}
	seq := uint32(1001)
	d.inject(data(seq, wantMSS, ack|psh))
	seq += wantMSS
	d.expect(ack, uint64(iss+1), seq)

	d.inject(data(seq, 100, ack|psh))
	seq += 100
	d.expectNone()
	d.clock.Advance(200 * time.Millisecond)
	d.expect(ack, uint64(iss+1), seq)

	d.inject(data(seq, wantMSS, ack))
	seq += wantMSS
	d.expectNone()
	d.clock.Advance(200 * time.Millisecond)
	d.expect(ack, uint64(iss+1), seq)
}

// The sender pushes the last segment of what is queued and the last one
// the window lets out, and no other.
func TestLastSegmentOfWindowPushed(t *testing.T) {
	d := newDUT(t, testOptions())
	ep, port, iss := d.connect(100)
	write(t, ep, bytes.Repeat([]byte("w"), 20000))
	// The initial window is ten segments of 1400 bytes (RFC 6928).
	for i := range 10 {
		s := d.next()
		want := ack
		if i == 9 {
			want |= psh
		}
		if s.Flags != want || len(s.Payload) != 1400 {
			t.Fatalf("segment %d: %s, want flags %s and 1400 bytes", i, describe(s), want)
		}
	}
	d.expectNone()
	d.inject(seg{srcPort: 80, dstPort: port, seq: 101, ack: iss + 14001, flags: ack, window: 65535})
	// 6000 bytes are left, within the grown window: only the last is pushed.
	for i, size := range []int{1400, 1400, 1400, 1400, 400} {
		s := d.next()
		want := ack
		if i == 4 {
			want |= psh
		}
		if s.Flags != want || len(s.Payload) != size {
			t.Fatalf("after the ACK, segment %d: %s, want flags %s and %d bytes", i, describe(s), want, size)
		}
	}
}

// A FIN that arrives in ESTABLISHED is acknowledged by the FIN the
// application's close sends, or by the delayed-ACK timer if the
// application does not close.
func TestFINInEstablishedACKedByOurFIN(t *testing.T) {
	opts := testOptions()
	opts.DelayedACK = 200 * time.Millisecond
	d := newDUT(t, opts)
	c, iss := d.accept(7, 1000)
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: 1001, ack: iss + 1, flags: finAck, window: 65535})
	d.expectNone()
	if got := d.state(7, 40000); got != "CLOSE-WAIT" {
		t.Fatalf("after the FIN: %s, want CLOSE-WAIT", got)
	}
	c.Close()
	d.expect(finAck, uint64(iss+1), 1002)
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: 1002, ack: iss + 2, flags: ack, window: 65535})
	d.clock.Advance(time.Second)
	d.expectNone() // no bare ACK from the delayed-ACK timer either

	d2 := newDUT(t, opts)
	_, iss = d2.accept(7, 1000)
	d2.inject(seg{srcPort: 40000, dstPort: 7, seq: 1001, ack: iss + 1, flags: finAck, window: 65535})
	d2.clock.Advance(199 * time.Millisecond)
	d2.expectNone()
	d2.clock.Advance(time.Millisecond)
	d2.expect(ack, uint64(iss+1), 1002)
}
