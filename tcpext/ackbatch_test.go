package tcpext_test

import (
	"bytes"
	"testing"
	"time"
)

// With the NIC delivering in batches, in-order data is acknowledged once,
// when the batch ends; a lone segment still waits for the delayed-ACK
// timer, out-of-order data is still acknowledged at once, and no ACK
// stretches over more than 44 segments.
func TestACKPerReceiveBatch(t *testing.T) {
	opts := testOptions()
	opts.DelayedACK = 200 * time.Millisecond
	d := newDUT(t, opts)
	flush := d.proto.BatchACKs(1)
	_, iss := d.accept(7, 1000)
	next := uint32(1001)
	data := func(n int) {
		d.inject(seg{srcPort: 40000, dstPort: 7, seq: next, ack: iss + 1, flags: ack, window: 65535, payload: bytes.Repeat([]byte("x"), n)})
		next += uint32(n)
	}

	for range 5 {
		data(100)
	}
	d.expectNone()
	flush()
	d.expect(ack, uint64(iss+1), next)
	flush()
	d.expectNone()

	data(100)
	flush()
	d.expectNone()
	d.clock.Advance(200 * time.Millisecond)
	d.expect(ack, uint64(iss+1), next)

	for range 43 {
		data(10)
	}
	d.expectNone()
	data(10)
	d.expect(ack, uint64(iss+1), next)
	data(10)
	flush()
	d.expectNone()
	d.clock.Advance(200 * time.Millisecond)
	d.expect(ack, uint64(iss+1), next)

	data(100)
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: next + 100, ack: iss + 1, flags: ack, window: 65535, payload: []byte("y")})
	d.expect(ack, uint64(iss+1), next)
	flush()
	d.expectNone()
}

// A NIC that was not declared batching keeps the ACK for every second
// segment.
func TestACKEverySecondSegmentWithoutBatching(t *testing.T) {
	opts := testOptions()
	opts.DelayedACK = 200 * time.Millisecond
	d := newDUT(t, opts)
	flush := d.proto.BatchACKs(2)
	_, iss := d.accept(7, 1000)
	payload := bytes.Repeat([]byte("x"), 100)
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: 1001, ack: iss + 1, flags: ack, window: 65535, payload: payload})
	d.expectNone()
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: 1101, ack: iss + 1, flags: ack, window: 65535, payload: payload})
	d.expect(ack, uint64(iss+1), 1201)
	flush()
	d.expectNone()
}
