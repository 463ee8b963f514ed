package tcpext_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/synfin/synfin/tcpext"
)

// This file is the small step language the conformance suite
// (conformance_test.go) and the classic worked examples (classic_test.go)
// are written in. A script is a list of steps run in order against a fresh
// DUT: inject a segment, expect a segment, expect silence, advance the
// manual clock, call the socket API, check a TCB. Every step has a printable
// name, so a failure says which line of which script went wrong.
//
// The DUT's ISS is fixed by SetISNForTest (1000 unless a script says
// otherwise) and the scripted peer picks its own ISN (5000 in the helpers),
// so sequence numbers in scripts are the literal numbers on the wire, as in
// the RFC figures.

const (
	urg = header.TCPFlagUrg
	ms  = time.Millisecond

	// dutISS is the DUT's default ISS in scripts.
	dutISS = 1000
	// peerWindow is the window the scripted peer advertises by default.
	peerWindow = 65535
)

// step is one line of a script.
type step struct {
	name string
	do   func(*runner)
}

// steps groups several steps under one name (a composite line such as
// "active open"), so scripts stay short and failures still point at the
// exact inner step.
func steps(name string, ss ...step) step {
	return step{name: name, do: func(r *runner) {
		for _, s := range ss {
			r.run(s)
		}
	}}
}

// runner runs one script against one DUT.
type runner struct {
	t *testing.T
	d *dut

	isn atomic.Uint32 // the DUT's next ISN

	// The application's side: the current listener and connection.
	lis tcpip.Endpoint
	ep  tcpip.Endpoint
	wq  *waiter.Queue

	// The 4-tuple injected segments use by default: the DUT's port and the
	// peer's port (addresses are dutAddr and peerAddr).
	local, remote uint16

	path []string // names of the steps being run, outermost first

	mu    sync.Mutex
	trans []tcpext.Transition // every transition of every TCB
	done  bool                // the script ended: later transitions are cleanup
}

// newRunner builds a DUT with opts and a runner recording its transitions.
func newRunner(t *testing.T, opts tcpext.Options) *runner {
	r := &runner{t: t, local: 7, remote: 40000}
	prev := opts.OnTransition
	opts.OnTransition = func(tr tcpext.Transition) {
		r.record(tr)
		if prev != nil {
			prev(tr)
		}
	}
	r.d = newDUT(t, opts)
	r.isn.Store(dutISS)
	tcpext.SetISNForTest(r.d.proto, func() uint32 { return r.isn.Load() })
	return r
}

func (r *runner) record(tr tcpext.Transition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.trans = append(r.trans, tr)
	}
}

// transitions returns the transitions recorded so far.
func (r *runner) transitions() []tcpext.Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tcpext.Transition(nil), r.trans...)
}

// finish ends the script: the DUT must have said nothing unexpected, and
// transitions from here on (the stack's teardown aborting endpoints) are not
// part of the script.
func (r *runner) finish() []tcpext.Transition {
	r.t.Helper()
	r.path = []string{"end of script"}
	r.run(silence())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	return append([]tcpext.Transition(nil), r.trans...)
}

// script runs ss against r.
func (r *runner) script(ss ...step) {
	r.t.Helper()
	for i, s := range ss {
		r.path = []string{fmt.Sprintf("%d", i+1)}
		r.run(s)
	}
}

func (r *runner) run(s step) {
	r.t.Helper()
	r.path = append(r.path, s.name)
	s.do(r)
	r.path = r.path[:len(r.path)-1]
}

// fatalf fails the script naming the step that failed.
func (r *runner) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("step %s: %s", strings.Join(r.path, " / "), fmt.Sprintf(format, args...))
}

// tcb returns the TCB of the current 4-tuple.
func (r *runner) tcb() tcpext.TCBInfo {
	r.t.Helper()
	info, ok := r.find(r.local, r.remote)
	if !ok {
		r.fatalf("no TCB for local port %d, remote port %d; table: %s", r.local, r.remote, r.table())
	}
	return info
}

// find returns the TCB with these ports; remote 0 means a listener.
func (r *runner) find(local, remote uint16) (tcpext.TCBInfo, bool) {
	for _, info := range r.d.proto.TCBs() {
		if !hasPort(info.Local, local) {
			continue
		}
		if (remote == 0 && info.Remote == "*:*") || (remote != 0 && hasPort(info.Remote, remote)) {
			return info, true
		}
	}
	return tcpext.TCBInfo{}, false
}

