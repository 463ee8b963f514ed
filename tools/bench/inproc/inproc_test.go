package inproc

import (
	"fmt"
	"testing"
	"time"
)

// The benchmarks of issue 4, each for tcpext and gVisor's TCP:
//
//	go test -run '^$' -bench . ./tools/bench/inproc
func BenchmarkBulk(b *testing.B) {
	for _, mtu := range []uint32{1500, 65535} {
		for _, impl := range []string{TCPExt, GVisor} {
			b.Run(fmt.Sprintf("%s/mtu=%d", impl, mtu), func(b *testing.B) {
				benchBulk(b, impl, Options{MTU: mtu})
			})
		}
	}
}

// benchBulk moves b.N 64 KiB writes one way and reports the CPU time per
// GB besides the throughput.
func benchBulk(b *testing.B, impl string, opts Options) {
	const chunk = 64 << 10
	p, err := NewPairWith(impl, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.SetBytes(chunk)
	Settle()
	b.ResetTimer()
	cpu := CPUTime()
	if err := p.Bulk(b.N*chunk, chunk); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric((CPUTime()-cpu).Seconds()/(float64(b.N*chunk)/1e9), "cpu-s/GB")
}

// BenchmarkLossyBulk is goodput on LossyLink, for each congestion
// control, against gVisor's TCP with SACK and RACK.
func BenchmarkLossyBulk(b *testing.B) {
	const total = 8 << 20
	for _, ccName := range []string{"newreno", "cubic"} {
		for _, impl := range []string{TCPExt, GVisor} {
			b.Run(fmt.Sprintf("%s/%s", impl, ccName), func(b *testing.B) {
				p, err := NewPairWith(impl, Options{MTU: 1500, CongestionControl: ccName, Impair: LossyLink()})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				b.SetBytes(total)
				for range b.N {
					if err := p.Bulk(total, 64<<10); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkFetch is short transfers (20 KB, a connection each) on
// LossyLink; ns/op is the mean time from accept to end of file.
func BenchmarkFetch(b *testing.B) {
	for _, impl := range []string{TCPExt, GVisor} {
		b.Run(impl, func(b *testing.B) {
			p, err := NewPairWith(impl, Options{MTU: 1500, Impair: LossyLink()})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			took, stalled, err := p.Fetch(b.N, 20_000)
			if err != nil {
				b.Fatal(err)
			}
			var sum time.Duration
			for _, d := range took {
				sum += d
			}
			b.ReportMetric(float64(sum.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(float64(stalled), "stalled")
		})
	}
}

// BenchmarkRecorderCost is tcpext's bulk transfer with its flight recorder
// on (the default) and off; compare the cpu-s/GB of the two.
func BenchmarkRecorderCost(b *testing.B) {
	for _, off := range []bool{false, true} {
		b.Run(fmt.Sprintf("recorder-off=%v", off), func(b *testing.B) {
			benchBulk(b, TCPExt, Options{MTU: 1500, NoRecorder: off})
		})
	}
}

func BenchmarkConnections(b *testing.B) {
	for _, impl := range []string{TCPExt, GVisor} {
		b.Run(impl, func(b *testing.B) {
			p, err := NewPair(impl, 1500)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			b.ResetTimer()
			if err := p.Echo1(b.N); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkIdleMemory(b *testing.B) {
	for _, impl := range []string{TCPExt, GVisor} {
		b.Run(impl, func(b *testing.B) {
			p, err := NewPair(impl, 1500)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			per, err := p.IdleMemory(10000)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(per, "B/conn")
		})
	}
}

// TestPairsWork checks that both implementations move data and open and
// close connections on the harness, so a broken harness cannot pass as a
// fast one.
func TestPairsWork(t *testing.T) {
	for _, impl := range []string{TCPExt, GVisor} {
		p, err := NewPair(impl, 1500)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Bulk(4<<20, 64<<10); err != nil {
			t.Errorf("%s bulk: %v", impl, err)
		}
		if err := p.Echo1(20); err != nil {
			t.Errorf("%s echo: %v", impl, err)
		}
		if took, stalled, err := p.Fetch(10, 20_000); err != nil || len(took) != 10 || stalled != 0 {
			t.Errorf("%s fetch: %d transfers timed, %d stalled, %v; want 10, 0, nil", impl, len(took), stalled, err)
		}
		p.Close()
	}
}
