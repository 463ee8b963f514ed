package tcpext_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/synfin/synfin/nic/impair"
	"github.com/synfin/synfin/tcpext"
)

// The integrity requirement, in-process: 64 MiB each way at once
// between tcpext and gVisor's TCP through an impaired wire, at 0 %, 1 % and
// 5 % loss, each with reordering, 1 % duplication and 0.2 % corruption,
// for each of tcpext's congestion controls. What arrives must hash as what
// was sent, up to a clean EOF each way, and both transfers must finish.
//
// The link runs at 400 Mbit/s with 1 ms of delay plus up to 1 ms of
// jitter. At MTU 65535 that is more than a full segment's 1.3 ms of
// serialisation, so neighbouring segments often overtake each other; the
// smaller MTU 1500 runs (less data, to keep the suite quick) reorder
// segments dozens deep and exercise the SACK scoreboard with many holes.
func TestIntegrityGVisor(t *testing.T) {
	for _, link := range []struct {
		mtu  uint32
		size int64
	}{{65535, 64 << 20}, {1500, 4 << 20}} {
		for _, loss := range []float64{0, 0.01, 0.05} {
			for _, cc := range []string{"newreno", "cubic"} {
				name := fmt.Sprintf("mtu=%d/loss=%g%%/%s", link.mtu, loss*100, cc)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					integrity(t, link.mtu, link.size, loss, cc)
				})
			}
		}
	}
}

func integrity(t *testing.T, mtu uint32, size int64, loss float64, cc string) {
	impairment := func(seed uint64) impair.Config {
		return impair.Config{
			Seed:      seed,
			Loss:      loss,
			Delay:     time.Millisecond,
			Jitter:    time.Millisecond,
			Duplicate: 0.01,
			Corrupt:   0.002,
			Rate:      50_000_000,
		}
	}
	opts := testOptions()
	opts.CongestionControl = cc
	seed := uint64(loss*1000)<<8 | uint64(len(cc))<<1 | uint64(mtu&1)
	w := newImpairedWire(t, impairedWireOptions{
		dut:   opts,
		mtu:   mtu,
		toRef: impairment(2 * seed),
		toDUT: impairment(2*seed + 1),
	})
	// Alternate which side opens.
	var dutConn, refConn *gonet.TCPConn
	if cc == "cubic" {
		refConn, dutConn = w.connect(w.ref, w.dut, peerAddr, 80)
	} else {
		dutConn, refConn = w.connect(w.dut, w.ref, dutAddr, 7)
	}
	start := time.Now()
	w.bulk(dutConn, refConn, size, seed, 3*time.Minute)
	real, simulated := time.Since(start), w.clock.Elapsed()
	steps, timerSteps := w.stepsTaken()
	w.waitAllClosed(time.Minute)
	s, r := w.toRef.Impairer().Stats(), w.toDUT.Impairer().Stats()
	t.Logf("%d MiB each way in %v real, %v simulated, %d clock steps (%d to a stack's timer)\n  dut→ref %+v\n  ref→dut %+v\n  tcpext %+v",
		size>>20, real.Round(time.Millisecond), simulated.Round(time.Millisecond), steps, timerSteps, s, r,
		tcpext.ProtocolOf(w.dut).Stats())
	if r.Corrupted+s.Corrupted == 0 || r.Duplicated+s.Duplicated == 0 || (loss > 0 && r.Dropped+s.Dropped == 0) {
		t.Errorf("the wire did not impair as configured")
	}
}

// progress counts the bytes one direction has delivered so far.
type progress struct{ n atomic.Int64 }

// bulk sends size bytes each way at once over a (tcpext) and b (gVisor),
// as bulkSizes does.
func (w *impairedWire) bulk(a, b *gonet.TCPConn, size int64, seed uint64, limit time.Duration) {
	w.t.Helper()
	w.bulkSizes(a, b, size, size, seed, limit)
}