// table describes the whole TCB table for failure messages.
func (r *runner) table() string {
	var b strings.Builder
	b.WriteString("[")
	for i, info := range r.d.proto.TCBs() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "#%d %s %s-%s", info.ID, info.State, info.Local, info.Remote)
	}
	b.WriteString("]")
	return b.String()
}

// segSpec is a segment in a script: injected by the peer (in) or expected
// from the DUT (out).
type segSpec struct {
	flags    header.TCPFlags
	seq, ack uint32
	payload  []byte
	hasData  bool
	dataLen  int // out: expected payload length, when the bytes do not matter
	window   uint16
	hasWin   bool
	mss      uint16
	urgent   uint16
	hasUrg   bool
	dutPort  uint16 // overrides the runner's local port
	badSum   bool
}

// segOpt refines a segSpec.
type segOpt func(*segSpec)

// data is the payload: sent by in, expected byte for byte by out.
func data(s string) segOpt {
	return func(sp *segSpec) { sp.payload, sp.hasData = []byte(s), true }
}

// payload is like data for generated bytes.
func payload(b []byte) segOpt {
	return func(sp *segSpec) { sp.payload, sp.hasData = b, true }
}

// dataLen expects a payload of n bytes whatever they are (out only).
func dataLen(n int) segOpt { return func(sp *segSpec) { sp.dataLen = n } }

// win sets (in) or checks (out) the window field.
func win(w uint16) segOpt { return func(sp *segSpec) { sp.window, sp.hasWin = w, true } }

// withMSS adds (in) or checks (out) the MSS option.
func withMSS(m uint16) segOpt { return func(sp *segSpec) { sp.mss = m } }

// urgPtr sets (in) or checks (out) the urgent pointer field.
func urgPtr(u uint16) segOpt { return func(sp *segSpec) { sp.urgent, sp.hasUrg = u, true } }

// dutPort overrides the DUT's port for one segment.
func dutPort(p uint16) segOpt { return func(sp *segSpec) { sp.dutPort = p } }

// badChecksum corrupts the injected segment's checksum.
func badChecksum() segOpt { return func(sp *segSpec) { sp.badSum = true } }

func newSpec(flags header.TCPFlags, seq, ackNum uint32, opts []segOpt) segSpec {
	sp := segSpec{flags: flags, seq: seq, ack: ackNum, dataLen: -1}
	for _, o := range opts {
		o(&sp)
	}
	return sp
}

func (sp segSpec) String() string {
	s := fmt.Sprintf("[%s] seq=%d ack=%d", sp.flags, sp.seq, sp.ack)
	if sp.hasData {
		if len(sp.payload) <= 16 {
			s += fmt.Sprintf(" data=%q", sp.payload)
		} else {
			s += fmt.Sprintf(" len=%d", len(sp.payload))
		}
	}
	if sp.dataLen >= 0 {
		s += fmt.Sprintf(" len=%d", sp.dataLen)
	}
	if sp.hasWin {
		s += fmt.Sprintf(" win=%d", sp.window)
	}
	if sp.mss != 0 {
		s += fmt.Sprintf(" mss=%d", sp.mss)
	}
	if sp.hasUrg {
		s += fmt.Sprintf(" up=%d", sp.urgent)
	}
	if sp.dutPort != 0 {
		s += fmt.Sprintf(" dut-port=%d", sp.dutPort)
	}
	if sp.badSum {
		s += " bad-checksum"
	}
	return s
}

func (sp segSpec) ports(r *runner) (local, remote uint16) {
	local, remote = r.local, r.remote
	if sp.dutPort != 0 {
		local = sp.dutPort
	}
	return local, remote
}

// in injects a segment from the peer.
func in(flags header.TCPFlags, seq, ackNum uint32, opts ...segOpt) step {
	sp := newSpec(flags, seq, ackNum, opts)
	return step{name: "in " + sp.String(), do: func(r *runner) {
		local, remote := sp.ports(r)
		w := uint16(peerWindow)
		if sp.hasWin {
			w = sp.window
		}
		ts := tcpext.Segment{
			SrcPort: remote, DstPort: local,
			Seq: seqnum.Value(sp.seq), Ack: seqnum.Value(sp.ack),
			Flags: sp.flags, Window: w, Urgent: sp.urgent, Payload: sp.payload,
		}
		ts.Options.WindowScale = -1
		ts.Options.MSS = sp.mss
		b := make([]byte, ts.HeaderLen()+len(sp.payload))
		ts.EncodeHeader(b)
		copy(b[ts.HeaderLen():], sp.payload)
		r.d.injectRaw(b, sp.badSum)
	}}
}

