package tcpext_test

import (
	"testing"

	"github.com/synfin/synfin/tcpext"
)

// With timestamps in use, a new SYN in TIME-WAIT is judged by its
// timestamp, not its sequence number (RFC 6191 section 2).
func TestTimeWaitReincarnationByTimestamp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		seq      uint32
		tsVal    uint32
		accepted bool
	}{
		{"newer timestamp, smaller ISN", 50, 2000, true},
		{"older timestamp, greater ISN", 1 << 20, 500, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDUT(t, testOptions())
			l := d.listen(7)
			ts := func(val uint32) tcpext.SegmentOptions {
				return tcpext.SegmentOptions{WindowScale: -1, Timestamps: true, TSVal: val}
			}
			o := ts(1000)
			o.MSS = wantMSS
			d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: 100, flags: syn, window: 65535}, o)
			iss := uint32(d.expect(synAck, anySeq, 101).Seq)
			d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: 101, ack: iss + 1, flags: ack, window: 65535}, ts(1000))
			c, _, err := l.Accept(nil)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			d.expect(finAck, uint64(iss+1), 101)
			d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: 101, ack: iss + 2, flags: finAck, window: 65535}, ts(1001))
			d.expect(ack, uint64(iss+2), 102)
			if got := d.state(7, 40000); got != "TIME-WAIT" {
				t.Fatalf("state %q, want TIME-WAIT", got)
			}

			o = ts(tc.tsVal)
			o.MSS = wantMSS
			d.injectOpts(seg{srcPort: 40000, dstPort: 7, seq: tc.seq, flags: syn, window: 65535}, o)
			if tc.accepted {
				d.expect(synAck, anySeq, tc.seq+1)
				if got := d.state(7, 40000); got != "SYN-RECEIVED" {
					t.Fatalf("state %q, want a new SYN-RECEIVED TCB", got)
				}
				return
			}
			d.expect(ack, uint64(iss+2), 102)
			if got := d.state(7, 40000); got != "TIME-WAIT" {
				t.Fatalf("state %q, want TIME-WAIT kept", got)
			}
		})
	}
}