// bulkSizes sends aSize bytes from a (tcpext) to b (gVisor) and bSize
// bytes back, at once, half-closes each direction when it is sent, and
// checks that each side read exactly what the other wrote, by SHA-256, up
// to EOF. It fails with a diagnosis if the transfers do not finish within
// the real-time limit, or if they make no progress for five simulated
// minutes, which is longer than any backoff of a connection still alive
// (tcpext's RTO stops at 60 s, gVisor's at 120 s).
func (w *impairedWire) bulkSizes(a, b *gonet.TCPConn, aSize, bSize int64, seed uint64, limit time.Duration) {
	w.t.Helper()
	type result struct {
		what string
		sum  [sha256.Size]byte
		n    int64
		err  error
	}
	results := make(chan result, 4)
	var aToB, bToA progress
	send := func(what string, c *gonet.TCPConn, size int64, stream uint64) {
		sum, err := writeStream(c, size, seed, stream)
		if err == nil {
			err = c.CloseWrite()
		}
		results <- result{what: what, sum: sum, n: size, err: err}
	}
	recv := func(what string, c *gonet.TCPConn, p *progress) {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(h, progressWriter{p}), c)
		var sum [sha256.Size]byte
		h.Sum(sum[:0])
		results <- result{what: what, sum: sum, n: n, err: err}
	}
	go send("tcpext sent", a, aSize, 1)
	go recv("gVisor received", b, &aToB)
	go send("gVisor sent", b, bSize, 2)
	go recv("tcpext received", a, &bToA)

	got := make(map[string]result)
	deadline := time.After(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastProgress, lastAt := int64(-1), time.Duration(0)
	var failure string
	for len(got) < 4 && failure == "" {
		select {
		case r := <-results:
			got[r.what] = r
			if r.err != nil {
				failure = fmt.Sprintf("%s: %v", r.what, r.err)
			}
		case <-deadline:
			failure = fmt.Sprintf("not finished after %v of real time", limit)
		case <-tick.C:
			p := aToB.n.Load() + bToA.n.Load()
			now := w.clock.Elapsed()
			if p != lastProgress {
				lastProgress, lastAt = p, now
			} else if now-lastAt > 5*time.Minute {
				failure = fmt.Sprintf("stalled: no data delivered for %v of simulated time", now-lastAt)
			}
		}
	}
	if failure != "" {
		diag := w.diagnosis()
		// Unblock the transfer goroutines before the stacks go away.
		a.Close()
		b.Close()
		w.t.Fatalf("%s\ndelivered so far: tcpext→gVisor %d of %d, gVisor→tcpext %d of %d\n%s",
			failure, aToB.n.Load(), aSize, bToA.n.Load(), bSize, diag)
	}
	for _, pair := range [][2]string{{"tcpext sent", "gVisor received"}, {"gVisor sent", "tcpext received"}} {
		s, r := got[pair[0]], got[pair[1]]
		if r.n != s.n || r.sum != s.sum {
			w.t.Errorf("%s %d bytes (sha256 %x), %s %d bytes (sha256 %x)", pair[0], s.n, s.sum, pair[1], r.n, r.sum)
		}
	}
	if w.t.Failed() {
		w.t.Log(w.diagnosis())
	}
	a.Close()
	b.Close()
}

// writeStream writes size pseudo-random bytes, drawn from a ChaCha8
// stream keyed by seed and stream, and returns their SHA-256.
func writeStream(w io.Writer, size int64, seed, stream uint64) ([sha256.Size]byte, error) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], stream)
	src := rand.NewChaCha8(key)
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var sum [sha256.Size]byte
	for left := size; left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		_, _ = src.Read(chunk) // never fails
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			return sum, fmt.Errorf("after %d bytes: %w", size-left, err)
		}
		left -= int64(len(chunk))
	}
	h.Sum(sum[:0])
	return sum, nil
}

type progressWriter struct{ p *progress }

func (pw progressWriter) Write(b []byte) (int, error) {
	pw.p.n.Add(int64(len(b)))
	return len(b), nil
}