// out expects the DUT's next segment to match exactly: ports, flags,
// sequence number, acknowledgment number (when ACK is set), and an empty
// payload unless data or dataLen say otherwise; window, MSS and urgent
// pointer when given.
func out(flags header.TCPFlags, seq, ackNum uint32, opts ...segOpt) step {
	sp := newSpec(flags, seq, ackNum, opts)
	return step{name: "out " + sp.String(), do: func(r *runner) {
		got, ok := r.d.poll()
		if !ok {
			r.fatalf("the DUT sent nothing")
		}
		if msg := sp.mismatch(r, got); msg != "" {
			r.fatalf("the DUT sent %s: %s", describe(got), msg)
		}
	}}
}

// maybeOut accepts either silence or exactly this segment, for behaviour
// the RFCs leave open (e.g. a RST when a timer kills a connection).
func maybeOut(flags header.TCPFlags, seq, ackNum uint32, opts ...segOpt) step {
	sp := newSpec(flags, seq, ackNum, opts)
	return step{name: "maybe out " + sp.String(), do: func(r *runner) {
		if got, ok := r.d.poll(); ok {
			if msg := sp.mismatch(r, got); msg != "" {
				r.fatalf("the DUT sent %s: %s", describe(got), msg)
			}
		}
	}}
}

func (sp segSpec) mismatch(r *runner, got tcpext.Segment) string {
	local, remote := sp.ports(r)
	var bad []string
	if got.SrcPort != local || got.DstPort != remote {
		bad = append(bad, fmt.Sprintf("ports %d>%d, want %d>%d", got.SrcPort, got.DstPort, local, remote))
	}
	if got.Flags != sp.flags {
		bad = append(bad, fmt.Sprintf("flags %s, want %s", got.Flags, sp.flags))
	}
	if uint32(got.Seq) != sp.seq {
		bad = append(bad, fmt.Sprintf("seq %d, want %d", uint32(got.Seq), sp.seq))
	}
	if sp.flags&ack != 0 && uint32(got.Ack) != sp.ack {
		bad = append(bad, fmt.Sprintf("ack %d, want %d", uint32(got.Ack), sp.ack))
	}
	switch {
	case sp.hasData && !bytes.Equal(got.Payload, sp.payload):
		bad = append(bad, fmt.Sprintf("payload %q, want %q", clip(got.Payload), clip(sp.payload)))
	case sp.dataLen >= 0 && len(got.Payload) != sp.dataLen:
		bad = append(bad, fmt.Sprintf("payload of %d bytes, want %d", len(got.Payload), sp.dataLen))
	case !sp.hasData && sp.dataLen < 0 && len(got.Payload) != 0:
		bad = append(bad, fmt.Sprintf("payload of %d bytes, want none", len(got.Payload)))
	}
	if sp.hasWin && got.Window != sp.window {
		bad = append(bad, fmt.Sprintf("window %d, want %d", got.Window, sp.window))
	}
	if sp.mss != 0 && got.Options.MSS != sp.mss {
		bad = append(bad, fmt.Sprintf("MSS option %d, want %d", got.Options.MSS, sp.mss))
	}
	if sp.hasUrg && got.Urgent != sp.urgent {
		bad = append(bad, fmt.Sprintf("urgent pointer %d, want %d", got.Urgent, sp.urgent))
	}
	return strings.Join(bad, "; ")
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// silence expects the DUT to have sent nothing.
func silence() step {
	return step{name: "silence", do: func(r *runner) {
		if got, ok := r.d.poll(); ok {
			r.fatalf("expected silence, the DUT sent %s", describe(got))
		}
	}}
}

// advance moves the manual clock, firing every timer due.
func advance(d time.Duration) step {
	return step{name: "advance " + d.String(), do: func(r *runner) { r.d.clock.Advance(d) }}
}

// setISN makes the DUT pick v as its next ISN.
func setISN(v uint32) step {
	return step{name: fmt.Sprintf("DUT ISN %d", v), do: func(r *runner) { r.isn.Store(v) }}
}

// peer switches the peer's port of the current 4-tuple.
func peer(port uint16) step {
	return step{name: fmt.Sprintf("peer port %d", port), do: func(r *runner) { r.remote = port }}
}

// newEndpoint opens a TCP endpoint on the DUT.
func (r *runner) newEndpoint() (tcpip.Endpoint, *waiter.Queue) {
	r.t.Helper()
	var wq waiter.Queue
	ep, err := r.d.s.NewEndpoint(header.TCPProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		r.fatalf("NewEndpoint: %v", err)
	}
	return ep, &wq
}

// listenOn binds port and listens with backlog; segments then go to port.
func listenOn(port uint16, backlog int) step {
	return step{name: fmt.Sprintf("listen :%d backlog %d", port, backlog), do: func(r *runner) {
		ep, _ := r.newEndpoint()
		if err := ep.Bind(tcpip.FullAddress{Port: port}); err != nil {
			r.fatalf("Bind: %v", err)
		}
		if err := ep.Listen(backlog); err != nil {
			r.fatalf("Listen: %v", err)
		}
		r.lis, r.local = ep, port
	}}
}

// connectTo starts an active open to the peer's port from an ephemeral
// port, which becomes the current 4-tuple.
func connectTo(port uint16) step {
	return step{name: fmt.Sprintf("connect to :%d", port), do: func(r *runner) {
		ep, wq := r.newEndpoint()
		r.connect(ep, port)
		r.ep, r.wq = ep, wq
	}}
}

// connectListener calls Connect on the listening endpoint (RFC 9293 3.10.2:
// a SEND in LISTEN turns the passive open into an active one).
func connectListener(port uint16) step {
	return step{name: fmt.Sprintf("connect the listener to :%d", port), do: func(r *runner) {
		r.connect(r.lis, port)
		r.ep = r.lis
	}}
}

func (r *runner) connect(ep tcpip.Endpoint, port uint16) {
	r.t.Helper()
	err := ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: port})
	if _, ok := err.(*tcpip.ErrConnectStarted); !ok {
		r.fatalf("Connect: %v, want ErrConnectStarted", err)
	}
	a, aerr := ep.GetLocalAddress()
	if aerr != nil {
		r.fatalf("GetLocalAddress: %v", aerr)
	}
	r.local, r.remote = a.Port, port
}

