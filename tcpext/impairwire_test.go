package tcpext_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/synfin/synfin/nic/impair"
	"github.com/synfin/synfin/tcpext"
)

// impairedWire joins a tcpext stack (the DUT) and a gVisor-TCP stack (the
// reference) by channel links, each direction through an impair.Line, all
// on one impair.SimClock.
//
// Time moves only when the wire is idle: the pump moves every packet the
// stacks write into the Lines, and once no stack has written for a quiet
// period of real time, it jumps the clock to the next thing due (a delayed
// packet, a stack's timer) instead of creeping through dead time, so a
// retransmission timeout costs no more real time than a packet. The quiet
// period is the harness's only guess: if a stack is slower than that to
// answer, the clock runs ahead of it, which to the stacks looks like a slow
// host, never like corruption.
type impairedWire struct {
	t        *testing.T
	clock    *impair.SimClock
	dut, ref *stack.Stack
	dutLink  *channel.Endpoint
	refLink  *channel.Endpoint
	toRef    *impair.Line // DUT → reference
	toDUT    *impair.Line // reference → DUT
	quiet    time.Duration
	// timerQuiet is the longer quiet period before a stack's timer.
	timerQuiet time.Duration
	wake       wakeup

	mu     sync.Mutex
	recent []wireEvent // the last len(recent) segments, a ring
	next   int         // where the next event goes in recent
	total  int         // segments seen
	steps  int         // clock steps taken
	// timerSteps counts the steps to a stack's timer.
	timerSteps int
	// fragments counts the DUT's packets that left as IP fragments: a
	// segment too big for the MTU, which the IP layer split.
	fragments int
	firstFrag string

	stop chan struct{}
	done chan struct{}
}

// wireEvent is one segment offered to a Line, and what the Line did.
type wireEvent struct {
	at      time.Duration // simulated time
	fromDUT bool
	seg     tcpext.Segment // header only
	n       int            // payload length
	fate    string
}

// wakeup is a channel.Notification that wakes the pump.
type wakeup chan struct{}

func (w wakeup) WriteNotify() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// impairedWireOptions configure an impairedWire.
type impairedWireOptions struct {
	dut   tcpext.Options
	mtu   uint32
	toRef impair.Config // DUT → reference
	toDUT impair.Config // reference → DUT
	quiet time.Duration // 0: 200µs
	// timerQuiet is the quiet period before a step to a stack's timer;
	// 0: 20ms.
	timerQuiet time.Duration
	keepLast   int // segments kept for a diagnosis; 0: 64
}

func newImpairedWire(t *testing.T, o impairedWireOptions) *impairedWire {
	t.Helper()
	if o.quiet == 0 {
		o.quiet = 200 * time.Microsecond
	}
	if o.timerQuiet == 0 {
		o.timerQuiet = 20 * time.Millisecond
	}
	if o.keepLast == 0 {
		o.keepLast = 64
	}
	clock := impair.NewSimClock()
	w := &impairedWire{
		t: t, clock: clock, quiet: o.quiet, timerQuiet: o.timerQuiet, wake: make(wakeup, 1),
		recent: make([]wireEvent, o.keepLast),
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	w.dut, w.dutLink = newLinkedStack(t, clock, dutAddr, o.mtu, tcpext.NewProtocolFactory(o.dut))
	w.ref, w.refLink = newLinkedStack(t, clock, peerAddr, o.mtu, tcp.NewProtocol)
	// See newWire: gVisor's RACK misjudges reordering on a manual clock.
	noRACK := tcpip.TCPRecovery(0)
	if err := w.ref.SetTransportProtocolOption(tcp.ProtocolNumber, &noRACK); err != nil {
		t.Fatalf("disabling RACK: %v", err)
	}
	line := func(cfg impair.Config, to *channel.Endpoint) *impair.Line {
		im, err := impair.New(cfg, clock)
		if err != nil {
			t.Fatal(err)
		}
		return impair.NewLine(im, func(pkt *stack.PacketBuffer) {
			to.InjectInbound(ipv4.ProtocolNumber, pkt)
		})
	}
	w.toRef = line(o.toRef, w.refLink)
	w.toDUT = line(o.toDUT, w.dutLink)
	w.dutLink.AddNotify(w.wake)
	w.refLink.AddNotify(w.wake)
	go w.pump()
	t.Cleanup(func() {
		close(w.stop)
		<-w.done
		w.toRef.Close()
		w.toDUT.Close()
	})
	return w
}

func (w *impairedWire) pump() {
	defer close(w.done)
	long := time.NewTimer(time.Hour)
	long.Stop()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		moved := w.drain(w.dutLink, w.toRef, true)
		moved = w.drain(w.refLink, w.toDUT, false) || moved
		if moved || !w.waitQuiet() {
			continue
		}
		if w.timerFirst() {
			// Before a stack's own timer fires, make sure the stacks are
			// really done: a retransmission timeout that fires because a
			// stack's goroutine was merely slow to run (the machine is
			// busy with other tests) would repeat, with the clock racing
			// ahead, until the connection gives up. Timers are rare
			// against packets, so waiting longer for them costs little.
			long.Reset(w.timerQuiet)
			select {
			case <-w.stop:
				long.Stop()
				return
			case <-w.wake:
				long.Stop()
				continue
			case <-long.C:
			}
			w.mu.Lock()
			w.timerSteps++
			w.mu.Unlock()
		}
		if _, ok := w.clock.AdvanceToNext(); ok {
			w.mu.Lock()
			w.steps++
			w.mu.Unlock()
		}
	}
}

