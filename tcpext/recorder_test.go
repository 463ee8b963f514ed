package tcpext_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/synfin/synfin/tcpext"
)

// eventLine is one event in a compact form the tests compare against.
func eventLine(ev tcpext.Event) string {
	switch ev.Kind {
	case tcpext.EventSegIn, tcpext.EventSegOut:
		s := fmt.Sprintf("%s %s len=%d", ev.Kind, ev.Seg.Flags, ev.Seg.Len)
		if ev.Seg.Retransmit {
			s += " retx"
		}
		return s
	case tcpext.EventTimer:
		return "timer " + ev.Timer
	case tcpext.EventState:
		return fmt.Sprintf("state %s>%s", ev.From, ev.To)
	default:
		return "cc " + ev.Cause
	}
}

func eventLines(d tcpext.TCBDump) []string {
	var out []string
	for _, ev := range d.Events {
		out = append(out, eventLine(ev))
	}
	return out
}

func onlyTCB(t *testing.T, p *tcpext.Protocol) uint64 {
	t.Helper()
	tcbs := p.TCBs()
	if len(tcbs) != 1 {
		t.Fatalf("%d TCBs, want 1", len(tcbs))
	}
	return tcbs[0].ID
}

// The recorder holds a passive open from the listener's SYN on, a
// retransmission timeout with its congestion response, and stays dumpable
// after a RST closed the connection.
func TestRecorderPassiveOpenRTOAndReset(t *testing.T) {
	d := newDUT(t, testOptions())
	const peerISN = 1000
	c, iss := d.accept(7, peerISN)
	var id uint64
	for _, tcb := range d.proto.TCBs() {
		if tcb.State == "ESTABLISHED" {
			id = tcb.ID
		}
	}
	write(t, c, []byte("hello"))
	d.expect(ack|psh, uint64(iss+1), peerISN+1)
	d.clock.Advance(200 * time.Millisecond)
	d.expect(ack|psh, uint64(iss+1), peerISN+1)
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: peerISN + 1, flags: rst})
	if got := d.state(7, 40000); got != "" {
		t.Fatalf("TCB in %s after RST, want gone", got)
	}

	dump, ok := d.proto.Dump(id)
	if !ok {
		t.Fatalf("Dump(%d) of the reset connection: not found", id)
	}
	want := []string{
		"seg_in SYN len=0",
		"state LISTEN>SYN-RECEIVED",
		"seg_out SYN|ACK len=0",
		"seg_in ACK len=0",
		"state SYN-RECEIVED>ESTABLISHED",
		"seg_out PSH|ACK len=5",
		"timer retransmit",
		"cc rto",
		"seg_out PSH|ACK len=5 retx",
		"seg_in RST len=0",
		"state ESTABLISHED>CLOSED",
	}
	if got := eventLines(dump); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !dump.Closed || dump.ClosedAt.IsZero() || dump.TCB.State != "CLOSED" {
		t.Fatalf("closed=%v closed_at=%v state=%s, want a closed dump", dump.Closed, dump.ClosedAt, dump.TCB.State)
	}
	syn := dump.Events[0].Seg
	if syn.Seq != peerISN || syn.MSS != wantMSS || syn.Window != 65535 {
		t.Fatalf("recorded SYN %+v, want seq %d mss %d window 65535", syn, peerISN, wantMSS)
	}
	if sa := dump.Events[2].Seg; sa.Seq != iss || sa.Ack != peerISN+1 || sa.MSS == 0 {
		t.Fatalf("recorded SYN,ACK %+v, want seq %d ack %d with MSS", sa, iss, peerISN+1)
	}
	rto := dump.Events[7]
	if rto.Cwnd == 0 || rto.Ssthresh == 0 || rto.Cwnd > rto.Ssthresh {
		t.Fatalf("cc rto event cwnd=%d ssthresh=%d, want the loss window below ssthresh", rto.Cwnd, rto.Ssthresh)
	}
	if !dump.Events[0].At.Before(dump.Events[6].At) || dump.Events[6].At.Sub(dump.Events[5].At) != 200*time.Millisecond {
		t.Fatalf("event times %v → %v: the RTO fired 200 ms after the send", dump.Events[5].At, dump.Events[6].At)
	}

	// The JSON schema the shell serves.
	b, err := json.Marshal(dump)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"tcb":{"id":`, `"closed":true`, `"kind":"seg_in"`, `"flags":"RST"`, `"retransmit":true`, `"events_lost":0`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("dump JSON lacks %s", key)
		}
	}
	all := d.proto.Dumps()
	if len(all) != 2 || all[1].TCB.ID != id || !all[1].Closed || all[0].TCB.State != "LISTEN" {
		t.Fatalf("Dumps: %d dumps, want the listener then the closed connection", len(all))
	}
}

// The ring keeps the newest events and counts the ones it overwrote; the
// closed TCBs kept are the newest ones.
func TestRecorderBounds(t *testing.T) {
	opts := testOptions()
	opts.RecorderEvents = 4
	opts.ClosedTCBs = 2
	d := newDUT(t, opts)
	var ids []uint64
	for i := range 3 {
		peerISN := uint32(1000 * (i + 1))
		_, port, iss := d.connect(peerISN)
		ids = append(ids, onlyTCB(t, d.proto))
		d.inject(seg{srcPort: 80, dstPort: port, seq: peerISN + 1, ack: iss + 1, flags: rst})
	}
	if _, ok := d.proto.Dump(ids[0]); ok {
		t.Errorf("the oldest closed TCB is still dumpable with ClosedTCBs=2")
	}
	for _, id := range ids[1:] {
		dump, ok := d.proto.Dump(id)
		if !ok {
			t.Fatalf("closed TCB %d not dumpable", id)
		}
		// Of state, SYN out, SYN,ACK in, state, ACK out, RST in and
		// state, the last four stay.
		got := eventLines(dump)
		want := []string{"state SYN-SENT>ESTABLISHED", "seg_out ACK len=0", "seg_in RST len=0", "state ESTABLISHED>CLOSED"}
		if strings.Join(got, ",") != strings.Join(want, ",") || dump.EventsLost != 3 {
			t.Fatalf("events %q lost %d, want the newest 4 ending in the RST and its CLOSED, 3 lost", got, dump.EventsLost)
		}
	}
}

// Recording can be turned off: dumps then hold the TCB but no events.
func TestRecorderOff(t *testing.T) {
	opts := testOptions()
	opts.RecorderEvents = -1
	d := newDUT(t, opts)
	d.connect(7000)
	id := onlyTCB(t, d.proto)
	dump, ok := d.proto.Dump(id)
	if !ok || len(dump.Events) != 0 || dump.TCB.State != "ESTABLISHED" {
		t.Fatalf("dump ok=%v events=%d state=%s, want the TCB without events", ok, len(dump.Events), dump.TCB.State)
	}
}
