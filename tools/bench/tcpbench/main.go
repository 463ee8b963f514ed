// Command tcpbench measures tcpext against gVisor's own TCP in one process
// and prints one Markdown table: bulk throughput and CPU per GB at MTU 1500
// and 65 535, goodput on a lossy link for each congestion control,
// connections per second, and heap per idle connection. Each row takes the
// median of -runs runs, alternating the two implementations so that a
// change in the machine's load falls on both, and shows the spread of the
// ratio between the two runs of each turn.
//
// A second table puts tcpext's flight recorder on against off.
//
// The lab row (the firmware against Linux over veth, next to Linux against
// Linux) comes from tools/bench/nicbench, which needs root and the lab.
//
//	go run ./tools/bench/tcpbench
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/synfin/synfin/tools/bench/inproc"
)

// measure runs one measurement of one implementation; run counts from 0,
// and both implementations get the same run numbers.
type measure func(impl string, run int) (float64, error)

// row is one line of the table.
type row struct {
	name, unit string
	// higherBetter says which way the ratio goes: tcpext/gVisor when
	// higher is better, gVisor/tcpext otherwise, so a ratio above 1
	// always favours tcpext.
	higherBetter bool
	target       string
	run          measure
}

func main() {
	runs := flag.Int("runs", 3, "runs per implementation and row; the median is reported")
	bulkMiB := flag.Int("bulk", 512, "MiB per bulk run")
	lossyMiB := flag.Int("lossy", 8, "MiB per run on the lossy link")
	conns := flag.Int("conns", 5000, "connections per connections-per-second run")
	fetches := flag.Int("fetches", 200, "transfers per run of the short-transfer rows")
	idle := flag.Int("idle", 10000, "idle connections for the memory row")
	only := flag.String("rows", "", "run only the rows whose name matches this regular expression (\"recorder\" for the recorder's cost)")
	ackEvery := flag.Bool("lossy-ack-every-segment", false, "tcpext acknowledges every segment in the lossy rows, as gVisor's TCP does")
	flag.Parse()
	log.SetFlags(0)
	pick, err := regexp.Compile(*only)
	if err != nil {
		log.Fatalf("-rows: %v", err)
	}

	rows := []row{
		bulkRow(1500, *bulkMiB, false),
		bulkRow(1500, *bulkMiB, true),
		bulkRow(65535, 4**bulkMiB, false),
		bulkRow(65535, 4**bulkMiB, true),
		lossyRow("newreno", *lossyMiB, *ackEvery),
		lossyRow("cubic", *lossyMiB, *ackEvery),
		fetchRow("mean", *fetches, func(d []time.Duration) time.Duration {
			var sum time.Duration
			for _, x := range d {
				sum += x
			}
			return sum / time.Duration(len(d))
		}),
		fetchRow("99th percentile", *fetches, func(d []time.Duration) time.Duration {
			slices.Sort(d)
			return d[len(d)*99/100]
		}),
		{
			name: "connections per second (open, 1 byte each way, close)", unit: "conn/s",
			higherBetter: true, target: "≥ 1.5×",
			run: func(impl string, _ int) (float64, error) {
				p, err := inproc.NewPair(impl, 1500)
				if err != nil {
					return 0, err
				}
				defer p.Close()
				start := time.Now()
				if err := p.Echo1(*conns); err != nil {
					return 0, err
				}
				return float64(*conns) / time.Since(start).Seconds(), nil
			},
		},
		{
			name: fmt.Sprintf("heap per idle established connection, %d connections, both ends", *idle), unit: "B",
			target: "≤ 0.5× (ratio ≥ 2×)",
			run: func(impl string, _ int) (float64, error) {
				p, err := inproc.NewPair(impl, 1500)
				if err != nil {
					return 0, err
				}
				defer p.Close()
				return p.IdleMemory(*idle)
			},
		},
	}

	picked := slices.DeleteFunc(rows, func(r row) bool { return !pick.MatchString(r.name) })
	if len(picked) == 0 && !pick.MatchString("recorder") {
		log.Fatalf("-rows %q matches no row and not \"recorder\"", *only)
	}

	// The flight recorder's cost, tcpext against itself, measured before
	// the rows: the idle-memory row leaves a large heap behind. The
	// machine's speed drifts by more than the cost, so runs go in pairs,
	// one with the recorder and one without, back to back and in turns
	// which goes first; the overhead is the median of the pairs'.
	var on, off, overhead []float64
	recorderRuns := 2 * *runs
	if !pick.MatchString("recorder") {
		recorderRuns = 0
	}
	for i := range recorderRuns {
		var pair [2]float64
		for j, noRec := range []bool{i%2 == 1, i%2 == 0} {
			_, v, err := bulk(inproc.TCPExt, inproc.Options{MTU: 1500, NoRecorder: noRec}, *bulkMiB<<20)
			if err != nil {
				log.Fatalf("recorder cost: %v", err)
			}
			pair[j] = v
		}
		if i%2 == 1 {
			pair[0], pair[1] = pair[1], pair[0]
		}
		on, off = append(on, pair[0]), append(off, pair[1])
		overhead = append(overhead, pair[0]/pair[1]-1)
	}

	fmt.Printf("| benchmark | tcpext | gVisor TCP | ratio | paired runs | target |\n|---|---|---|---|---|---|\n")
	for _, r := range picked {
		var ours, theirs, paired []float64
		for i := range *runs {
			var v [2]float64
			for j, impl := range []string{inproc.TCPExt, inproc.GVisor} {
				if v[j], err = r.run(impl, i); err != nil {
					log.Fatalf("%s, %s: %v", r.name, impl, err)
				}
			}
			ours, theirs = append(ours, v[0]), append(theirs, v[1])
			paired = append(paired, r.ratio(v[0], v[1]))
		}
		fmt.Printf("| %s | %s %s | %s %s | %.2f× | %.2f–%.2f× | %s |\n", r.name, format(median(ours)), r.unit, format(median(theirs)), r.unit,
			r.ratio(median(ours), median(theirs)), slices.Min(paired), slices.Max(paired), r.target)
	}
	if recorderRuns > 0 {
		fmt.Printf("\n| tcpext, CPU per GB at MTU 1500 | recorder on (256 events) | recorder off | overhead | target |\n|---|---|---|---|---|\n")
		fmt.Printf("| bulk transfer | %s s/GB | %s s/GB | %+.1f %% | ≤ 5 %% |\n", format(median(on)), format(median(off)), 100*median(overhead))
	}
	fmt.Fprintf(os.Stderr, "ratios above 1 favour tcpext; medians of %d runs; paired runs: the lowest and highest ratio of one run of each, back to back\n", *runs)
}