// timerFirst reports whether the next thing due on the clock is a stack's
// timer rather than a packet held by a Line.
func (w *impairedWire) timerFirst() bool {
	next, ok := w.clock.Next()
	if !ok {
		return false
	}
	now := w.clock.NowMonotonic()
	for _, l := range []*impair.Line{w.toRef, w.toDUT} {
		if due, ok := l.NextDue(); ok && due.Sub(now) <= next {
			return false
		}
	}
	return true
}

// waitQuiet reports whether no stack writes a packet for the quiet period.
//
// It spins (yielding to every runnable goroutine) rather than sleeping on a
// timer: when the process is otherwise idle, Go's runtime sleeps in whole
// milliseconds (its poller waits with a millisecond timeout), so a timer of
// 200µs fires after about 1.1ms, and a clock step, which every delayed
// packet needs, would cost that much. Spinning costs a CPU while the wire
// runs, and makes a step five times cheaper.
func (w *impairedWire) waitQuiet() bool {
	for start := time.Now(); time.Since(start) < w.quiet; {
		select {
		case <-w.stop:
			return false
		case <-w.wake:
			return false
		default:
			runtime.Gosched()
		}
	}
	return true
}

// stepsTaken returns how many times the pump has moved the clock, and how
// many of those steps went to a stack's timer.
func (w *impairedWire) stepsTaken() (steps, timerSteps int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.steps, w.timerSteps
}

// drain offers every packet from to its Line, as an inbound packet for the
// other stack.
func (w *impairedWire) drain(from *channel.Endpoint, line *impair.Line, fromDUT bool) bool {
	moved := false
	for pkt := from.Read(); pkt != nil; pkt = from.Read() {
		moved = true
		in := pkt.CloneToInbound()
		pkt.DecRef()
		// Only the pump sends into the Lines, so the change in the
		// counters is this packet's fate.
		before := line.Impairer().Stats()
		line.Send(in)
		w.record(in, fromDUT, fate(before, line.Impairer().Stats()))
		in.DecRef()
	}
	return moved
}

func fate(before, after impair.Stats) string {
	var f []string
	if after.Dropped > before.Dropped {
		f = append(f, "lost")
	}
	if after.RateDropped > before.RateDropped {
		f = append(f, "tail-dropped")
	}
	if after.Duplicated > before.Duplicated {
		f = append(f, "duplicated")
	}
	if after.Corrupted > before.Corrupted {
		f = append(f, "corrupted")
	}
	return strings.Join(f, ",")
}

