package mgmt

import (
	"time"

	"github.com/synfin/synfin/tcpext"
)

// fakeDumps is a DumpSource over a fixed list.
type fakeDumps []tcpext.TCBDump

func (f fakeDumps) Dumps() []tcpext.TCBDump { return f }

func (f fakeDumps) Dump(id uint64) (tcpext.TCBDump, bool) {
	for _, d := range f {
		if d.TCB.ID == id {
			return d, true
		}
	}
	return tcpext.TCBDump{}, false
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// resetDump is a closed connection from the peer to port 7: handshake,
// a retransmitted data segment, then a RST from the peer.
var resetDump = tcpext.TCBDump{
	TCB: tcpext.TCBInfo{
		ID: 7, State: "CLOSED", Local: "198.18.0.2:7", Remote: "198.18.0.1:40000",
		ISS: 5000, IRS: 9000, History: []tcpext.HistoryItem{},
	},
	Closed:   true,
	ClosedAt: t0.Add(time.Second),
	Events: []tcpext.Event{
		{At: t0, Kind: tcpext.EventSegIn, Seg: &tcpext.SegEvent{Seq: 9000, Flags: "SYN", Window: 64240, MSS: 1460, WScale: 7, SACKPermitted: true, HasTS: true, TSVal: 1, TSEcr: 0}},
		{At: t0, Kind: tcpext.EventState, From: "LISTEN", To: "SYN-RECEIVED", Cause: "SYN"},
		{At: t0.Add(10 * time.Microsecond), Kind: tcpext.EventSegOut, Seg: &tcpext.SegEvent{Seq: 5000, Ack: 9001, Flags: "SYN|ACK", Window: 65535, MSS: 1460, WScale: 5, SACKPermitted: true, HasTS: true, TSVal: 77, TSEcr: 1}},
		{At: t0.Add(time.Millisecond), Kind: tcpext.EventSegIn, Seg: &tcpext.SegEvent{Seq: 9001, Ack: 5001, Flags: "ACK", Window: 502, WScale: -1, HasTS: true, TSVal: 2, TSEcr: 77}},
		{At: t0.Add(time.Millisecond), Kind: tcpext.EventState, From: "SYN-RECEIVED", To: "ESTABLISHED", Cause: "ACK of SYN"},
		{At: t0.Add(2 * time.Millisecond), Kind: tcpext.EventSegOut, Cwnd: 14600, Seg: &tcpext.SegEvent{Seq: 5001, Ack: 9001, Flags: "ACK|PSH", Window: 2048, Len: 1000, WScale: -1, HasTS: true, TSVal: 78, TSEcr: 2}},
		{At: t0.Add(202 * time.Millisecond), Kind: tcpext.EventTimer, Timer: "retransmit"},
		{At: t0.Add(202 * time.Millisecond), Kind: tcpext.EventCC, Cause: "rto", Cwnd: 1460, Ssthresh: 2920},
		{At: t0.Add(202 * time.Millisecond), Kind: tcpext.EventSegOut, Cwnd: 1460, Seg: &tcpext.SegEvent{Seq: 5001, Ack: 9001, Flags: "ACK|PSH", Window: 2048, Len: 1000, Retransmit: true, WScale: -1, HasTS: true, TSVal: 278, TSEcr: 2}},
		{At: t0.Add(time.Second), Kind: tcpext.EventSegIn, Seg: &tcpext.SegEvent{Seq: 9001, Flags: "RST", WScale: -1}},
		{At: t0.Add(time.Second), Kind: tcpext.EventState, From: "ESTABLISHED", To: "CLOSED", Cause: "RST"},
	},
}

// liveDump is the live TCB 42 of sampleTCBs with no events yet.
var liveDump = tcpext.TCBDump{TCB: sampleTCBs[1], Events: []tcpext.Event{}}

var sampleDumps = fakeDumps{resetDump, liveDump}
