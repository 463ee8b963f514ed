package tcpext

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// ACKs per receive batch. A driver that takes frames from its NIC in
// batches (a ring block, a NAPI-like budget) can have the in-order data of
// one batch acknowledged once, at the batch's end, instead of every second
// segment (delack.go): one ACK then covers what the batch brought, as with
// Linux's GRO handing TCP one super-segment per batch. It halves the
// packets a bulk transfer puts on the wire and the work of both ends, and
// the ACK still leaves as soon as the batch is processed, so the sender's
// clock is not held back. RFC 9293 section 3.8.6.3 and RFC 5681 section 4.2
// ask for an ACK at least every second full-sized segment as a SHOULD; the
// bound below keeps the stretch within what GRO does.

// maxBatchedSegments bounds how many in-order segments one batched ACK may
// cover, however long the driver's batch: about 64 KiB at MTU 1500, the
// size of one GRO super-segment.
const maxBatchedSegments = 44

// ackBatcher holds the TCBs that owe an ACK until the batch ends.
type ackBatcher struct {
	// nics has bit n set when NIC n delivers in batches (NICs 1 to 63).
	nics atomic.Uint64

	// mu guards pending, the TCBs queued since the last flush, and
	// spare, an emptied queue to reuse. A flush owns the queue it took
	// until it hands it back as spare, so flushes from several drivers
	// may run at once. mu is taken under a TCB's mu, never around it.
	mu      sync.Mutex
	pending []*endpoint
	spare   []*endpoint
}

// BatchACKs makes in-order data that arrives through nic acknowledged at the
// end of the driver's receive batch: the driver calls the returned flush
// once it has delivered a batch of frames, from the goroutine that
// delivered them. NICs numbered above 63 are not batched.
func (p *Protocol) BatchACKs(nic tcpip.NICID) (flush func()) {
	if nic > 0 && nic < 64 {
		p.acks.nics.Or(1 << nic)
	}
	return p.flushACKs
}

// batches reports whether frames from nic are delivered in batches.
func (b *ackBatcher) batches(nic tcpip.NICID) bool {
	return nic < 64 && b.nics.Load()&(1<<nic) != 0
}

// deferACK queues e's ACK for the end of the batch, or reports false if it
// is not to wait. e.mu is held.
func (e *endpoint) deferACK() bool {
	if !e.rxBatched || e.ackOwed >= maxBatchedSegments {
		return false
	}
	if !e.ackQueued {
		e.ackQueued = true
		b := &e.proto.acks
		b.mu.Lock()
		b.pending = append(b.pending, e)
		b.mu.Unlock()
	}
	return true
}

// flushACKs sends the ACKs the last batch owes.
func (p *Protocol) flushACKs() {
	b := &p.acks
	b.mu.Lock()
	q := b.pending
	b.pending, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	for i, e := range q {
		e.mu.Lock()
		e.ackQueued = false
		if e.ackOwed >= ackEvery && e.state.synchronized() {
			e.sendACK()
		}
		e.unlock()
		q[i] = nil
	}
	b.mu.Lock()
	b.spare = q[:0]
	b.mu.Unlock()
}
