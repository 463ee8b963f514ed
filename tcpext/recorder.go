package tcpext

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// The flight recorder keeps each TCB's recent events — segments in and out,
// timer expiries, state changes and congestion responses — so a field
// engineer can replay a connection, even one that closed a while ago.
//
// Most connections sit idle after their handshake, so what an idle TCB's
// ring holds is paid ten thousand times over: records are encoded in a
// few bytes each (see encode) into a byte ring that starts just large
// enough for a handshake. Recording sits on the segment path, so encoding
// writes into a buffer on the stack and appends it under the TCB's lock:
// no allocation once the ring has grown, and no strings built until
// someone asks for a dump.

// Defaults of the recorder's bounds (Options.RecorderEvents, ClosedTCBs).
const (
	defaultRecorderEvents = 256
	defaultClosedTCBs     = 64
	// firstRecorderBytes is the ring's first allocation, a size class of
	// the allocator: an idle connection has seen its handshake, five
	// events on either side (about 60 bytes), and no more.
	firstRecorderBytes = 64
)

// Event kinds, as they appear in a dump.
const (
	EventSegIn  = "seg_in"
	EventSegOut = "seg_out"
	EventTimer  = "timer"
	EventState  = "state"
	EventCC     = "cc"
)

// Event is one entry of a TCB's flight recorder.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	// Seg is the segment of a seg_in or seg_out event.
	Seg *SegEvent `json:"seg,omitempty"`
	// Timer names the timer that expired: retransmit, persist,
	// delayed-ack, keepalive, time-wait, fin-wait-2 or tail-loss-probe.
	Timer string `json:"timer,omitempty"`
	// From and To are the states of a state event.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Cause says why a state or cc event happened.
	Cause string `json:"cause,omitempty"`
	// Cwnd and Ssthresh, in bytes, after a cc event; Cwnd also at every
	// segment sent.
	Cwnd     uint32 `json:"cwnd,omitempty"`
	Ssthresh uint32 `json:"ssthresh,omitempty"`
}

// SegEvent is a segment's header as recorded; the payload is not kept.
type SegEvent struct {
	Seq   uint32 `json:"seq"`
	Ack   uint32 `json:"ack"`
	Flags string `json:"flags"`
	// Window is the raw 16-bit field, before any scaling.
	Window uint16 `json:"window"`
	Len    int    `json:"len"`
	// Retransmit marks a sent segment that repeats sequence space sent
	// before.
	Retransmit    bool        `json:"retransmit,omitempty"`
	MSS           uint16      `json:"mss,omitempty"`
	WScale        int         `json:"wscale"` // -1 when absent
	SACKPermitted bool        `json:"sack_permitted,omitempty"`
	HasTS         bool        `json:"has_ts,omitempty"`
	TSVal         uint32      `json:"tsval,omitempty"`
	TSEcr         uint32      `json:"tsecr,omitempty"`
	SACK          [][2]uint32 `json:"sack,omitempty"` // [start, end) blocks
}

// TCBDump is a TCB with its recorded events. Dumps of closed TCBs outlive
// the connection.
type TCBDump struct {
	TCB      TCBInfo   `json:"tcb"`
	Closed   bool      `json:"closed"`
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// Events are oldest first.
	Events []Event `json:"events"`
	// EventsLost counts events overwritten in the ring.
	EventsLost uint64 `json:"events_lost"`
}

type recordKind uint8

const (
	recSegIn recordKind = iota
	recSegOut
	recTimer
	recState
	recCC
)

var recordKinds = [...]string{EventSegIn, EventSegOut, EventTimer, EventState, EventCC}

// record is an Event as the recorder handles it: what recordSegment and
// the others fill in and encode, and what a dump decodes.
type record struct {
	at       int64 // stack's monotonic clock, ns since the protocol's epoch
	seq, ack seqnum.Value
	length   uint32
	cwnd     uint32
	// tsVal and tsEcr are a segment's timestamps; a cc event keeps its
	// ssthresh in tsVal.
	tsVal, tsEcr uint32
	sack         [maxSACKBlocks]SACKBlock
	window       uint16
	mss          uint16
	cause        uint16 // a timer's name or an event's cause (causeName)
	flags        header.TCPFlags
	kind         recordKind
	wscale       int8
	nsack        uint8
	bits         recordBits
	from, to     State
}