// record keeps the segment's header for a diagnosis.
func (w *impairedWire) record(pkt *stack.PacketBuffer, fromDUT bool, fate string) {
	n := min(pkt.Data().Size(), header.IPv4MaximumHeaderSize+header.TCPHeaderMaximumSize)
	b, ok := pkt.Data().PullUp(n)
	if !ok {
		return
	}
	ip := header.IPv4(b)
	if len(b) < header.IPv4MinimumSize || int(ip.HeaderLength()) > len(b) {
		return
	}
	if fromDUT && (ip.More() || ip.FragmentOffset() != 0) {
		w.mu.Lock()
		w.fragments++
		if w.firstFrag == "" && ip.FragmentOffset() == 0 {
			w.firstFrag = fmt.Sprintf("IP id=%d total=%d more=%v at %v", ip.ID(), ip.TotalLength(), ip.More(), w.clock.Elapsed())
			if tcpHdr := b[ip.HeaderLength():]; len(tcpHdr) >= header.TCPMinimumSize && int(header.TCP(tcpHdr).DataOffset()) <= len(tcpHdr) {
				if s, err := tcpext.ParseSegment(tcpHdr[:header.TCP(tcpHdr).DataOffset()]); err == nil {
					w.firstFrag += fmt.Sprintf(": TCP header %d bytes (%d SACK blocks, timestamps %v) seq=%d", header.TCP(tcpHdr).DataOffset(), s.Options.NumSACK, s.Options.Timestamps, s.Seq)
				}
			}
		}
		w.mu.Unlock()
	}
	if ip.TransportProtocol() != header.TCPProtocolNumber || ip.FragmentOffset() != 0 {
		return
	}
	tcpHdr := b[ip.HeaderLength():]
	if len(tcpHdr) < header.TCPMinimumSize {
		return
	}
	hl := int(header.TCP(tcpHdr).DataOffset())
	if hl > len(tcpHdr) || hl < header.TCPMinimumSize {
		return
	}
	s, err := tcpext.ParseSegment(tcpHdr[:hl])
	if err != nil {
		return
	}
	payload := int(ip.TotalLength()) - int(ip.HeaderLength()) - hl
	ev := wireEvent{at: w.clock.Elapsed(), fromDUT: fromDUT, seg: s, n: payload, fate: fate}
	w.mu.Lock()
	w.recent[w.next] = ev
	w.next = (w.next + 1) % len(w.recent)
	w.total++
	w.mu.Unlock()
}

