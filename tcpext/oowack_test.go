package tcpext_test

import (
	"testing"
	"time"
)

// Answers to out-of-window segments without data are rate-limited to one
// per 500 ms, so two TCBs cannot bounce ACKs at each other for ever; an
// out-of-window segment with data is always answered.
func TestOutOfWindowACKsRateLimited(t *testing.T) {
	d := newDUT(t, testOptions())
	const peerISN = 3000
	_, port, iss := d.connect(peerISN)
	outside := seg{srcPort: 80, dstPort: port, seq: peerISN + 1 + 1<<20, ack: iss + 1, flags: ack, window: 65535}
	d.inject(outside)
	d.expect(ack, uint64(iss+1), peerISN+1)
	for range 5 {
		d.inject(outside)
	}
	d.expectNone()
	withData := outside
	withData.payload = []byte("x")
	d.inject(withData)
	d.expect(ack, uint64(iss+1), peerISN+1)
	d.clock.Advance(500 * time.Millisecond)
	d.inject(outside)
	d.expect(ack, uint64(iss+1), peerISN+1)
	if n := d.proto.Stats().OOWACKsSuppressed; n != 5 {
		t.Fatalf("oow_acks_suppressed = %d, want 5", n)
	}
}
