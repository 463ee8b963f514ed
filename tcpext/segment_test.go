package tcpext_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"github.com/synfin/synfin/tcpext"
)

func TestSegmentRoundTrip(t *testing.T) {
	cases := []tcpext.SegmentOptions{
		{WindowScale: -1},
		{MSS: 1460, WindowScale: -1},
		{MSS: 1460, WindowScale: 7, SACKPermitted: true, Timestamps: true, TSVal: 1, TSEcr: 2},
		{WindowScale: 14, Timestamps: true, TSVal: 0xdeadbeef, TSEcr: 0xfeedface},
		{WindowScale: -1, SACKPermitted: true},
		{WindowScale: -1, Timestamps: true, TSVal: 9, NumSACK: 3, SACK: [4]tcpext.SACKBlock{{1, 2}, {3, 4}, {5, 6}}},
	}
	for i, opts := range cases {
		in := tcpext.Segment{
			SrcPort: 1234, DstPort: 80, Seq: seqnum.Value(0xfffffff0), Ack: 42,
			Flags: header.TCPFlagAck | header.TCPFlagPsh, Window: 512, Urgent: 3,
			Options: opts, Payload: []byte("data"),
		}
		if in.Options.Len()%4 != 0 {
			t.Fatalf("case %d: options length %d not 4-byte aligned", i, in.Options.Len())
		}
		b := make([]byte, in.HeaderLen()+len(in.Payload))
		in.EncodeHeader(b)
		copy(b[in.HeaderLen():], in.Payload)
		out, err := tcpext.ParseSegment(b)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if out.SrcPort != in.SrcPort || out.DstPort != in.DstPort || out.Seq != in.Seq || out.Ack != in.Ack ||
			out.Flags != in.Flags || out.Window != in.Window || out.Urgent != in.Urgent || string(out.Payload) != "data" {
			t.Fatalf("case %d: header round trip: got %+v, want %+v", i, out, in)
		}
		if out.Options != in.Options {
			t.Fatalf("case %d: options round trip: got %+v, want %+v", i, out.Options, in.Options)
		}
	}
}

// header20 returns a minimal valid header with the given data offset
// (in 32-bit words) followed by extra bytes.
func header20(offsetWords byte, extra ...byte) []byte {
	b := make([]byte, 20, 20+len(extra))
	b[12] = offsetWords << 4
	return append(b, extra...)
}

func TestParseSegmentRejectsMalformed(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want error // nil: any *OptionError
	}{
		{"short header", make([]byte, 19), tcpext.ErrShortHeader},
		{"data offset 4", header20(4), tcpext.ErrDataOffsetSmall},
		{"data offset 0", header20(0), tcpext.ErrDataOffsetSmall},
		{"data offset past end", header20(6), tcpext.ErrDataOffsetLarge},
		{"data offset 15 in 24 bytes", header20(15, 1, 1, 1, 1), tcpext.ErrDataOffsetLarge},
		{"truncated option", header20(6, 1, 1, 1, 2), nil},
		{"option length 0", header20(6, 2, 0, 0, 0), nil},
		{"option length 1", header20(6, 30, 1, 0, 0), nil},
		{"option past end", header20(6, 1, 30, 9, 0), nil},
		{"MSS wrong length", header20(6, 2, 3, 0, 0), nil},
		{"window scale wrong length", header20(6, 3, 4, 0, 0), nil},
		{"timestamps wrong length", header20(7, 8, 6, 0, 0, 0, 0, 0, 0), nil},
		{"SACK wrong length", header20(7, 5, 6, 0, 0, 0, 0, 0, 0), nil},
	}
	for _, c := range cases {
		_, err := tcpext.ParseSegment(c.b)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if c.want != nil {
			if !errors.Is(err, c.want) {
				t.Errorf("%s: error %v, want %v", c.name, err, c.want)
			}
			continue
		}
		var oe *tcpext.OptionError
		if !errors.As(err, &oe) {
			t.Errorf("%s: error %v is not an OptionError", c.name, err)
		}
	}
}

