// Command ccwatch shows why the two TCPs differ on tcpbench's lossy rows.
// It runs the same transfer (8 MiB over inproc.LossyLink, one seed per
// run, the same seeds for both) with tcpext and with gVisor's TCP, samples
// the sender's congestion window every millisecond (tcpext's TCB snapshot,
// gVisor's TCP_INFO), watches the data segments leave the client, and
// prints per run:
//
//   - goodput, and the recoveries entered;
//
//   - the time-averaged cwnd and the share of time spent in recovery;
//
//   - β: cwnd just after a recovery over cwnd just before it (RFC 5681
//     halves it, so NewReno's β is 0.5 less rounding);
//
//   - growth: segments of cwnd gained per smoothed round trip in
//     congestion avoidance (RFC 5681 section 3.1: about one);
//
//   - the median time from a segment's first transmission to its first
//     retransmission, which is how fast each finds a loss.
//
//     go run ./tools/bench/ccwatch -cc newreno -seeds 4
package main

import (
	"flag"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/synfin/synfin/tcpext"
	"github.com/synfin/synfin/tools/bench/inproc"
)

func main() {
	seeds := flag.Int("seeds", 4, "loss patterns to run, from inproc.LossyLink's seed on")
	cc := flag.String("cc", "newreno", "congestion control of both TCPs (newreno, cubic)")
	mib := flag.Int("mib", 8, "MiB per transfer")
	ackEvery := flag.Bool("ack-every-segment", false, "tcpext acknowledges every segment (delayed ACK off)")
	flag.Parse()
	log.SetFlags(0)

	fmt.Println("| seed | TCP | goodput | recoveries | mean cwnd | in recovery | β | growth per RTT | loss to retransmission (median) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for seed := range *seeds {
		for _, impl := range []string{inproc.TCPExt, inproc.GVisor} {
			w, err := watch(impl, inproc.Options{MTU: 1500, CongestionControl: *cc, AckEverySegment: *ackEvery}, seed, *mib<<20)
			if err != nil {
				log.Fatalf("%s, seed %d: %v", impl, seed, err)
			}
			fmt.Printf("| %d | %s | %.2f MB/s | %d | %.1f segments | %.1f %% | %.2f | %.2f segments | %.1f ms |\n",
				seed, impl, w.goodput, w.recoveries, w.meanCwnd, 100*w.inRecovery, w.beta, w.growthPerRTT, w.rexmitDelay.Seconds()*1e3)
		}
	}
}

// watched is what one transfer showed.
type watched struct {
	goodput      float64 // MB/s
	recoveries   int
	meanCwnd     float64 // segments
	inRecovery   float64 // share of samples
	beta         float64
	growthPerRTT float64
	rexmitDelay  time.Duration
}

// sample is the sender's congestion state at one instant.
type sample struct {
	cwnd     float64 // segments
	ssthresh float64 // segments
	recovery bool
	srtt     time.Duration
}

func watch(impl string, opts inproc.Options, seed, total int) (watched, error) {
	var w watched
	firstSent := map[seqnum]time.Time{}
	var delays []time.Duration
	var mu sync.Mutex
	opts.Impair = inproc.LossyLink()
	opts.Impair.Seed += uint64(seed)
	opts.ClientTap = func(pkt *stack.PacketBuffer) {
		seq, ok := dataSeq(pkt)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if t, sent := firstSent[seq]; !sent {
			firstSent[seq] = time.Now()
		} else if t != (time.Time{}) {
			delays = append(delays, time.Since(t))
			firstSent[seq] = time.Time{}
		}
	}
	p, err := inproc.NewPairWith(impl, opts)
	if err != nil {
		return w, err
	}
	defer p.Close()
	inproc.Settle()

	stop := make(chan struct{})
	samples := make(chan []sample)
	go func() { samples <- sampleSender(impl, p.Client, stop) }()
	start := time.Now()
	err = p.Bulk(total, 64<<10)
	w.goodput = float64(total) / 1e6 / time.Since(start).Seconds()
	close(stop)
	ss := <-samples
	if err != nil {
		return w, err
	}
	w.summarize(ss)
	mu.Lock()
	defer mu.Unlock()
	if len(delays) > 0 {
		slices.Sort(delays)
		w.rexmitDelay = delays[len(delays)/2]
	}
	return w, nil
}

// summarize turns the samples into the figures of w.
func (w *watched) summarize(ss []sample) {
	var cwndSum, betaSum, grown, rtts float64
	var inRec, betas int
	var before float64
	for i, s := range ss {
		cwndSum += s.cwnd
		if s.recovery {
			inRec++
		}
		if i == 0 {
			continue
		}
		prev := ss[i-1]
		switch {
		case s.recovery && !prev.recovery:
			w.recoveries++
			before = prev.cwnd
		case !s.recovery && prev.recovery && before > 0:
			betaSum += s.cwnd / before
			betas++
		case !s.recovery && !prev.recovery && prev.cwnd >= prev.ssthresh && s.srtt > 0:
			grown += max(s.cwnd-prev.cwnd, 0)
			rtts += float64(time.Millisecond) / float64(s.srtt)
		}
	}
	if n := len(ss); n > 0 {
		w.meanCwnd = cwndSum / float64(n)
		w.inRecovery = float64(inRec) / float64(n)
	}
	if betas > 0 {
		w.beta = betaSum / float64(betas)
	}
	if rtts > 0 {
		w.growthPerRTT = grown / rtts
	}
}

// sampleSender reads the client's congestion state every millisecond
// until stop, while its connection is established.
func sampleSender(impl string, s *stack.Stack, stop chan struct{}) []sample {
	var ss []sample
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return ss
		case <-tick.C:
		}
		if x, ok := senderState(impl, s); ok {
			ss = append(ss, x)
		}
	}
}

func senderState(impl string, s *stack.Stack) (sample, bool) {
	if impl == inproc.TCPExt {
		for _, tcb := range tcpext.ProtocolOf(s).TCBs() {
			if tcb.State != "ESTABLISHED" {
				continue
			}
			smss := int(tcb.MSS)
			if tcb.Timestamps {
				smss -= header.TCPOptionTSLength + 2 // and its two NOPs
			}
			return sample{float64(tcb.Cwnd) / float64(smss), float64(tcb.Ssthresh) / float64(smss), tcb.Recovery, time.Duration(tcb.SRTTus) * time.Microsecond}, true
		}
		return sample{}, false
	}
	for _, ep := range s.RegisteredEndpoints() {
		e, ok := ep.(tcpip.Endpoint)
		if !ok {
			continue
		}
		var info tcpip.TCPInfoOption
		if err := e.GetSockOpt(&info); err != nil || tcp.EndpointState(info.State) != tcp.StateEstablished {
			continue
		}
		return sample{float64(info.SndCwnd), float64(info.SndSsthresh), info.CcState != tcpip.Open && info.CcState != tcpip.Disorder, info.RTT}, true
	}
	return sample{}, false
}

type seqnum = uint32

// dataSeq is the sequence number of a TCP segment that carries data.
func dataSeq(pkt *stack.PacketBuffer) (seqnum, bool) {
	v := pkt.ToView()
	defer v.Release()
	b := v.AsSlice()
	if len(b) < header.IPv4MinimumSize || header.IPv4(b).Protocol() != uint8(header.TCPProtocolNumber) {
		return 0, false
	}
	ip := header.IPv4(b)
	seg := header.TCP(b[ip.HeaderLength():])
	if len(seg) < header.TCPMinimumSize || len(seg) <= int(seg.DataOffset()) {
		return 0, false
	}
	return seg.SequenceNumber(), true
}