type recordBits uint8

const (
	recRetransmit recordBits = 1 << iota
	recSACKPermitted
	recTimestamps
	// recOurs and recTheirs: our ISS and timestamp clock, and the peer's
	// IRS, were known when the segment was recorded, so its fields are
	// stored relative to them (recordBases).
	recOurs
	recTheirs
)

// recordBases are the TCB's values that a segment's sequence numbers and
// timestamps are stored relative to: the fields of a connection's segments
// lie close to its ISS, its IRS and its timestamp clock, so the
// differences take a byte or two where the raw values take four or five.
// The ISS (with the timestamp offset) and the IRS are each set once, from
// zero, before the segments that use them (RFC 9293 section 3.4), so a
// record that was stored relative to one decodes against the same value;
// a record stored while one was still zero says so (recOurs, recTheirs)
// and keeps those fields raw.
type recordBases struct {
	iss, irs seqnum.Value
	tsOffset uint32
}

func (e *endpoint) recordBases() recordBases {
	return recordBases{iss: e.iss, irs: e.irs, tsOffset: e.tsOffset}
}

// bases returns what a segment record's seq and ack are stored relative
// to, and ts, what our clock's timestamp in it (TSval sent, TSecr
// received) is. An ACK field is taken relative only with the ACK flag, as
// only then does it carry a sequence number or timestamp of ours.
func (r *record) bases(b recordBases) (seq, ack, ts uint32) {
	var iss, irs, clock uint32
	if r.bits&recOurs != 0 {
		// tsNow at the record's time.
		iss, clock = uint32(b.iss), uint32(time.Duration(r.at)/time.Millisecond)+b.tsOffset
	}
	if r.bits&recTheirs != 0 {
		irs = uint32(b.irs)
	}
	acked := r.flags&header.TCPFlagAck != 0
	if r.kind == recSegOut {
		seq, ts = iss, clock
		if acked {
			ack = irs
		}
		return seq, ack, ts
	}
	seq = irs
	if acked {
		ack, ts = iss, clock
	}
	return seq, ack, ts
}

// The encoding of a record: a head byte, the nanoseconds since the record
// before it as a uvarint, then what the kind needs. Bit 0 of the head
// marks a segment; the other bits of a segment's head are its flags below,
// and the rest of it is its TCP flags, seq and ack (zigzag uvarints
// relative to their bases), window (two bytes), length (uvarint), cwnd if
// sent (uvarint), then as the flags say the SYN options (MSS shifted left
// one, ORed with SACK-permitted, as a uvarint; window scale as a byte),
// the timestamps (ours as a zigzag uvarint relative to its base, the
// peer's as peerTSFixed says) and the SACK blocks (a count, then each
// block's start relative to the ACK as a zigzag uvarint and its length).
// Otherwise bits 1-2 of the head are the kind and bits 3-7 the cause,
// headCauseMore meaning that the cause follows as a uvarint; a state
// record adds a byte with both states, a cc record cwnd and ssthresh.
const (
	headSegment = 1 << iota
	headOut
	headRetransmit
	headTimestamps
	headSYNOptions
	headSACK
	headOurs
	headTheirs

	headKindShift  = 1
	headCauseShift = 3
	headCauseMore  = 1<<(8-headCauseShift) - 1

	// maxRecordLen bounds an encoded record: a segment's head, time, flags,
	// seq, ack, window, length, cwnd, SYN options, timestamps and SACK
	// blocks.
	maxRecordLen = 1 + binary.MaxVarintLen64 + 1 + 5 + 5 + 2 + 5 + 5 + (3 + 1) + (5 + 5) + 1 + maxSACKBlocks*(5+5)
)

// A framed ring keeps each record's length in a byte.
const _ uint8 = maxRecordLen

// headKinds maps the kind bits of a head to the kinds other than segments.
var headKinds = [...]recordKind{recTimer, recState, recCC}

