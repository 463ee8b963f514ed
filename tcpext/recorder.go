package tcpext

import (
	"cmp"
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
// Recording sits on the segment path, so a record is a fixed-size value
// written into a ring under the TCB's lock: no allocation once the ring has
// grown, and no strings built until someone asks for a dump. The ring grows
// fourfold up to its limit, so an idle connection that saw a handshake
// costs a few records, not the whole ring.

// Defaults of the recorder's bounds (Options.RecorderEvents, ClosedTCBs).
const (
	defaultRecorderEvents = 256
	defaultClosedTCBs     = 64
	// firstRecorderCap is the ring's first allocation: an idle connection
	// has seen its handshake, five events on either side, and no more.
	firstRecorderCap = 5
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
	// delayed-ack, keepalive, time-wait or fin-wait-2.
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

// record is the compact form of an Event: 80 bytes, no pointers, so the
// ring costs the garbage collector nothing to scan.
type record struct {
	at       int64 // stack's monotonic clock, ns
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
)

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

// recorder is a TCB's ring of records.
type recorder struct {
	recs []record
	next int // where the next record goes once the ring is full
	lost uint64
}

// slot returns the record to fill next, growing the ring up to limit and
// then overwriting the oldest. It returns nil when recording is off.
func (r *recorder) slot(limit int) *record {
	if limit <= 0 {
		return nil
	}
	if len(r.recs) < cap(r.recs) {
		r.recs = r.recs[:len(r.recs)+1]
		return &r.recs[len(r.recs)-1]
	}
	if len(r.recs) < limit {
		// Growing fourfold, a short connection (some fifteen events)
		// allocates twice: once for its handshake, once for the rest.
		grown := make([]record, len(r.recs)+1, min(max(4*len(r.recs), firstRecorderCap), limit))
		copy(grown, r.recs)
		r.recs = grown
		return &r.recs[len(r.recs)-1]
	}
	rec := &r.recs[r.next]
	r.next = (r.next + 1) % len(r.recs)
	r.lost++
	return rec
}

// ordered returns the records oldest first.
func (r *recorder) ordered() []record {
	out := make([]record, 0, len(r.recs))
	out = append(out, r.recs[r.next:]...)
	return append(out, r.recs[:r.next]...)
}

func (e *endpoint) record(kind recordKind) *record {
	rec := e.flight.slot(e.proto.opts.RecorderEvents)
	if rec != nil {
		*rec = record{kind: kind, at: e.monoNow().Sub(e.proto.epoch).Nanoseconds()}
	}
	return rec
}

// recordSegment records a segment that arrived (out false) or was sent.
func (e *endpoint) recordSegment(seg *Segment, out, retx bool) {
	kind := recSegIn
	if out {
		kind = recSegOut
	}
	rec := e.record(kind)
	if rec == nil {
		return
	}
	rec.seq, rec.ack, rec.flags, rec.window = seg.Seq, seg.Ack, seg.Flags, seg.Window
	rec.length = uint32(len(seg.Payload))
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
	if out {
		rec.cwnd = uint32(e.cc.Cwnd())
	}
}

// recordTimer records the expiry of the named timer.
func (e *endpoint) recordTimer(name string) {
	if rec := e.record(recTimer); rec != nil {
		rec.cause = causeIndex(name)
	}
}

// recordState records a state transition.
func (e *endpoint) recordState(from, to State, cause string) {
	if rec := e.record(recState); rec != nil {
		rec.from, rec.to, rec.cause = from, to, causeIndex(cause)
	}
}

// recordCC records a congestion response and the window it left.
func (e *endpoint) recordCC(cause string) {
	if rec := e.record(recCC); rec != nil {
		rec.cause = causeIndex(cause)
		rec.cwnd = uint32(e.cc.Cwnd())
		rec.tsVal = uint32(min(e.cc.Ssthresh(), 1<<31-1))
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
	d := TCBDump{TCB: e.snapshotLocked(), EventsLost: e.flight.lost, Closed: e.state == StateClosed}
	// Records carry monotonic times; a dump shows wall-clock times, placed
	// by the distance from now on both clocks.
	clock := e.stack.Clock()
	nowWall := clock.Now()
	nowMono := clock.NowMonotonic().Sub(e.proto.epoch).Nanoseconds()
	wall := func(at int64) time.Time { return nowWall.Add(time.Duration(at - nowMono)) }
	if d.Closed && e.closedAt != (tcpip.MonotonicTime{}) {
		d.ClosedAt = wall(e.closedAt.Sub(e.proto.epoch).Nanoseconds())
	}
	d.Events = make([]Event, 0, len(e.flight.recs))
	for _, r := range e.flight.ordered() {
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