// connectErr expects Connect to fail at once with want.
func connectErr(port uint16, want tcpip.Error) step {
	return step{name: fmt.Sprintf("connect to :%d fails with %v", port, want), do: func(r *runner) {
		ep, _ := r.newEndpoint()
		err := ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: port})
		if !sameError(err, want) {
			r.fatalf("Connect: %v, want %v", err, want)
		}
		ep.Close()
	}}
}

// acceptConn accepts the next connection; it becomes the current one.
func acceptConn() step {
	return step{name: "accept", do: func(r *runner) {
		var peer tcpip.FullAddress
		ep, wq, err := r.lis.Accept(&peer)
		if err != nil {
			r.fatalf("Accept: %v", err)
		}
		a, _ := ep.GetLocalAddress()
		r.ep, r.wq, r.local, r.remote = ep, wq, a.Port, peer.Port
	}}
}

// send writes s on the current connection; all of it must be taken.
func send(s string) step {
	return step{name: fmt.Sprintf("write %q", clip([]byte(s))), do: func(r *runner) {
		n, err := r.ep.Write(strings.NewReader(s), tcpip.WriteOptions{})
		if err != nil || int(n) != len(s) {
			r.fatalf("Write = %d, %v; want %d, nil", n, err, len(s))
		}
	}}
}

// sendErr expects Write to fail with want.
func sendErr(want tcpip.Error) step {
	return step{name: fmt.Sprintf("write fails with %v", want), do: func(r *runner) {
		if _, err := r.ep.Write(strings.NewReader("x"), tcpip.WriteOptions{}); !sameError(err, want) {
			r.fatalf("Write: %v, want %v", err, want)
		}
	}}
}

// sendUrgent writes s as urgent data with tcpext.WriteUrgent.
func sendUrgent(s string) step {
	return step{name: fmt.Sprintf("write urgent %q", s), do: func(r *runner) {
		n, err := tcpext.WriteUrgent(r.ep, strings.NewReader(s))
		if err != nil || int(n) != len(s) {
			r.fatalf("WriteUrgent = %d, %v; want %d, nil", n, err, len(s))
		}
	}}
}

// recv reads everything buffered; it must be exactly s.
func recv(s string) step {
	return step{name: fmt.Sprintf("read %q", clip([]byte(s))), do: func(r *runner) {
		var b bytes.Buffer
		if _, err := r.ep.Read(&b, tcpip.ReadOptions{}); err != nil {
			r.fatalf("Read: %v, want %q", err, s)
		}
		if b.String() != s {
			r.fatalf("Read %q, want %q", clip(b.Bytes()), clip([]byte(s)))
		}
	}}
}