// encode appends r, dt nanoseconds after the record before it, to dst.
func (r *record) encode(dst []byte, dt int64, b recordBases) []byte {
	if r.kind != recSegIn && r.kind != recSegOut {
		head := byte(r.kind-recTimer) << headKindShift
		if r.cause < headCauseMore {
			dst = append(dst, head|byte(r.cause)<<headCauseShift)
		} else {
			dst = append(dst, head|headCauseMore<<headCauseShift)
		}
		dst = binary.AppendUvarint(dst, uint64(dt))
		if r.cause >= headCauseMore {
			dst = binary.AppendUvarint(dst, uint64(r.cause))
		}
		switch r.kind {
		case recState:
			// RFC 9293 has eleven states: both fit a byte.
			dst = append(dst, byte(r.from)<<4|byte(r.to))
		case recCC:
			dst = binary.AppendUvarint(dst, uint64(r.cwnd))
			dst = binary.AppendUvarint(dst, uint64(r.tsVal))
		}
		return dst
	}
	out := r.kind == recSegOut
	head := byte(headSegment)
	if out {
		head |= headOut
	}
	if r.bits&recRetransmit != 0 {
		head |= headRetransmit
	}
	if r.bits&recTimestamps != 0 {
		head |= headTimestamps
	}
	synOptions := r.mss != 0 || r.wscale != -1 || r.bits&recSACKPermitted != 0
	if synOptions {
		head |= headSYNOptions
	}
	if r.nsack != 0 {
		head |= headSACK
	}
	if r.bits&recOurs != 0 {
		head |= headOurs
	}
	if r.bits&recTheirs != 0 {
		head |= headTheirs
	}
	seqBase, ackBase, tsBase := r.bases(b)
	dst = append(dst, head)
	dst = binary.AppendUvarint(dst, uint64(dt))
	dst = append(dst, byte(r.flags))
	dst = appendZigzag(dst, uint32(r.seq)-seqBase)
	dst = appendZigzag(dst, uint32(r.ack)-ackBase)
	dst = binary.LittleEndian.AppendUint16(dst, r.window)
	dst = binary.AppendUvarint(dst, uint64(r.length))
	if out {
		dst = binary.AppendUvarint(dst, uint64(r.cwnd))
	}
	if synOptions {
		mss := uint64(r.mss) << 1
		if r.bits&recSACKPermitted != 0 {
			mss |= 1
		}
		dst = binary.AppendUvarint(dst, mss)
		dst = append(dst, byte(r.wscale))
	}
	if r.bits&recTimestamps != 0 {
		ours, peers := r.tsVal, r.tsEcr
		if !out {
			ours, peers = peers, ours
		}
		dst = appendZigzag(dst, ours-tsBase)
		if r.peerTSFixed() {
			dst = binary.LittleEndian.AppendUint32(dst, peers)
		} else {
			dst = binary.AppendUvarint(dst, uint64(peers))
		}
	}
	if r.nsack != 0 {
		dst = append(dst, r.nsack)
		for _, s := range r.sack[:r.nsack] {
			dst = appendZigzag(dst, s.Start-uint32(r.ack))
			dst = binary.AppendUvarint(dst, uint64(s.End-s.Start))
		}
	}
	return dst
}

