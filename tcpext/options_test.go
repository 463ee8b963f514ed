package tcpext_test

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/synfin/synfin/tcpext"
)

// acceptWithOptions runs a passive open on port 7 whose SYN carries opts
// (and MSS 1460) and whose final ACK carries ackOpts.
func (d *dut) acceptWithOptions(opts, ackOpts tcpext.SegmentOptions) (tcpip.Endpoint, uint32) {
	d.t.Helper()
	l := d.listen(7)
	opts.MSS = wantMSS
	d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: 100, flags: syn, window: 65535}, opts)
	sa := d.expect(synAck, anySeq, 101)
	if sa.Window != 65535 {
		d.t.Fatalf("SYN,ACK window %d: a SYN's window is never scaled", sa.Window)
	}
	iss := uint32(sa.Seq)
	d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: 101, ack: iss + 1, flags: ack, window: 1}, ackOpts)
	c, _, err := l.Accept(nil)
	if err != nil {
		d.t.Fatal(err)
	}
	return c, iss
}

// Window scale at the maximum shift: the peer's windows are multiplied by
// 2^14; a shift above 14 is taken as 14 (RFC 7323 section 2.3); ours
// covers the 4 MiB the receive buffer may be tuned up to, and the window
// it scales is the 1 MiB buffer it starts with.
func TestWindowScaleShift14(t *testing.T) {
	for _, shift := range []int8{14, 15} {
		d := newDUT(t, testOptions())
		o := tcpext.SegmentOptions{WindowScale: shift}
		c, iss := d.acceptWithOptions(o, tcpext.SegmentOptions{WindowScale: -1})
		tcb := d.proto.TCBs()[1]
		if tcb.SndWScale != 14 || tcb.RcvWScale != 7 {
			t.Fatalf("offered %d: snd_wscale %d rcv_wscale %d, want 14 and 7", shift, tcb.SndWScale, tcb.RcvWScale)
		}
		if tcb.SndWnd != 1<<14 {
			t.Fatalf("window field 1 at shift 14: snd_wnd %d, want 16384", tcb.SndWnd)
		}
		write(t, c, []byte("x"))
		s := d.expect(ack|psh, uint64(iss+1), 101)
		if s.Window != 1<<20>>7 {
			t.Fatalf("our window field %d, want the 1 MiB buffer >> 7 (%d)", s.Window, 1<<20>>7)
		}
	}
}

// A pure duplicate ACK overtaken by a newer segment is not an old
// duplicate: PAWS lets it through silently, as Linux does; older by more
// than an RTO, or carrying data, it is dropped and answered.
func TestPAWSLetsDisorderedACKThrough(t *testing.T) {
	d := newDUT(t, testOptions())
	ts := func(v uint32) tcpext.SegmentOptions {
		return tcpext.SegmentOptions{WindowScale: -1, Timestamps: true, TSVal: v}
	}
	_, iss := d.acceptWithOptions(ts(1000), ts(1000))
	d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: 101, ack: iss + 1, flags: ack, window: 65535, payload: []byte("new")}, ts(1100))
	d.expect(ack, uint64(iss+1), 104)
	// The reordered pure ACK repeats the last window: it updates nothing.
	d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: 104, ack: iss + 1, flags: ack, window: 65535}, ts(1050))
	d.expectNone()
	if tcb := d.proto.TCBs()[1]; tcb.Counters.PAWSDropped != 0 || tcb.TSRecent != 1100 {
		t.Fatalf("paws_dropped=%d ts_recent=%d after a disordered ACK, want 0 and 1100", tcb.Counters.PAWSDropped, tcb.TSRecent)
	}
	// Older than the RTO (200 ms, 200 timestamp ticks): dropped.
	d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: 104, ack: iss + 1, flags: ack, window: 65535}, ts(800))
	d.expect(ack, uint64(iss+1), 104)
	if tcb := d.proto.TCBs()[1]; tcb.Counters.PAWSDropped != 1 {
		t.Fatalf("paws_dropped=%d after an ACK older than an RTO, want 1", tcb.Counters.PAWSDropped)
	}
}

// PAWS: a segment whose timestamp is older than TS.Recent is an old
// duplicate, dropped and answered with an ACK (RFC 7323 section 5.3).
func TestPAWSDropsOldTimestamp(t *testing.T) {
	d := newDUT(t, testOptions())
	ts := func(v uint32) tcpext.SegmentOptions {
		return tcpext.SegmentOptions{WindowScale: -1, Timestamps: true, TSVal: v}
	}
	c, iss := d.acceptWithOptions(ts(1000), ts(1000))
	data := func(seq, tsv uint32, p string) {
		d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: seq, ack: iss + 1, flags: ack, window: 65535, payload: []byte(p)}, ts(tsv))
	}
	data(101, 1001, "new")
	if s := d.expect(ack, uint64(iss+1), 104); !s.Options.Timestamps || s.Options.TSEcr != 1001 {
		t.Fatalf("ACK echoes %d (timestamps %v), want TSecr 1001", s.Options.TSEcr, s.Options.Timestamps)
	}
	data(104, 900, "old")
	d.expect(ack, uint64(iss+1), 104)
	tcb := d.proto.TCBs()[1]
	if tcb.Counters.PAWSDropped != 1 || tcb.RcvNxt != 104 || tcb.TSRecent != 1001 {
		t.Fatalf("paws_dropped=%d rcv_nxt=%d ts_recent=%d, want 1, 104, 1001", tcb.Counters.PAWSDropped, tcb.RcvNxt, tcb.TSRecent)
	}
	var got bytes.Buffer
	if _, err := c.Read(&got, tcpip.ReadOptions{}); err != nil || got.String() != "new" {
		t.Fatalf("read %q, %v: the old segment's data must not be delivered", got.String(), err)
	}
}