// recvErr expects Read to fail with want: ErrClosedForReceive is an
// orderly EOF, ErrConnectionReset a reset, ErrWouldBlock nothing yet.
func recvErr(want tcpip.Error) step {
	return step{name: fmt.Sprintf("read fails with %v", want), do: func(r *runner) {
		var b bytes.Buffer
		if _, err := r.ep.Read(&b, tcpip.ReadOptions{}); !sameError(err, want) {
			r.fatalf("Read = %q, %v; want %v", clip(b.Bytes()), err, want)
		}
	}}
}

// lastErr expects the endpoint's LastError (how a failed non-blocking
// connect is reported) to be want.
func lastErr(want tcpip.Error) step {
	return step{name: fmt.Sprintf("last error %v", want), do: func(r *runner) {
		if err := r.ep.LastError(); !sameError(err, want) {
			r.fatalf("LastError: %v, want %v", err, want)
		}
	}}
}

func sameError(got, want tcpip.Error) bool {
	return got != nil && reflect.TypeOf(got) == reflect.TypeOf(want)
}

// closeApp is a full close of the current connection.
func closeApp() step {
	return step{name: "close", do: func(r *runner) { r.ep.Close() }}
}

// closeListener closes the listener.
func closeListener() step {
	return step{name: "close the listener", do: func(r *runner) { r.lis.Close() }}
}

// shutWr is a half-close: shutdown(SHUT_WR).
func shutWr() step {
	return step{name: "shutdown write", do: func(r *runner) {
		if err := r.ep.Shutdown(tcpip.ShutdownWrite); err != nil {
			r.fatalf("Shutdown: %v", err)
		}
	}}
}

// abortApp is the ABORT call.
func abortApp() step {
	return step{name: "abort", do: func(r *runner) { r.ep.Abort() }}
}

// linger0 sets SO_LINGER with a zero timeout, making Close abortive.
func linger0() step {
	return step{name: "linger 0", do: func(r *runner) {
		r.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	}}
}

// keepalive turns keepalive on with the given timers.
func keepalive(idle, interval time.Duration, count int) step {
	return step{name: fmt.Sprintf("keepalive idle %v interval %v count %d", idle, interval, count), do: func(r *runner) {
		r.ep.SocketOptions().SetKeepAlive(true)
		i := tcpip.KeepaliveIdleOption(idle)
		if err := r.ep.SetSockOpt(&i); err != nil {
			r.fatalf("KeepaliveIdleOption: %v", err)
		}
		v := tcpip.KeepaliveIntervalOption(interval)
		if err := r.ep.SetSockOpt(&v); err != nil {
			r.fatalf("KeepaliveIntervalOption: %v", err)
		}
		if err := r.ep.SetSockOptInt(tcpip.KeepaliveCountOption, count); err != nil {
			r.fatalf("KeepaliveCountOption: %v", err)
		}
	}}
}

// userTimeout sets TCP_USER_TIMEOUT on the current connection.
func userTimeout(d time.Duration) step {
	return step{name: "user timeout " + d.String(), do: func(r *runner) {
		v := tcpip.TCPUserTimeoutOption(d)
		if err := r.ep.SetSockOpt(&v); err != nil {
			r.fatalf("TCPUserTimeoutOption: %v", err)
		}
	}}
}

// stateIs expects the TCB of the current 4-tuple to be in state; "" means
// that no such TCB exists.
func stateIs(state string) step {
	return step{name: "state " + orGone(state), do: func(r *runner) {
		info, ok := r.find(r.local, r.remote)
		if got := info.State; got != state || ok != (state != "") {
			r.fatalf("TCB %d-%d is %s, want %s; table: %s", r.local, r.remote, orGone(got), orGone(state), r.table())
		}
	}}
}

// listenerIs expects the listener on port to be in state ("" for none).
func listenerIs(port uint16, state string) step {
	return step{name: fmt.Sprintf("listener :%d %s", port, orGone(state)), do: func(r *runner) {
		info, _ := r.find(port, 0)
		if info.State != state {
			r.fatalf("listener on %d is %s, want %s; table: %s", port, orGone(info.State), orGone(state), r.table())
		}
	}}
}

func orGone(s string) string {
	if s == "" {
		return "(no TCB)"
	}
	return s
}