// bulk moves total bytes one way in 64 KiB writes over a pair made as
// opts say, and returns the goodput in MB/s and the CPU time (both stacks,
// user and system) per GB.
func bulk(impl string, opts inproc.Options, total int) (rate, cpuPerGB float64, err error) {
	p, err := inproc.NewPairWith(impl, opts)
	if err != nil {
		return 0, 0, err
	}
	defer p.Close()
	inproc.Settle()
	start, cpu0 := time.Now(), inproc.CPUTime()
	if err := p.Bulk(total, 64<<10); err != nil {
		return 0, 0, err
	}
	return float64(total) / 1e6 / time.Since(start).Seconds(), (inproc.CPUTime() - cpu0).Seconds() / (float64(total) / 1e9), nil
}

// bulkRow is one-way bulk transfer in 64 KiB writes: throughput, or CPU
// time (both stacks, user and system) per GB moved.
func bulkRow(mtu uint32, mib int, cpu bool) row {
	r := row{
		name: fmt.Sprintf("bulk throughput, MTU %d", mtu), unit: "MB/s",
		higherBetter: true, target: "≥ 1.2×",
	}
	if cpu {
		r.name, r.unit, r.higherBetter = fmt.Sprintf("CPU per GB, MTU %d", mtu), "s/GB", false
	}
	r.run = func(impl string, _ int) (float64, error) {
		rate, cpuPerGB, err := bulk(impl, inproc.Options{MTU: mtu}, mib<<20)
		if cpu {
			return cpuPerGB, err
		}
		return rate, err
	}
	return r
}

// lossyRow is goodput on inproc.LossyLink with one congestion control on
// both sides (gVisor's with SACK and RACK). Each run seeds the link's
// losses differently, the same for both implementations: one seed is one
// loss pattern, on which tcpext's result repeats to the segment.
func lossyRow(cc string, mib int, ackEvery bool) row {
	name := "goodput at 1 % loss, 10 ms RTT, " + cc
	if ackEvery {
		name += ", tcpext ACKing every segment"
	}
	return row{
		name: name, unit: "MB/s",
		higherBetter: true, target: "≥ 1.0×",
		run: func(impl string, run int) (float64, error) {
			link := inproc.LossyLink()
			link.Seed += uint64(run)
			rate, _, err := bulk(impl, inproc.Options{MTU: 1500, CongestionControl: cc, Impair: link, AckEverySegment: ackEvery}, mib<<20)
			return rate, err
		},
	}
}

// fetchRow is the time short transfers take on inproc.LossyLink (20 KB
// each, the median object of a web page), summed up by stat: the tail
// loss probe and the window-edge push show here, where the flight ends
// before three duplicate ACKs can come back. Run i seeds the link as the
// lossy rows do. A transfer that stalls counts as inproc.FetchStall and is
// reported on the standard error.
func fetchRow(stat string, n int, sum func([]time.Duration) time.Duration) row {
	return row{
		name: fmt.Sprintf("20 KB transfers at 1 %% loss, 10 ms RTT, %s time (accept to end of file, %d per run)", stat, n),
		unit: "ms", target: "—",
		run: func(impl string, run int) (float64, error) {
			link := inproc.LossyLink()
			link.Seed += uint64(run)
			p, err := inproc.NewPairWith(impl, inproc.Options{MTU: 1500, Impair: link})
			if err != nil {
				return 0, err
			}
			defer p.Close()
			took, stalled, err := p.Fetch(n, 20_000)
			if err != nil {
				return 0, err
			}
			if stalled > 0 {
				log.Printf("%s, seed %d: %d of %d transfers stalled, each counted as %v", impl, link.Seed, stalled, n, inproc.FetchStall)
			}
			return float64(sum(took)) / float64(time.Millisecond), nil
		},
	}
}

// ratio puts tcpext's figure against gVisor's so that above 1 favours
// tcpext.
func (r row) ratio(ours, theirs float64) float64 {
	if r.higherBetter {
		return ours / theirs
	}
	return theirs / ours
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func format(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
