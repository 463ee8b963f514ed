package impair

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

var (
	srcAddr = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	dstAddr = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
)

// udpPacket returns an IPv4/UDP packet with valid checksums whose payload
// starts with the big-endian id.
func udpPacket(id uint32, payloadLen int) []byte {
	payload := make([]byte, max(payloadLen, 4))
	binary.BigEndian.PutUint32(payload, id)
	for i := 4; i < len(payload); i++ {
		payload[i] = byte(i)
	}
	b := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: srcAddr, DstAddr: dstAddr,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(b[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: 1000, DstPort: 9, Length: uint16(len(u))})
	copy(u.Payload(), payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, srcAddr, dstAddr, uint16(len(u)))
	u.SetChecksum(^checksum.Checksum(u, xsum))
	return b
}

// valid reports whether both checksums of an IPv4/UDP packet hold.
func valid(b []byte) bool {
	ip := header.IPv4(b)
	if !ip.IsValid(len(b)) || !ip.IsChecksumValid() {
		return false
	}
	u := header.UDP(ip.Payload())
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(u)))
	return checksum.Checksum(u, xsum) == 0xffff
}

func newPacket(b []byte) *stack.PacketBuffer {
	return stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
}

// arrival is one copy handed on by a Line.
type arrival struct {
	id  uint32
	at  time.Duration
	raw []byte
}

// recorder returns a deliver function that records arrivals on clock.
func recorder(clock tcpip.Clock, skip int, got *[]arrival) func(*stack.PacketBuffer) {
	start := clock.NowMonotonic()
	return func(pkt *stack.PacketBuffer) {
		raw := pkt.ToView().AsSlice()
		id := binary.BigEndian.Uint32(raw[skip+header.IPv4MinimumSize+header.UDPMinimumSize:])
		*got = append(*got, arrival{id: id, at: clock.NowMonotonic().Sub(start), raw: raw})
	}
}

func sendID(l *Line, id uint32) {
	pkt := newPacket(udpPacket(id, 100))
	l.Send(pkt)
	pkt.DecRef()
}

// A fixed delay holds every packet exactly that long and keeps their
// order, also for packets sent at the same instant.
func TestLineDelayKeepsOrder(t *testing.T) {
	clock := faketime.NewManualClock()
	im, err := New(Config{Delay: 10 * time.Millisecond}, clock)
	if err != nil {
		t.Fatal(err)
	}
	var got []arrival
	l := NewLine(im, recorder(clock, 0, &got))
	for i := range 20 {
		sendID(l, uint32(i))
		if i%2 == 1 && i < 19 { // pairs leave together
			clock.Advance(time.Millisecond)
		}
	}
	if len(got) != 0 || l.Pending() != 20 {
		t.Fatalf("%d delivered, %d pending before the delay passed", len(got), l.Pending())
	}
	clock.Advance(time.Second)
	if len(got) != 20 {
		t.Fatalf("%d delivered, want 20", len(got))
	}
	for i, a := range got {
		if want := 10*time.Millisecond + time.Duration(i/2)*time.Millisecond; a.id != uint32(i) || a.at != want {
			t.Fatalf("arrival %d: packet %d at %v, want packet %d at %v", i, a.id, a.at, i, want)
		}
	}
}