// decodeRecord decodes the record at the start of b and returns its
// length. The record's at is its dt, and its segment fields are as stored:
// resolve makes them whole.
func decodeRecord(b []byte) (r record, n int) {
	d := decoder{b: b}
	head := d.byte()
	dt := int64(d.uvarint())
	if head&headSegment == 0 {
		r.kind = headKinds[head>>headKindShift&3]
		r.cause = uint16(head >> headCauseShift)
		if r.cause == headCauseMore {
			r.cause = uint16(d.uvarint())
		}
		switch r.kind {
		case recState:
			fromTo := d.byte()
			r.from, r.to = State(fromTo>>4), State(fromTo&0xf)
		case recCC:
			r.cwnd = uint32(d.uvarint())
			r.tsVal = uint32(d.uvarint())
		}
		r.at = dt
		return r, d.i
	}
	r = record{at: dt, kind: recSegIn, wscale: -1}
	out := head&headOut != 0
	if out {
		r.kind = recSegOut
	}
	if head&headRetransmit != 0 {
		r.bits |= recRetransmit
	}
	if head&headTimestamps != 0 {
		r.bits |= recTimestamps
	}
	if head&headOurs != 0 {
		r.bits |= recOurs
	}
	if head&headTheirs != 0 {
		r.bits |= recTheirs
	}
	r.flags = header.TCPFlags(d.byte())
	r.seq = seqnum.Value(d.zigzag())
	r.ack = seqnum.Value(d.zigzag())
	r.window = d.uint16()
	r.length = uint32(d.uvarint())
	if out {
		r.cwnd = uint32(d.uvarint())
	}
	if head&headSYNOptions != 0 {
		mss := d.uvarint()
		r.mss = uint16(mss >> 1)
		if mss&1 != 0 {
			r.bits |= recSACKPermitted
		}
		r.wscale = int8(d.byte())
	}
	if head&headTimestamps != 0 {
		ours, peers := d.zigzag(), uint32(0)
		if r.peerTSFixed() {
			peers = d.uint32()
		} else {
			peers = uint32(d.uvarint())
		}
		if out {
			r.tsVal, r.tsEcr = ours, peers
		} else {
			r.tsVal, r.tsEcr = peers, ours
		}
	}
	if head&headSACK != 0 {
		r.nsack = d.byte()
		for i := range r.sack[:r.nsack] {
			r.sack[i].Start = d.zigzag()
			r.sack[i].End = uint32(d.uvarint())
		}
	}
	return r, d.i
}

// resolve turns a decoded segment record's stored fields back into raw
// ones; r.at is already its time.
func (r *record) resolve(b recordBases) {
	if r.kind != recSegIn && r.kind != recSegOut {
		return
	}
	seqBase, ackBase, tsBase := r.bases(b)
	r.seq += seqnum.Value(seqBase)
	r.ack += seqnum.Value(ackBase)
	switch {
	case r.bits&recTimestamps == 0:
	case r.kind == recSegOut:
		r.tsVal += tsBase
	default:
		r.tsEcr += tsBase
	}
	for i := range r.sack[:r.nsack] {
		s := &r.sack[i]
		s.Start += uint32(r.ack)
		s.End += s.Start
	}
}

// peerTSFixed says whether a segment record keeps the peer's timestamp in
// four bytes, as it is unpredictable: all but the TSecr of a segment sent
// without ACK, which is zero (RFC 7323 section 3.2).
func (r *record) peerTSFixed() bool {
	return r.kind == recSegIn || r.flags&header.TCPFlagAck != 0
}

// appendZigzag appends v, read as signed, so that small differences either
// way take one byte.
func appendZigzag(dst []byte, v uint32) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1^uint32(int32(v)>>31)))
}

// decoder reads an encoded record; the ring holds only what encode wrote.
type decoder struct {
	b []byte
	i int
}

func (d *decoder) byte() byte {
	d.i++
	return d.b[d.i-1]
}