// took expects the arrow from → to to have been taken in this script.
func took(from, to tcpext.State) step {
	return step{name: fmt.Sprintf("took %s → %s", from, to), do: func(r *runner) {
		if countArrow(r.transitions(), from, to) == 0 {
			r.fatalf("arrow %s → %s not taken; transitions: %s", from, to, describeTransitions(r.transitions()))
		}
	}}
}

// notTook expects the arrow from → to never to have been taken.
func notTook(from, to tcpext.State) step {
	return step{name: fmt.Sprintf("did not take %s → %s", from, to), do: func(r *runner) {
		if countArrow(r.transitions(), from, to) != 0 {
			r.fatalf("arrow %s → %s taken; transitions: %s", from, to, describeTransitions(r.transitions()))
		}
	}}
}

func countArrow(ts []tcpext.Transition, from, to tcpext.State) int {
	n := 0
	for _, tr := range ts {
		if tr.From == from && tr.To == to {
			n++
		}
	}
	return n
}

func describeTransitions(ts []tcpext.Transition) string {
	var parts []string
	for _, tr := range ts {
		parts = append(parts, fmt.Sprintf("#%d %s→%s (%s)", tr.ID, tr.From, tr.To, tr.Cause))
	}
	return strings.Join(parts, ", ")
}

// check runs an assertion written in Go, for what the steps above do not
// cover (counters, timers, RTT variables).
func check(name string, f func(r *runner)) step {
	return step{name: name, do: f}
}

// tcbCheck asserts on the current TCB.
func tcbCheck(name string, f func(info tcpext.TCBInfo) string) step {
	return step{name: name, do: func(r *runner) {
		if msg := f(r.tcb()); msg != "" {
			r.fatalf("%s", msg)
		}
	}}
}

// timer returns the remaining time of the named timer, or -1.
func timer(info tcpext.TCBInfo, name string) time.Duration {
	for _, t := range info.Timers {
		if t.Name == name {
			return time.Duration(t.RemainingMS) * ms
		}
	}
	return -1
}

// icmp injects an ICMPv4 destination unreachable (type 3) with code, next-hop
// MTU (for code 4) and the quoted datagram: an IPv4 header from the DUT to the
// peer and the first 8 bytes of a TCP header of the current 4-tuple with
// sequence number seq, as RFC 792 requires at least.
func icmp(code header.ICMPv4Code, mtu uint16, seq uint32) step {
	return step{name: fmt.Sprintf("ICMP unreachable code %d mtu %d quoting seq %d", code, mtu, seq), do: func(r *runner) {
		r.d.injectICMPUnreachable(code, mtu, r.local, r.remote, seq)
	}}
}

// injectICMPUnreachable sends the DUT an ICMPv4 destination unreachable
// from the peer quoting a segment local→remote with sequence number seq.
func (d *dut) injectICMPUnreachable(code header.ICMPv4Code, mtu, local, remote uint16, seq uint32) {
	quoted := make([]byte, header.IPv4MinimumSize+8)
	qip := header.IPv4(quoted)
	qip.Encode(&header.IPv4Fields{
		TotalLength: uint16(header.IPv4MinimumSize + header.TCPMinimumSize),
		TTL:         64,
		Protocol:    uint8(header.TCPProtocolNumber),
		SrcAddr:     dutAddr,
		DstAddr:     peerAddr,
	})
	qip.SetChecksum(^qip.CalculateChecksum())
	binary.BigEndian.PutUint16(quoted[20:], local)
	binary.BigEndian.PutUint16(quoted[22:], remote)
	binary.BigEndian.PutUint32(quoted[24:], seq)

	msg := make([]byte, header.ICMPv4MinimumSize+len(quoted))
	ih := header.ICMPv4(msg)
	ih.SetType(header.ICMPv4DstUnreachable)
	ih.SetCode(code)
	ih.SetMTU(mtu)
	copy(msg[header.ICMPv4MinimumSize:], quoted)
	ih.SetChecksum(^checksum.Checksum(msg, 0))

	ip := make([]byte, header.IPv4MinimumSize+len(msg))
	h := header.IPv4(ip)
	h.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(ip)),
		TTL:         64,
		Protocol:    uint8(header.ICMPv4ProtocolNumber),
		SrcAddr:     peerAddr,
		DstAddr:     dutAddr,
	})
	h.SetChecksum(^h.CalculateChecksum())
	copy(ip[header.IPv4MinimumSize:], msg)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(ip)})
	d.link.InjectInbound(ipv4.ProtocolNumber, pkt)
	pkt.DecRef()
}
