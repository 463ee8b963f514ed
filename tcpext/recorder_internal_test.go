package tcpext

import (
	"math/rand/v2"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// randomRecord is a record of any kind with random fields, holding only
// what its kind records.
func randomRecord(rng *rand.Rand, at int64) record {
	r := record{at: at, kind: recordKind(rng.IntN(len(recordKinds)))}
	// Causes past the head's five bits take the escape.
	cause := uint16(rng.IntN(40))
	switch r.kind {
	case recTimer:
		r.cause = cause
	case recState:
		r.from, r.to, r.cause = State(rng.IntN(11)), State(rng.IntN(11)), cause
	case recCC:
		r.cause, r.cwnd, r.tsVal = cause, rng.Uint32(), rng.Uint32()>>1
	default:
		r.seq, r.ack = seqnum.Value(rng.Uint32()), seqnum.Value(rng.Uint32())
		r.flags = header.TCPFlags(rng.Uint32())
		r.window, r.length = uint16(rng.Uint32()), rng.Uint32()>>rng.IntN(32)
		if r.kind == recSegOut {
			r.cwnd = rng.Uint32() >> rng.IntN(32)
		}
		r.bits = recordBits(rng.IntN(1 << 5))
		if rng.IntN(2) == 0 {
			r.mss, r.wscale = uint16(rng.Uint32()), int8(rng.Uint32())
		} else {
			r.wscale = -1
			r.bits &^= recSACKPermitted
		}
		if r.bits&recTimestamps != 0 {
			r.tsVal, r.tsEcr = rng.Uint32(), rng.Uint32()
			if !r.peerTSFixed() {
				r.tsEcr >>= rng.IntN(32)
			}
		}
		r.nsack = uint8(rng.IntN(maxSACKBlocks + 1))
		for i := range r.sack[:r.nsack] {
			r.sack[i] = SACKBlock{rng.Uint32(), rng.Uint32()}
		}
	}
	return r
}

// Every record, of every kind, decodes to what was encoded, relative
// fields included, and fits maxRecordLen.
func TestRecordEncodingRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100000 {
		b := recordBases{iss: seqnum.Value(rng.Uint32()), irs: seqnum.Value(rng.Uint32()), tsOffset: rng.Uint32()}
		at := rng.Int64() >> rng.IntN(63)
		want := randomRecord(rng, at)
		dt := rng.Int64() >> rng.IntN(64)
		enc := want.encode(nil, dt, b)
		if len(enc) > maxRecordLen {
			t.Fatalf("record %d: %d bytes, above maxRecordLen %d", i, len(enc), maxRecordLen)
		}
		// Trailing bytes, as the next record in a ring, are not read.
		got, n := decodeRecord(append(enc, 0xff, 0xff))
		if n != len(enc) || got.at != dt {
			t.Fatalf("record %d %+v: decoded %d of %d bytes, dt %d, want %d", i, want, n, len(enc), got.at, dt)
		}
		got.at = at
		got.resolve(b)
		if got != want {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// A handshake's records, encoded relative to the TCB, fit the ring's
// first allocation on either side.
func TestHandshakeFitsFirstRecorderBytes(t *testing.T) {
	const iss, irs, tsOffset = 0x9abcdef0, 0x12345678, 0x76543210
	b := recordBases{iss: iss, irs: irs, tsOffset: tsOffset}
	ms := int64(1e6)
	at := 3600 * 1000 * ms // an hour after the epoch
	ts := func(at int64) uint32 { return uint32(at/ms) + tsOffset }
	const peerTS = 0xdeadbeef
	opts := func(r record) record {
		r.mss, r.wscale, r.bits = 1460, 7, r.bits|recSACKPermitted|recTimestamps
		return r
	}
	const both = recOurs | recTheirs
	rtt := 5 * ms
	active := []record{
		{kind: recState, from: StateClosed, to: StateSynSent, cause: 5},
		opts(record{kind: recSegOut, seq: iss, flags: header.TCPFlagSyn, window: 65535, cwnd: 14600, bits: recOurs, tsVal: ts(at)}),
		opts(record{kind: recSegIn, seq: irs, ack: iss + 1, flags: header.TCPFlagSyn | header.TCPFlagAck, window: 65535, bits: recOurs, tsVal: peerTS, tsEcr: ts(at)}),
		{kind: recState, from: StateSynSent, to: StateEstablished, cause: 6},
		{kind: recSegOut, seq: iss + 1, ack: irs + 1, flags: header.TCPFlagAck, window: 8192, cwnd: 14600, wscale: -1, bits: both | recTimestamps, tsVal: ts(at + rtt), tsEcr: peerTS},
	}
	passive := []record{
		opts(record{kind: recSegIn, seq: irs, flags: header.TCPFlagSyn, window: 65535, bits: both, tsVal: peerTS}),
		{kind: recState, from: StateListen, to: StateSynReceived, cause: 7},
		opts(record{kind: recSegOut, seq: iss, ack: irs + 1, flags: header.TCPFlagSyn | header.TCPFlagAck, window: 65535, cwnd: 14600, bits: both, tsVal: ts(at), tsEcr: peerTS}),
		{kind: recSegIn, seq: irs + 1, ack: iss + 1, flags: header.TCPFlagAck, window: 8192, wscale: -1, bits: both | recTimestamps, tsVal: peerTS + 5, tsEcr: ts(at)},
		{kind: recState, from: StateSynReceived, to: StateEstablished, cause: 8},
	}
	for name, recs := range map[string][]record{"active": active, "passive": passive} {
		var n int
		for i, r := range recs {
			// A few microseconds between events, the round trip before
			// the peer's answer.
			dt := 3000 * int64(i)
			if i == 2 {
				dt = rtt
			}
			r.at = at + dt
			n += len(r.encode(nil, dt, b))
		}
		t.Logf("%s open: %d bytes", name, n)
		if n > firstRecorderBytes {
			t.Errorf("%s open: %d bytes, above firstRecorderBytes %d", name, n, firstRecorderBytes)
		}
	}
}

// The ring keeps the newest limit records whatever their lengths, through
// its first drop, compactions and regrowths, and counts the others.
func TestRecorderRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := recordBases{iss: 1000, irs: 2000, tsOffset: 3000}
	for _, limit := range []int{1, 2, 7, 256} {
		var r recorder
		var all []record
		var at int64
		for i := range 40 * limit {
			at += rng.Int64N(1 << rng.IntN(40))
			rec := randomRecord(rng, at)
			var dt int64
			if r.total > 0 {
				dt = at - r.last
			}
			r.put(rec.encode(nil, dt, b), at, limit)
			all = append(all, rec)
			if i%(limit/4+1) != 0 {
				continue
			}
			got := r.records(limit, b)
			want := all[max(len(all)-limit, 0):]
			if len(got) != len(want) || r.lost(limit) != uint64(len(all)-len(want)) {
				t.Fatalf("limit %d, %d records: ring holds %d, lost %d; want %d, lost %d", limit, len(all), len(got), r.lost(limit), len(want), len(all)-len(want))
			}
			for j := range got {
				if got[j] != want[j] {
					t.Fatalf("limit %d, %d records: record %d\n got %+v\nwant %+v", limit, len(all), j, got[j], want[j])
				}
			}
		}
		if bound := 2 * (ringHeader + limit*(1+maxRecordLen)); cap(r.buf) > bound {
			t.Errorf("limit %d: ring of %d bytes, above %d", limit, cap(r.buf), bound)
		}
	}
}

// Once grown, recording allocates nothing.
func TestRecorderPutAllocs(t *testing.T) {
	const limit = 16
	var r recorder
	rec := record{kind: recSegOut, seq: 1, ack: 2, flags: header.TCPFlagAck, window: 100, length: 1448, cwnd: 14600, wscale: -1}
	put := func() {
		var buf [maxRecordLen]byte
		rec.seq += 1448
		rec.at += 1000
		r.put(rec.encode(buf[:0], 1000, recordBases{}), rec.at, limit)
	}
	for range 10 * limit {
		put()
	}
	if n := testing.AllocsPerRun(1000, put); n != 0 {
		t.Errorf("%v allocations per record, want 0", n)
	}
}