// Jitter larger than the packets' spacing reorders them; every copy still
// arrives exactly once, at the time its decision said.
func TestLineJitterReorders(t *testing.T) {
	const n = 1000
	cfg := Config{Seed: 9, Delay: 5 * time.Millisecond, Jitter: 10 * time.Millisecond}
	clock := faketime.NewManualClock()
	im, _ := New(cfg, clock)
	// The same decisions, taken by a twin on its own clock.
	twinClock := faketime.NewManualClock()
	twin, _ := New(cfg, twinClock)
	want := make(map[uint32]time.Duration)
	var got []arrival
	l := NewLine(im, recorder(clock, 0, &got))
	for i := range n {
		d := twin.Decide(128)[0]
		want[uint32(i)] = d.At.Sub(tcpip.MonotonicTime{})
		sendID(l, uint32(i))
		clock.Advance(time.Millisecond)
		twinClock.Advance(time.Millisecond)
	}
	clock.Advance(time.Second)
	if len(got) != n {
		t.Fatalf("%d delivered, want %d", len(got), n)
	}
	seen := make(map[uint32]bool)
	inversions := 0
	for i, a := range got {
		if seen[a.id] {
			t.Fatalf("packet %d delivered twice", a.id)
		}
		seen[a.id] = true
		if a.at != want[a.id] {
			t.Fatalf("packet %d arrived at %v, decided %v", a.id, a.at, want[a.id])
		}
		if i > 0 && a.id < got[i-1].id {
			inversions++
		}
		if i > 0 && a.at < got[i-1].at {
			t.Fatalf("arrivals out of time order at %d", i)
		}
	}
	if inversions < n/10 {
		t.Fatalf("%d reorderings in %d packets, want many", inversions, n)
	}
	t.Logf("%d of %d packets overtaken", inversions, n)
}

// Corruption flips exactly one bit of a copy, beyond the link header, and
// never touches the sender's buffer; the damage shows in a checksum.
func TestLineCorruptsACopy(t *testing.T) {
	const linkHdr = 14
	clock := faketime.NewManualClock()
	im, _ := New(Config{Seed: 5, Corrupt: 1, Duplicate: 1}, clock)
	var got []arrival
	l := NewLine(im, recorder(clock, linkHdr, &got))
	for i := range 500 {
		orig := udpPacket(uint32(i), 60)
		frame := append(bytes.Repeat([]byte{0xee}, linkHdr), orig...)
		pkt := newPacket(frame)
		// The packet arrives as from a link endpoint that parsed its
		// ethernet header.
		pkt.LinkHeader().Consume(linkHdr)
		l.Send(pkt)
		if after := pkt.ToView().AsSlice(); !bytes.Equal(after, frame) {
			t.Fatalf("packet %d: the sender's buffer changed", i)
		}
		pkt.DecRef()
		if len(got) != 2*(i+1) {
			t.Fatalf("packet %d: %d copies so far, want 2 each", i, len(got))
		}
		for _, a := range got[2*i:] {
			if !bytes.Equal(a.raw[:linkHdr], frame[:linkHdr]) {
				t.Fatalf("packet %d: link header changed", i)
			}
			flipped := 0
			for j := range orig {
				flipped += bits.OnesCount8(orig[j] ^ a.raw[linkHdr+j])
			}
			if flipped != 1 {
				t.Fatalf("packet %d: %d bits flipped, want 1", i, flipped)
			}
			if valid(a.raw[linkHdr:]) {
				t.Fatalf("packet %d: a one-bit error passed both checksums", i)
			}
		}
	}
	if s := im.Stats(); s.Corrupted != 1000 || s.Duplicated != 500 || s.Passed != 1000 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLineCloseDropsWaiting(t *testing.T) {
	clock := faketime.NewManualClock()
	im, _ := New(Config{Delay: time.Millisecond}, clock)
	var got []arrival
	l := NewLine(im, recorder(clock, 0, &got))
	sendID(l, 1)
	l.Close()
	sendID(l, 2)
	clock.Advance(time.Second)
	if len(got) != 0 || l.Pending() != 0 {
		t.Fatalf("after Close: %d delivered, %d pending", len(got), l.Pending())
	}
}

// BenchmarkLineDelayed measures the cost of carrying one packet through a
// Line that loses, duplicates, delays and reorders, on a SimClock (whose
// timers cost no allocation, unlike faketime's), with some 600 packets
// waiting at any time.
func BenchmarkLineDelayed(b *testing.B) {
	clock := NewSimClock()
	im, _ := New(Config{Seed: 1, Loss: 0.01, Duplicate: 0.01, Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}, clock)
	l := NewLine(im, func(*stack.PacketBuffer) {})
	pkt := newPacket(udpPacket(1, 1400))
	defer pkt.DecRef()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Send(pkt)
		if i%64 == 63 {
			clock.Advance(time.Millisecond)
		}
	}
}