func (d *decoder) uvarint() uint64 {
	var v uint64
	for shift := 0; ; shift += 7 {
		c := d.byte()
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
}

func (d *decoder) zigzag() uint32 {
	v := uint32(d.uvarint())
	return v>>1 ^ -(v & 1)
}

func (d *decoder) uint16() uint16 {
	d.i += 2
	return binary.LittleEndian.Uint16(d.b[d.i-2:])
}

func (d *decoder) uint32() uint32 {
	d.i += 4
	return binary.LittleEndian.Uint32(d.b[d.i-4:])
}

// Causes and timer names are string constants of this package; a record
// keeps the index of its string in this table instead of the string. The
// index is read without a lock (every TCB looks its causes up); only a
// cause seen for the first time takes the lock.
var causes = struct {
	index sync.Map // string → uint16
	sync.Mutex
	names []string
}{names: []string{""}}

// maxCauses bounds the table should a cause ever be built at run time.
const maxCauses = 1 << 12

func causeIndex(s string) uint16 {
	if s == "" {
		return 0
	}
	if i, ok := causes.index.Load(s); ok {
		return i.(uint16)
	}
	causes.Lock()
	defer causes.Unlock()
	if i, ok := causes.index.Load(s); ok {
		return i.(uint16)
	}
	if len(causes.names) == maxCauses {
		return 0
	}
	i := uint16(len(causes.names))
	causes.names = append(causes.names, s)
	causes.index.Store(s, i)
	return i
}

func causeName(i uint16) string {
	causes.Lock()
	defer causes.Unlock()
	return causes.names[i]
}

// recorder is a TCB's ring of encoded records, oldest first.
//
// Records differ in length, so the ring is a byte queue: a record is
// appended at the end, and once the ring holds its limit of events each
// one appended drops the oldest from the front. Until the first drop buf
// holds the records and nothing else, so an idle connection pays for the
// bytes of its handshake alone. The first drop reframes the ring: from
// then on buf begins with a ringHeader, the offset of the oldest record,
// and each record is preceded by a byte with its length, so that dropping
// one, on every event of a busy connection, reads a byte rather than
// decoding it. The records dropped before the oldest are reclaimed by
// moving the live ones down when the end is reached.
//
// A record stores its time as the nanoseconds since the record before it,
// and last is the newest one's time: a dump works its way back from it, so
// dropping the oldest record needs no bookkeeping.
type recorder struct {
	buf   []byte
	total uint64 // events recorded; the ring holds min(total, limit)
	last  int64  // time of the newest record, as record.at
}

// ringHeader is the size of the offset that begins a ring once it has
// dropped a record.
const ringHeader = 4

// framed says whether a ring of at most limit records has dropped one,
// and so has its header and records framed by their lengths.
func (r *recorder) framed(limit int) bool {
	return r.total > uint64(max(limit, 0))
}

// put appends an encoded record, made at time at, to a ring of at most
// limit records.
func (r *recorder) put(rec []byte, at int64, limit int) {
	r.total++
	r.last = at
	if !r.framed(limit) {
		if len(r.buf)+len(rec) > cap(r.buf) {
			// Growing by half, not doubling, as idle connections that
			// saw a little more than a handshake are many.
			b := make([]byte, len(r.buf), max(firstRecorderBytes, cap(r.buf)*3/2, len(r.buf)+len(rec)))
			copy(b, r.buf)
			r.buf = b
		}
		r.buf = append(r.buf, rec...)
		return
	}
	if r.total == uint64(limit)+1 {
		r.buf = reframe(r.buf, limit, len(rec))
	} else {
		start := int(binary.LittleEndian.Uint32(r.buf))
		start += 1 + int(r.buf[start])
		live := r.buf[start:]
		switch need := ringHeader + len(live) + 1 + len(rec); {
		case len(r.buf)+1+len(rec) <= cap(r.buf):
			binary.LittleEndian.PutUint32(r.buf, uint32(start))
		case need <= cap(r.buf)*2/3:
			// Moving at most two thirds of the ring down makes room for
			// at least a third of it: two bytes copied per byte recorded.
			r.buf = r.buf[:ringHeader+copy(r.buf[ringHeader:], live)]
			binary.LittleEndian.PutUint32(r.buf, ringHeader)
		default:
			r.buf = regrow(live, need)
		}
	}
	r.buf = append(r.buf, byte(len(rec)))
	r.buf = append(r.buf, rec...)
}

// reframe returns the ring for the first drop: the records of the full
// unframed ring but its oldest, framed, after a header, with room for a
// record of more bytes.
func reframe(unframed []byte, limit, more int) []byte {
	unframed = unframed[recordLen(unframed):]
	b := regrow(nil, ringHeader+limit-1+len(unframed)+1+more)
	for len(unframed) > 0 {
		n := recordLen(unframed)
		b = append(b, byte(n))
		b = append(b, unframed[:n]...)
		unframed = unframed[n:]
	}
	return b
}

// regrow returns a new ring, header included, holding the live framed
// records, with room for need bytes and as many again: put compacts a
// ring while need is within two thirds of it, so a ring that has to grow
// again must have grown by a third.
func regrow(live []byte, need int) []byte {
	b := make([]byte, ringHeader, 2*need)
	binary.LittleEndian.PutUint32(b, ringHeader)
	return append(b, live...)
}

// recordLen is the length of the record at the start of b.
func recordLen(b []byte) int {
	_, n := decodeRecord(b)
	return n
}

// records decodes the ring of a TCB whose limit and bases are given,
// oldest first.
func (r *recorder) records(limit int, b recordBases) []record {
	framed := r.framed(limit)
	start := 0
	if framed {
		start = int(binary.LittleEndian.Uint32(r.buf))
	}
	recs := make([]record, 0, min(r.total, uint64(max(limit, 0))))
	for i := start; i < len(r.buf); {
		if framed {
			i++
		}
		rec, n := decodeRecord(r.buf[i:])
		recs = append(recs, rec)
		i += n
	}
	at := r.last
	for i := len(recs) - 1; i >= 0; i-- {
		dt := recs[i].at
		recs[i].at = at
		at -= dt
		recs[i].resolve(b)
	}
	return recs
}

// lost counts the records the ring has dropped.
func (r *recorder) lost(limit int) uint64 {
	return r.total - min(r.total, uint64(max(limit, 0)))
}

// recording says whether the recorder is on.
func (e *endpoint) recording() bool {
	return e.proto.opts.RecorderEvents > 0
}

// put records rec, made now, in the TCB's ring.
func (e *endpoint) put(rec *record) {
	rec.at = e.monoNow().Sub(e.proto.epoch).Nanoseconds()
	var dt int64
	if e.flight.total > 0 {
		dt = rec.at - e.flight.last
	}
	var buf [maxRecordLen]byte
	e.flight.put(rec.encode(buf[:0], dt, e.recordBases()), rec.at, e.proto.opts.RecorderEvents)
}

// recordSegment records a segment that arrived (out false) or was sent.
func (e *endpoint) recordSegment(seg *Segment, out, retx bool) {
	if !e.recording() {
		return
	}
	rec := record{kind: recSegIn}
	if out {
		rec.kind = recSegOut
		rec.cwnd = uint32(e.cc.Cwnd())
	}
	rec.seq, rec.ack, rec.flags, rec.window = seg.Seq, seg.Ack, seg.Flags, seg.Window
	rec.length = uint32(seg.payloadLen())
	o := &seg.Options
	rec.mss, rec.wscale = o.MSS, o.WindowScale
	rec.nsack = uint8(copy(rec.sack[:], o.SACK[:o.NumSACK]))
	if o.Timestamps {
		rec.bits |= recTimestamps
		rec.tsVal, rec.tsEcr = o.TSVal, o.TSEcr
	}
	if o.SACKPermitted {
		rec.bits |= recSACKPermitted
	}
	if retx {
		rec.bits |= recRetransmit
	}
	if e.iss != 0 {
		rec.bits |= recOurs
	}
	if e.irs != 0 {
		rec.bits |= recTheirs
	}
	e.put(&rec)
}

// recordTimer records the expiry of the named timer.
func (e *endpoint) recordTimer(name string) {
	if e.recording() {
		e.put(&record{kind: recTimer, cause: causeIndex(name)})
	}
}

// recordState records a state transition.
func (e *endpoint) recordState(from, to State, cause string) {
	if e.recording() {
		e.put(&record{kind: recState, from: from, to: to, cause: causeIndex(cause)})
	}
}

// recordCC records a congestion response and the window it left.
func (e *endpoint) recordCC(cause string) {
	if e.recording() {
		e.put(&record{
			kind:  recCC,
			cause: causeIndex(cause),
			cwnd:  uint32(e.cc.Cwnd()),
			tsVal: uint32(min(e.cc.Ssthresh(), 1<<31-1)),
		})
	}
}

// expired is timer.fire that also records a real expiry.
func (e *endpoint) expired(t *timer, name string) bool {
	if !t.fire(e.stack.Clock()) {
		return false
	}
	e.recordTimer(name)
	return true
}

// dumpLocked converts the TCB and its ring into a TCBDump. e.mu is held.
func (e *endpoint) dumpLocked() TCBDump {
	limit := e.proto.opts.RecorderEvents
	d := TCBDump{TCB: e.snapshotLocked(), EventsLost: e.flight.lost(limit), Closed: e.state == StateClosed}
	// Records carry monotonic times; a dump shows wall-clock times, placed
	// by the distance from now on both clocks.
	clock := e.stack.Clock()
	nowWall := clock.Now()
	nowMono := clock.NowMonotonic().Sub(e.proto.epoch).Nanoseconds()
	wall := func(at int64) time.Time { return nowWall.Add(time.Duration(at - nowMono)) }
	if d.Closed && e.closedAt != (tcpip.MonotonicTime{}) {
		d.ClosedAt = wall(e.closedAt.Sub(e.proto.epoch).Nanoseconds())
	}
	recs := e.flight.records(limit, e.recordBases())
	d.Events = make([]Event, 0, len(recs))
	for _, r := range recs {
		ev := Event{At: wall(r.at), Kind: recordKinds[r.kind]}
		switch r.kind {
		case recSegIn, recSegOut:
			ev.Seg = r.segEvent()
			ev.Cwnd = r.cwnd
		case recTimer:
			ev.Timer = causeName(r.cause)
		case recState:
			ev.From, ev.To, ev.Cause = r.from.String(), r.to.String(), causeName(r.cause)
		case recCC:
			ev.Cause, ev.Cwnd, ev.Ssthresh = causeName(r.cause), r.cwnd, r.tsVal
		}
		d.Events = append(d.Events, ev)
	}
	return d
}

func (r *record) segEvent() *SegEvent {
	s := &SegEvent{
		Seq:           uint32(r.seq),
		Ack:           uint32(r.ack),
		Flags:         flagNames(r.flags),
		Window:        r.window,
		Len:           int(r.length),
		Retransmit:    r.bits&recRetransmit != 0,
		MSS:           r.mss,
		WScale:        int(r.wscale),
		SACKPermitted: r.bits&recSACKPermitted != 0,
		HasTS:         r.bits&recTimestamps != 0,
	}
	if s.HasTS {
		s.TSVal, s.TSEcr = r.tsVal, r.tsEcr
	}
	for _, b := range r.sack[:r.nsack] {
		s.SACK = append(s.SACK, [2]uint32{b.Start, b.End})
	}
	return s
}

var flagOrder = []struct {
	f    header.TCPFlags
	name string
}{
	{header.TCPFlagSyn, "SYN"}, {header.TCPFlagFin, "FIN"}, {header.TCPFlagRst, "RST"},
	{header.TCPFlagPsh, "PSH"}, {header.TCPFlagAck, "ACK"}, {header.TCPFlagUrg, "URG"},
	{header.TCPFlagEce, "ECE"}, {header.TCPFlagCwr, "CWR"},
}

// flagNames spells flags as "SYN|ACK".
func flagNames(f header.TCPFlags) string {
	var names []string
	for _, o := range flagOrder {
		if f&o.f != 0 {
			names = append(names, o.name)
		}
	}
	return strings.Join(names, "|")
}

// retire keeps a TCB that reached CLOSED dumpable: the newest
// Options.ClosedTCBs of them stay, oldest dropped first. p.mu is held.
func (p *Protocol) retire(e *endpoint) {
	n := p.opts.ClosedTCBs
	if n <= 0 || p.opts.RecorderEvents <= 0 {
		return
	}
	if len(p.closed) < n {
		p.closed = append(p.closed, e)
		return
	}
	p.closed[p.closedNext] = e
	p.closedNext = (p.closedNext + 1) % n
}

// Dump returns a TCB with its recorded events, live or recently closed.
func (p *Protocol) Dump(id uint64) (TCBDump, bool) {
	p.mu.Lock()
	e := p.tcbs[id]
	if e == nil {
		for _, c := range p.closed {
			if c.id == id {
				e = c
				break
			}
		}
	}
	p.mu.Unlock()
	if e == nil {
		return TCBDump{}, false
	}
	return e.dump(), true
}

// Dumps returns every live TCB and every retained closed one, by id.
func (p *Protocol) Dumps() []TCBDump {
	p.mu.Lock()
	eps := make([]*endpoint, 0, len(p.tcbs)+len(p.closed))
	for _, e := range p.tcbs {
		eps = append(eps, e)
	}
	for _, c := range p.closed {
		if _, live := p.tcbs[c.id]; !live {
			eps = append(eps, c)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(eps, func(a, b *endpoint) int { return cmp.Compare(a.id, b.id) })
	out := make([]TCBDump, 0, len(eps))
	for _, e := range eps {
		out = append(out, e.dump())
	}
	return out
}

func (e *endpoint) dump() TCBDump {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dumpLocked()
}