// lastSegments formats the segments kept, oldest first.
func (w *impairedWire) lastSegments() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	k := min(w.total, len(w.recent))
	for i := range k {
		ev := w.recent[(w.next-k+i+len(w.recent))%len(w.recent)]
		dir := "ref→dut"
		if ev.fromDUT {
			dir = "dut→ref"
		}
		fmt.Fprintf(&b, "  %12v %s %s", ev.at, dir, fmtSeg(ev.seg.SrcPort, ev.seg.DstPort, ev.seg.Flags, uint32(ev.seg.Seq), uint32(ev.seg.Ack), ev.seg.Window, ev.n))
		o := ev.seg.Options
		if o.Timestamps {
			fmt.Fprintf(&b, " ts=%d/%d", o.TSVal, o.TSEcr)
		}
		for _, blk := range o.SACK[:o.NumSACK] {
			fmt.Fprintf(&b, " sack=%d-%d", blk.Start, blk.End)
		}
		if ev.fate != "" {
			fmt.Fprintf(&b, " (%s)", ev.fate)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// diagnosis describes the state of everything: for the lead, when a
// transfer stalls or goes wrong.
func (w *impairedWire) diagnosis() string {
	var b strings.Builder
	w.mu.Lock()
	steps, timerSteps, total := w.steps, w.timerSteps, w.total
	w.mu.Unlock()
	fmt.Fprintf(&b, "simulated time %v after %d clock steps (%d to a stack's timer), %d segments; next timer ", w.clock.Elapsed(), steps, timerSteps, total)
	if d, ok := w.clock.Next(); ok {
		fmt.Fprintf(&b, "in %v\n", d)
	} else {
		b.WriteString("none\n")
	}
	fmt.Fprintf(&b, "line dut→ref: %+v, %d waiting\nline ref→dut: %+v, %d waiting\n",
		w.toRef.Impairer().Stats(), w.toRef.Pending(), w.toDUT.Impairer().Stats(), w.toDUT.Pending())
	fmt.Fprintf(&b, "tcpext stats: %+v\n", tcpext.ProtocolOf(w.dut).Stats())
	for _, tcb := range tcpext.ProtocolOf(w.dut).TCBs() {
		j, _ := json.MarshalIndent(tcb, "  ", "  ")
		fmt.Fprintf(&b, "tcpext TCB:\n  %s\n", j)
	}
	// The connection's TCB may have gone already (after TIME-WAIT, say):
	// its dump says how it ended.
	for _, d := range tcpext.ProtocolOf(w.dut).Dumps() {
		if !d.Closed {
			continue
		}
		fmt.Fprintf(&b, "tcpext closed TCB %d: %d events lost; history:\n", d.TCB.ID, d.EventsLost)
		for _, h := range d.TCB.History {
			fmt.Fprintf(&b, "  %s → %s: %s\n", h.From, h.To, h.Cause)
		}
		b.WriteString("  last events:\n")
		for _, ev := range d.Events[max(len(d.Events)-20, 0):] {
			if ev.Seg != nil {
				fmt.Fprintf(&b, "    %s %s seq=%d ack=%d len=%d\n", ev.Kind, ev.Seg.Flags, ev.Seg.Seq, ev.Seg.Ack, ev.Seg.Len)
			} else {
				fmt.Fprintf(&b, "    %s %s%s%s %s\n", ev.Kind, ev.Timer, ev.From, ev.To, ev.Cause)
			}
		}
	}
	for _, ep := range w.ref.RegisteredEndpoints() {
		e, ok := ep.(tcpip.Endpoint)
		if !ok {
			continue
		}
		var info tcpip.TCPInfoOption
		if err := e.GetSockOpt(&info); err == nil {
			fmt.Fprintf(&b, "gVisor endpoint: %s %+v\n", tcp.EndpointState(info.State), info)
		}
	}
	fmt.Fprintf(&b, "last segments:\n%s", w.lastSegments())
	return b.String()
}

// waitAllClosed waits (bounded in real time, while the pump moves the
// clock on) until neither stack holds a connection: every TCB but
// listeners has passed TIME-WAIT or LAST-ACK, so the closing handshake too
// survived the impairment.
func (w *impairedWire) waitAllClosed(limit time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		open := 0
		for _, tcb := range tcpext.ProtocolOf(w.dut).TCBs() {
			if tcb.State != "LISTEN" {
				open++
			}
		}
		ref, stuck := connections(w.ref), w.refStuckInClosing()
		if open == 0 && ref == stuck {
			if stuck > 0 {
				w.t.Logf("gVisor's TCP left %d connection(s) in CLOSING with nothing to time; tcpext closed its side", stuck)
			}
			return
		}
		open += ref
		if time.Now().After(deadline) {
			w.t.Fatalf("%d connections still open %v after both sides closed\n%s", open, limit, w.diagnosis())
		}
		time.Sleep(time.Millisecond)
	}
}

// refStuckInClosing counts the reference's connections in CLOSING while
// nothing on the wire is left to happen: no packet on its way, no timer
// set. gVisor's TCP leaves FIN-WAIT-1 only on an in-order ACK (its
// rcv.go), though its sender takes the acknowledgement at once, so when
// the ACK of its FIN overtakes tcpext's FIN it takes that FIN for a
// simultaneous close and waits in CLOSING for an ACK that has already
// come, for good. tcpext's conformance case "an ACK of our FIN that
// overtakes the peer's FIN still ends FIN-WAIT-1" holds tcpext to the
// rule.
func (w *impairedWire) refStuckInClosing() int {
	if _, pending := w.clock.Next(); pending || w.dutLink.NumQueued() > 0 || w.refLink.NumQueued() > 0 {
		return 0
	}
	n := 0
	for _, ep := range w.ref.RegisteredEndpoints() {
		if e, ok := ep.(tcpip.Endpoint); ok && tcp.EndpointState(e.State()) == tcp.StateClosing {
			n++
		}
	}
	return n
}

// connect listens on port of the server stack (whose address is addr),
// dials it from the client stack and returns both ends. The handshake
// crosses the impaired wire like everything else, so it may take a
// retransmission or two.
func (w *impairedWire) connect(srv, cli *stack.Stack, addr tcpip.Address, port uint16) (server, client *gonet.TCPConn) {
	w.t.Helper()
	ln, err := gonet.ListenTCP(srv, tcpip.FullAddress{Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { ln.Close() })
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err = gonet.DialContextTCP(ctx, cli, tcpip.FullAddress{Addr: addr, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		w.t.Fatalf("dial: %v\n%s", err, w.diagnosis())
	}
	r := <-accepted
	if r.err != nil {
		w.t.Fatalf("accept: %v\n%s", r.err, w.diagnosis())
	}
	return r.c.(*gonet.TCPConn), client
}
