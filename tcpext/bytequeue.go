package tcpext

// byteQueue is a FIFO of bytes over one backing array, for the send and
// receive buffers: consuming from the front is O(1), and the live bytes
// move down only when the dead space before them is at least as large as
// they are, so every byte is copied O(1) times however the reads and
// writes are sized.
type byteQueue struct {
	buf  []byte // buf[head:] is the queue
	head int
}

func (q *byteQueue) len() int { return len(q.buf) - q.head }

// bytes returns the queued bytes; they stay valid until the next grow.
func (q *byteQueue) bytes() []byte { return q.buf[q.head:] }

// grow appends n bytes and returns them for the caller to fill.
func (q *byteQueue) grow(n int) []byte {
	if cap(q.buf)-len(q.buf) < n {
		live := q.len()
		if q.head >= live && cap(q.buf)-live >= n {
			copy(q.buf, q.buf[q.head:])
		} else {
			nb := make([]byte, live, 2*(live+n))
			copy(nb, q.buf[q.head:])
			q.buf = nb
		}
		q.buf, q.head = q.buf[:live], 0
	}
	old := len(q.buf)
	q.buf = q.buf[:old+n]
	return q.buf[old:]
}

// unGrow gives back the last n bytes of a grow that were not filled.
func (q *byteQueue) unGrow(n int) { q.buf = q.buf[:len(q.buf)-n] }

// consume drops n bytes from the front.
func (q *byteQueue) consume(n int) {
	q.head += n
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
}

// release empties the queue and lets its memory go.
func (q *byteQueue) release() { q.buf, q.head = nil, 0 }
