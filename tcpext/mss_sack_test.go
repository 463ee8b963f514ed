package tcpext_test

import (
	"testing"
	"time"

	"github.com/synfin/synfin/nic/impair"
	"github.com/synfin/synfin/tcpext"
)

// Options in use come out of the MSS (RFC 9293 section 3.7.1: the
// effective send MSS is the MSS less the TCP options of the segment). A
// full-sized data segment that also carries SACK blocks — the normal case
// for a bidirectional transfer over a lossy link, where each side's data
// segments acknowledge the other side's out-of-order data — must still fit
// the MTU: at MTU 1500 an oversized one leaves as two IP fragments, and at
// MTU 65535 it cannot be sent at all (the IPv4 total length overflows and
// the IP layer refuses it, counted in tcpext's SendErrors).
func TestSegmentsWithSACKFitTheMTU(t *testing.T) {
	for _, mtu := range []uint32{1500, 65535} {
		t.Run(map[uint32]string{1500: "mtu=1500", 65535: "mtu=65535"}[mtu], func(t *testing.T) {
			t.Parallel()
			link := func(seed uint64) impair.Config {
				return impair.Config{Seed: seed, Loss: 0.03, Delay: time.Millisecond, Rate: 50_000_000}
			}
			w := newImpairedWire(t, impairedWireOptions{dut: testOptions(), mtu: mtu, toRef: link(1), toDUT: link(2)})
			dutConn, refConn := w.connect(w.dut, w.ref, dutAddr, 7)
			size := int64(2 << 20)
			if mtu > 1500 {
				size = 16 << 20
			}
			w.bulk(dutConn, refConn, size, 7, time.Minute)
			w.mu.Lock()
			frags, first := w.fragments, w.firstFrag
			w.mu.Unlock()
			st := tcpext.ProtocolOf(w.dut).Stats()
			if frags != 0 || st.SendErrors != 0 {
				t.Errorf("tcpext sent %d IP fragments (first %s) and failed to send %d segments: segments with SACK blocks exceed the MTU", frags, first, st.SendErrors)
			}
		})
	}
}