func TestParseOptionsSkipsUnknownKinds(t *testing.T) {
	// NOP, unknown kind 30 of length 4, MSS 1000, EOL then garbage.
	o, err := tcpext.ParseOptions([]byte{1, 30, 4, 9, 9, 2, 4, 0x03, 0xe8, 0, 0xff, 0xff})
	if err != nil {
		t.Fatal(err)
	}
	if o.MSS != 1000 || o.WindowScale != -1 {
		t.Fatalf("got %+v, want MSS 1000 and no window scale", o)
	}
}

// FuzzParseSegment checks that no input panics the codec.
func FuzzParseSegment(f *testing.F) {
	f.Add(header20(5))
	f.Add(header20(6, 2, 4, 5, 0xb4))
	f.Add(header20(15))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := tcpext.ParseSegment(b)
		if err == nil && len(s.Payload) > len(b) {
			t.Fatalf("payload longer than the input")
		}
	})
}

// A segment whose bytes arrive in two pieces (a large segment spanning two
// chunks of its sender's buffer) is read whole, wherever the split falls:
// in the header, or in the payload.
func TestSegmentSplitAcrossViews(t *testing.T) {
	d := newDUT(t, testOptions())
	c, iss := d.accept(7, 1000)
	next := uint32(1001)
	var want []byte
	for _, split := range []int{10, 40, 41, 100, 540} {
		payload := bytes.Repeat([]byte{byte(split)}, 500)
		ip := ipPacket(encodeSegment(seg{srcPort: 40000, dstPort: 7, seq: next, ack: iss + 1, flags: ack | psh, window: 65535, payload: payload}), false)
		d.injectIP(ip, split)
		next += uint32(len(payload))
		want = append(want, payload...)
	}
	got := readBytes(t, c, len(want))
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes that differ from the %d sent", len(got), len(want))
	}
	if st := d.proto.Stats(); st.ChecksumErrors+st.MalformedDropped != 0 {
		t.Fatalf("stats %+v: split segments were dropped", st)
	}
}

// Large payloads are kept in the packet's memory, whether the packet is one
// view or split in two (as a segment spanning two chunks of a sender's
// buffer is): segments that overlap data already received are trimmed on
// the way in, and what the application reads is exactly the stream.
func TestLargeSegmentsTrimmedAndKept(t *testing.T) {
	// split is where the IP packet is cut in two, counted from its start
	// (40 bytes of IP and TCP header): 0 leaves it whole; 340 cuts every
	// payload inside the duplicate part trimmed off the next two
	// segments, 1540 past it.
	for _, split := range []int{0, 340, 1540} {
		t.Run(fmt.Sprintf("split=%d", split), func(t *testing.T) {
			d := newDUT(t, testOptions())
			c, iss := d.accept(7, 1000)
			stream := make([]byte, 6000)
			for i := range stream {
				stream[i] = byte(i * 7)
			}
			send := func(from, to int) {
				s := seg{srcPort: 40000, dstPort: 7, seq: 1001 + uint32(from), ack: iss + 1, flags: ack, window: 65535, payload: stream[from:to]}
				if split == 0 {
					d.inject(s)
					return
				}
				d.injectIP(ipPacket(encodeSegment(s), false), split)
			}
			send(0, 2000)
			send(1000, 4000) // its first 1 000 bytes are duplicates
			send(2500, 6000) // overlaps, and carries 2 000 new bytes
			got := readBytes(t, c, len(stream))
			if !bytes.Equal(got, stream) {
				t.Fatalf("read %d bytes that differ from the stream", len(got))
			}
		})
	}
}

// readBytes reads from c until it has at least n bytes.
func readBytes(t *testing.T, c tcpip.Endpoint, n int) []byte {
	t.Helper()
	var got []byte
	for len(got) < n {
		b, err := read(t, c)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, b...)
	}
	return got
}
