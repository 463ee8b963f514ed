package tcpext

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// byteQueue behaves as a FIFO whatever the sizes of grows and consumes,
// and its backing array stays within twice the most it ever held.
func TestByteQueueFIFO(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var q byteQueue
	var model []byte
	next := byte(0)
	maxLive := 0
	for i := 0; i < 20000; i++ {
		if r.IntN(2) == 0 && len(model) < 1<<16 {
			n := r.IntN(3000)
			b := q.grow(n)
			for j := range b {
				b[j] = next
				model = append(model, next)
				next++
			}
			if unused := r.IntN(n + 1); unused > 0 && r.IntN(4) == 0 {
				q.unGrow(unused)
				model = model[:len(model)-unused]
				next -= byte(unused)
			}
		} else if len(model) > 0 {
			n := r.IntN(len(model) + 1)
			q.consume(n)
			model = model[n:]
		}
		if !bytes.Equal(q.bytes(), model) {
			t.Fatalf("step %d: queue holds %d bytes that differ from the %d expected", i, q.len(), len(model))
		}
		maxLive = max(maxLive, q.len())
		if cap(q.buf) > 2*(maxLive+3000) {
			t.Fatalf("step %d: backing array of %d bytes, never more than %d queued", i, cap(q.buf), maxLive)
		}
	}
}
