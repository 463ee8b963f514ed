package tcpext_test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/synfin/synfin/tcpext"
)

// The segment-level conformance suite of issue 3. Each case is a script (see
// script_test.go) run against a fresh DUT; every state transition of every
// TCB is recorded through Options.OnTransition, and once all cases have run
// TestConformance lists which arrows of the RFC 9293 state diagram the
// passing cases took, failing if one is missing.

// conformanceOptions are the protocol options of the suite: short MSL and
// FIN-WAIT-2 timeout so the timers are quick to reach on the manual clock.
func conformanceOptions() tcpext.Options {
	o := tcpext.DefaultOptions()
	o.MSL = 2 * time.Second
	o.FinWait2Timeout = 10 * time.Second
	return o
}

const (
	twoMSL = 4 * time.Second  // 2 * conformanceOptions().MSL
	fw2    = 10 * time.Second // conformanceOptions().FinWait2Timeout
)

// conformanceCase is one script and the rule it checks.
type conformanceCase struct {
	name   string
	rule   string // the RFC rule, printed when the case fails
	opts   func(*tcpext.Options)
	script []step
}

// diagramArrows are the arrows of the RFC 9293 section 3.3.2 state diagram
// (with Stevens' FIN-WAIT-1 → TIME-WAIT shortcut for a FIN that acknowledges
// our FIN, and SYN-RECEIVED → CLOSED for a reset active open).
var diagramArrows = [][2]tcpext.State{
	{tcpext.StateClosed, tcpext.StateListen},
	{tcpext.StateClosed, tcpext.StateSynSent},
	{tcpext.StateListen, tcpext.StateSynReceived},
	{tcpext.StateListen, tcpext.StateSynSent},
	{tcpext.StateListen, tcpext.StateClosed},
	{tcpext.StateSynSent, tcpext.StateClosed},
	{tcpext.StateSynSent, tcpext.StateSynReceived},
	{tcpext.StateSynSent, tcpext.StateEstablished},
	{tcpext.StateSynReceived, tcpext.StateListen},
	{tcpext.StateSynReceived, tcpext.StateEstablished},
	{tcpext.StateSynReceived, tcpext.StateFinWait1},
	{tcpext.StateSynReceived, tcpext.StateClosed},
	{tcpext.StateEstablished, tcpext.StateFinWait1},
	{tcpext.StateEstablished, tcpext.StateCloseWait},
	{tcpext.StateFinWait1, tcpext.StateFinWait2},
	{tcpext.StateFinWait1, tcpext.StateClosing},
	{tcpext.StateFinWait1, tcpext.StateTimeWait},
	{tcpext.StateFinWait2, tcpext.StateTimeWait},
	{tcpext.StateClosing, tcpext.StateTimeWait},
	{tcpext.StateTimeWait, tcpext.StateClosed},
	{tcpext.StateCloseWait, tcpext.StateLastAck},
	{tcpext.StateLastAck, tcpext.StateClosed},
}

func TestConformance(t *testing.T) {
	cases := conformanceCases()
	covered := map[[2]tcpext.State][]string{}
	ran := 0
	for _, c := range cases {
		var trans []tcpext.Transition
		passed := t.Run(c.name, func(t *testing.T) {
			ran++
			defer func() {
				if t.Failed() {
					t.Logf("rule checked: %s", c.rule)
				}
			}()
			o := conformanceOptions()
			if c.opts != nil {
				c.opts(&o)
			}
			r := newRunner(t, o)
			r.script(c.script...)
			trans = r.finish()
		})
		// Only passing cases count: an arrow taken on the way to a failure
		// is not proven.
		if passed {
			for _, tr := range trans {
				a := [2]tcpext.State{tr.From, tr.To}
				covered[a] = append(covered[a], c.name)
			}
		}
	}
	if ran < len(cases) {
		t.Logf("arrow coverage not checked: %d of %d cases ran", ran, len(cases))
		return
	}
	var report strings.Builder
	report.WriteString("RFC 9293 state diagram arrows covered by passing cases:\n")
	var missing []string
	inDiagram := map[[2]tcpext.State]bool{}
	for _, a := range diagramArrows {
		inDiagram[a] = true
		names := uniq(covered[a])
		if len(names) == 0 {
			missing = append(missing, fmt.Sprintf("%s → %s", a[0], a[1]))
			fmt.Fprintf(&report, "  MISSING  %-14s → %s\n", a[0], a[1])
			continue
		}
		fmt.Fprintf(&report, "  ok       %-14s → %-14s %d case(s), e.g. %q\n", a[0], a[1], len(names), names[0])
	}
	var extra []string
	for a, names := range covered {
		if !inDiagram[a] {
			extra = append(extra, fmt.Sprintf("  %-14s → %-14s %d case(s)", a[0], a[1], len(uniq(names))))
		}
	}
	sort.Strings(extra)
	report.WriteString("other arrows taken (aborts, resets, timeouts):\n")
	report.WriteString(strings.Join(extra, "\n"))
	t.Log(report.String())
	if len(missing) > 0 {
		t.Errorf("%d diagram arrow(s) not covered by a passing case: %s", len(missing), strings.Join(missing, ", "))
	}
}

func uniq(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// activeOpen is the DUT's three-way handshake to the peer's port 80: ISS
// 1000, peer ISN 5000, both announcing MSS 1460.
func activeOpen() step {
	return steps("active open",
		connectTo(80),
		out(syn, 1000, 0, withMSS(wantMSS), win(65535)),
		stateIs("SYN-SENT"),
		in(synAck, 5000, 1001, withMSS(wantMSS)),
		out(ack, 1001, 5001, win(65535)),
		stateIs("ESTABLISHED"),
	)
}

// passiveOpen is the peer's handshake from port 40000 to a listener on 7.
func passiveOpen() step {
	return steps("passive open",
		listenOn(7, 8),
		in(syn, 5000, 0, withMSS(wantMSS)),
		out(synAck, 1000, 5001, withMSS(wantMSS), win(65535)),
		stateIs("SYN-RECEIVED"),
		in(ack, 5001, 1001),
		stateIs("ESTABLISHED"),
		acceptConn(),
	)
}

// toTimeWait is the DUT's active close of a connection with nothing sent
// either way, the peer acknowledging our FIN before sending its own.
func toTimeWait() step {
	return steps("active close to TIME-WAIT",
		closeApp(),
		out(finAck, 1001, 5001),
		in(ack, 5001, 1002),
		stateIs("FIN-WAIT-2"),
		in(finAck, 5001, 1002),
		out(ack, 1002, 5002),
		stateIs("TIME-WAIT"),
	)
}

// simultaneousSYN gets the DUT from an active open into SYN-RECEIVED by a
// crossing SYN.
func simultaneousSYN() step {
	return steps("simultaneous open to SYN-RECEIVED",
		connectTo(80),
		out(syn, 1000, 0),
		in(syn, 5000, 0, withMSS(wantMSS)),
		out(synAck, 1000, 5001, withMSS(wantMSS)),
		stateIs("SYN-RECEIVED"),
	)
}

func conformanceCases() []conformanceCase {
	var cases []conformanceCase
	cases = append(cases, lifecycleCases()...)
	cases = append(cases, timeWaitCases()...)
	cases = append(cases, openingCases()...)
	cases = append(cases, resetCases()...)
	cases = append(cases, keepaliveCases()...)
	cases = append(cases, deliveryCases()...)
	cases = append(cases, retransmissionCases()...)
	cases = append(cases, icmpCases()...)
	cases = append(cases, pshUrgCases()...)
	cases = append(cases, persistCases()...)
	return cases
}

// lifecycleCases walk the arrows of the state diagram.
func lifecycleCases() []conformanceCase {
	return []conformanceCase{{
		name: "passive open, peer closes first, half-close in CLOSE-WAIT",
		rule: "RFC 9293 3.5, 3.6: LISTEN → SYN-RECEIVED → ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED; CLOSE-WAIT still sends",
		script: []step{
			passiveOpen(),
			took(tcpext.StateClosed, tcpext.StateListen),
			took(tcpext.StateListen, tcpext.StateSynReceived),
			took(tcpext.StateSynReceived, tcpext.StateEstablished),
			in(ack|psh, 5001, 1001, data("hello")),
			out(ack, 1001, 5006),
			recv("hello"),
			in(finAck, 5006, 1001),
			out(ack, 1001, 5007),
			stateIs("CLOSE-WAIT"),
			recvErr(&tcpip.ErrClosedForReceive{}),
			send("bye"),
			out(ack|psh, 1001, 5007, data("bye")),
			in(ack, 5007, 1004),
			closeApp(),
			out(finAck, 1004, 5007),
			stateIs("LAST-ACK"),
			in(ack, 5007, 1005),
			stateIs(""),
			took(tcpext.StateCloseWait, tcpext.StateLastAck),
			took(tcpext.StateLastAck, tcpext.StateClosed),
			listenerIs(7, "LISTEN"),
		},
	}, {
		name: "active open, DUT closes first, FIN-WAIT states keep receiving, TIME-WAIT lasts 2*MSL",
		rule: "RFC 9293 3.5, 3.6, 3.6.1: SYN-SENT → ESTABLISHED → FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED after 2*MSL; after our FIN we keep receiving",
		script: []step{
			activeOpen(),
			took(tcpext.StateClosed, tcpext.StateSynSent),
			took(tcpext.StateSynSent, tcpext.StateEstablished),
			shutWr(),
			out(finAck, 1001, 5001),
			stateIs("FIN-WAIT-1"),
			in(ack|psh, 5001, 1001, data("more")),
			out(ack, 1002, 5005),
			recv("more"),
			in(ack, 5005, 1002),
			stateIs("FIN-WAIT-2"),
			in(ack|psh, 5005, 1002, data("still")),
			out(ack, 1002, 5010),
			recv("still"),
			in(finAck, 5010, 1002),
			out(ack, 1002, 5011),
			stateIs("TIME-WAIT"),
			recvErr(&tcpip.ErrClosedForReceive{}),
			tcbCheck("TIME-WAIT timer is 2*MSL", func(info tcpext.TCBInfo) string {
				if d := timer(info, "time-wait"); d != twoMSL {
					return fmt.Sprintf("time-wait timer %v, want %v; timers %+v", d, twoMSL, info.Timers)
				}
				return ""
			}),
			advance(twoMSL - ms),
			stateIs("TIME-WAIT"),
			advance(ms),
			stateIs(""),
			took(tcpext.StateEstablished, tcpext.StateFinWait1),
			took(tcpext.StateFinWait1, tcpext.StateFinWait2),
			took(tcpext.StateFinWait2, tcpext.StateTimeWait),
			took(tcpext.StateTimeWait, tcpext.StateClosed),
		},
	}, {
		name: "simultaneous open as in RFC 9293 figure 7: SYN,ACK completes SYN-RECEIVED",
		rule: "RFC 9293 3.5 figure 7: a bare SYN in SYN-SENT → SYN-RECEIVED on the same TCB; the peer's SYN,ACK <SEQ=ISN><ACK=ISS+1> takes it to ESTABLISHED",
		script: []step{
			simultaneousSYN(),
			took(tcpext.StateSynSent, tcpext.StateSynReceived),
			check("one TCB, not two", func(r *runner) {
				if n := len(r.d.proto.TCBs()); n != 1 {
					r.fatalf("%d TCBs, want 1: %s", n, r.table())
				}
				ts := r.transitions()
				if len(ts) != 2 || ts[0].ID != ts[1].ID {
					r.fatalf("transitions %s, want CLOSED→SYN-SENT→SYN-RECEIVED on one TCB", describeTransitions(ts))
				}
			}),
			in(synAck, 5000, 1001, withMSS(wantMSS)),
			maybeOut(ack, 1001, 5001),
			stateIs("ESTABLISHED"),
			send("x"),
			out(ack|psh, 1001, 5001, data("x")),
		},
	}, {
		name: "simultaneous open completed by the peer's ACK",
		rule: "RFC 9293 3.10.7.4: SYN-RECEIVED (from SYN-SENT) → ESTABLISHED on an acceptable ACK",
		script: []step{
			simultaneousSYN(),
			in(ack, 5001, 1001),
			silence(),
			stateIs("ESTABLISHED"),
			took(tcpext.StateSynReceived, tcpext.StateEstablished),
			check("one TCB", func(r *runner) {
				if n := len(r.d.proto.TCBs()); n != 1 {
					r.fatalf("%d TCBs, want 1: %s", n, r.table())
				}
			}),
			send("x"),
			out(ack|psh, 1001, 5001, data("x")),
		},
	}, {
		name: "close in SYN-RECEIVED of a simultaneous open",
		rule: "RFC 9293 3.10.4: CLOSE in SYN-RECEIVED with nothing to send sends FIN, → FIN-WAIT-1",
		script: []step{
			simultaneousSYN(),
			closeApp(),
			out(finAck, 1001, 5001),
			stateIs("FIN-WAIT-1"),
			took(tcpext.StateSynReceived, tcpext.StateFinWait1),
			in(ack, 5001, 1002),
			stateIs("FIN-WAIT-2"),
			in(finAck, 5001, 1002),
			out(ack, 1002, 5002),
			stateIs("TIME-WAIT"),
		},
	}, {
		name: "RST in SYN-RECEIVED of a passive open returns to LISTEN",
		rule: "RFC 9293 3.10.7.4 (second, SYN-RECEIVED): RST from a passive open → LISTEN; the listener keeps listening",
		script: []step{
			listenOn(7, 8),
			in(syn, 5000, 0),
			out(synAck, 1000, 5001),
			in(rst, 5001, 0),
			silence(),
			stateIs(""),
			took(tcpext.StateSynReceived, tcpext.StateListen),
			notTook(tcpext.StateSynReceived, tcpext.StateClosed),
			listenerIs(7, "LISTEN"),
			in(syn, 7000, 0),
			out(synAck, 1000, 7001),
			stateIs("SYN-RECEIVED"),
		},
	}, {
		name: "RST in SYN-RECEIVED of an active open closes",
		rule: "RFC 9293 3.10.7.4 (second, SYN-RECEIVED): RST from an active open → CLOSED, connection refused",
		script: []step{
			simultaneousSYN(),
			in(rst, 5001, 0),
			silence(),
			stateIs(""),
			took(tcpext.StateSynReceived, tcpext.StateClosed),
			lastErr(&tcpip.ErrConnectionRefused{}),
		},
	}, {
		name: "connect on a listening endpoint",
		rule: "RFC 9293 3.10.2: SEND (here Connect) in LISTEN → SYN-SENT from the listening port",
		script: []step{
			listenOn(7, 8),
			connectListener(80),
			out(syn, 1000, 0, dutPort(7)),
			took(tcpext.StateListen, tcpext.StateSynSent),
			in(synAck, 5000, 1001),
			out(ack, 1001, 5001),
			stateIs("ESTABLISHED"),
			listenerIs(7, ""),
		},
	}, {
		name: "close a listener",
		rule: "RFC 9293 3.10.4: CLOSE in LISTEN → CLOSED; the port then answers SYNs with RST",
		script: []step{
			listenOn(7, 8),
			closeListener(),
			listenerIs(7, ""),
			took(tcpext.StateListen, tcpext.StateClosed),
			in(syn, 5000, 0),
			out(rst|ack, 0, 5001),
		},
	}, {
		name: "close in SYN-SENT",
		rule: "RFC 9293 3.10.4: CLOSE in SYN-SENT deletes the TCB, nothing sent",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			closeApp(),
			silence(),
			stateIs(""),
			took(tcpext.StateSynSent, tcpext.StateClosed),
			advance(time.Minute),
			silence(),
		},
	}, {
		name: "simultaneous close through CLOSING",
		rule: "RFC 9293 3.6 figure 13: FIN in FIN-WAIT-1 not acking ours → CLOSING; ACK of our FIN → TIME-WAIT",
		script: []step{
			activeOpen(),
			closeApp(),
			out(finAck, 1001, 5001),
			in(finAck, 5001, 1001),
			out(ack, 1002, 5002),
			stateIs("CLOSING"),
			took(tcpext.StateFinWait1, tcpext.StateClosing),
			in(ack, 5002, 1002),
			stateIs("TIME-WAIT"),
			took(tcpext.StateClosing, tcpext.StateTimeWait),
			advance(twoMSL),
			stateIs(""),
		},
	}, {
		name: "FIN that also acknowledges our FIN: FIN-WAIT-1 → TIME-WAIT",
		rule: "state diagram (Stevens fig. 18.12, the brief's FIN-WAIT-1 → TIME-WAIT arrow): FIN+ACK of our FIN in FIN-WAIT-1 goes straight to TIME-WAIT",
		script: []step{
			activeOpen(),
			closeApp(),
			out(finAck, 1001, 5001),
			in(finAck, 5001, 1002),
			out(ack, 1002, 5002),
			stateIs("TIME-WAIT"),
			took(tcpext.StateFinWait1, tcpext.StateTimeWait),
			notTook(tcpext.StateFinWait1, tcpext.StateFinWait2),
		},
	}}
}

// timeWaitCases check TIME-WAIT and FIN-WAIT-2 rules.
func timeWaitCases() []conformanceCase {
	return []conformanceCase{{
		name: "TIME-WAIT: a retransmitted FIN is ACKed again and restarts 2*MSL",
		rule: "RFC 9293 3.10.7.4 (eighth, TIME-WAIT): a retransmitted FIN is acknowledged and the 2*MSL timeout restarted",
		script: []step{
			activeOpen(),
			toTimeWait(),
			advance(3 * time.Second),
			in(finAck, 5001, 1002),
			out(ack, 1002, 5002),
			tcbCheck("timer restarted", func(info tcpext.TCBInfo) string {
				if d := timer(info, "time-wait"); d != twoMSL {
					return fmt.Sprintf("time-wait timer %v, want %v", d, twoMSL)
				}
				return ""
			}),
			advance(twoMSL - ms),
			stateIs("TIME-WAIT"),
			advance(ms),
			stateIs(""),
		},
	}, {
		name: "TIME-WAIT: RST is ignored",
		rule: "RFC 1337: a RST in TIME-WAIT neither ends nor restarts TIME-WAIT, and is not answered",
		script: []step{
			activeOpen(),
			toTimeWait(),
			advance(time.Second),
			in(rst, 5002, 0),
			silence(),
			in(rst|ack, 5002, 1002),
			silence(),
			stateIs("TIME-WAIT"),
			advance(twoMSL - time.Second - ms),
			stateIs("TIME-WAIT"),
			advance(ms),
			stateIs(""),
		},
	}, {
		name: "TIME-WAIT: a new SYN with a greater ISN opens a new connection",
		rule: "RFC 9293 3.10.7.4 / RFC 6191: a SYN in TIME-WAIT whose ISN is beyond RCV.NXT ends TIME-WAIT; the listener takes it as a new SYN-RECEIVED child",
		script: []step{
			passiveOpen(),
			toTimeWait(),
			setISN(3000),
			in(syn, 6000, 0, withMSS(wantMSS)),
			out(synAck, 3000, 6001),
			stateIs("SYN-RECEIVED"),
			took(tcpext.StateTimeWait, tcpext.StateClosed),
			check("a second child of the listener", func(r *runner) {
				if n := countArrow(r.transitions(), tcpext.StateListen, tcpext.StateSynReceived); n != 2 {
					r.fatalf("LISTEN → SYN-RECEIVED taken %d times, want 2", n)
				}
			}),
			in(ack, 6001, 3001),
			stateIs("ESTABLISHED"),
			acceptConn(),
			in(ack|psh, 6001, 3001, data("new")),
			out(ack, 3001, 6004),
			recv("new"),
		},
	}, {
		name: "TIME-WAIT: a new SYN with a smaller ISN is answered by an ACK",
		rule: "RFC 9293 3.10.7.4 / RFC 6191: a SYN in TIME-WAIT not beyond RCV.NXT is an old duplicate: ACK it, stay in TIME-WAIT",
		script: []step{
			passiveOpen(),
			toTimeWait(),
			in(syn, 4000, 0),
			out(ack, 1002, 5002),
			stateIs("TIME-WAIT"),
			notTook(tcpext.StateTimeWait, tcpext.StateClosed),
			check("no new child", func(r *runner) {
				if n := countArrow(r.transitions(), tcpext.StateListen, tcpext.StateSynReceived); n != 1 {
					r.fatalf("LISTEN → SYN-RECEIVED taken %d times, want 1", n)
				}
			}),
		},
	}, {
		name: "FIN-WAIT-2 times out after a full close",
		rule: "issue 3 (tcp.fin_wait2_timeout): after a full close FIN-WAIT-2 is bounded, so a peer that never closes cannot pin the TCB",
		script: []step{
			activeOpen(),
			closeApp(),
			out(finAck, 1001, 5001),
			in(ack, 5001, 1002),
			stateIs("FIN-WAIT-2"),
			tcbCheck("fin-wait-2 timer", func(info tcpext.TCBInfo) string {
				if d := timer(info, "fin-wait-2"); d != fw2 {
					return fmt.Sprintf("fin-wait-2 timer %v, want %v; timers %+v", d, fw2, info.Timers)
				}
				return ""
			}),
			advance(fw2 - ms),
			stateIs("FIN-WAIT-2"),
			advance(ms),
			// Linux resets the peer here; RFC 9293 says nothing.
			maybeOut(rst, 1002, 0),
			stateIs(""),
		},
	}, {
		name: "FIN-WAIT-2 has no timeout after shutdown(write)",
		rule: "issue 3: a half-close keeps FIN-WAIT-2 without limit and keeps receiving",
		script: []step{
			activeOpen(),
			shutWr(),
			out(finAck, 1001, 5001),
			in(ack, 5001, 1002),
			stateIs("FIN-WAIT-2"),
			tcbCheck("no fin-wait-2 timer", func(info tcpext.TCBInfo) string {
				if d := timer(info, "fin-wait-2"); d >= 0 {
					return fmt.Sprintf("fin-wait-2 timer running (%v)", d)
				}
				return ""
			}),
			advance(10 * fw2),
			silence(),
			stateIs("FIN-WAIT-2"),
			in(ack|psh, 5001, 1002, data("late")),
			out(ack, 1002, 5005),
			recv("late"),
		},
	}}
}

// openingCases check quiet time, ports, bind and the listen backlog.
func openingCases() []conformanceCase {
	return []conformanceCase{{
		name: "quiet time: SYNs dropped and Connect refused until it passes",
		rule: "RFC 9293 3.4.3: no new connections during the quiet time after start",
		opts: func(o *tcpext.Options) { o.QuietTime = 10 * time.Second },
		script: []step{
			listenOn(7, 8),
			in(syn, 5000, 0),
			silence(),
			stateIs(""),
			connectErr(80, &tcpip.ErrConnectionRefused{}),
			silence(),
			advance(10*time.Second - ms),
			in(syn, 5000, 0),
			silence(),
			stateIs(""),
			advance(ms),
			in(syn, 5000, 0),
			out(synAck, 1000, 5001),
			stateIs("SYN-RECEIVED"),
			connectTo(80),
			out(syn, 1000, 0),
		},
	}, {
		name: "ephemeral ports are in 49152-65535",
		rule: "RFC 6335 section 6 / RFC 6056: ephemeral ports from the dynamic range, distinct for concurrent connections",
		script: []step{
			check("20 connects and a listener without bind", func(r *runner) {
				seen := map[uint16]bool{}
				for i := range 20 {
					r.run(connectTo(uint16(80 + i)))
					if r.local < 49152 || seen[r.local] {
						r.fatalf("ephemeral port %d: outside 49152-65535 or reused", r.local)
					}
					seen[r.local] = true
					r.run(out(syn, 1000, 0))
				}
				ep, _ := r.newEndpoint()
				if err := ep.Listen(1); err != nil {
					r.fatalf("Listen without Bind: %v", err)
				}
				if a, _ := ep.GetLocalAddress(); a.Port < 49152 {
					r.fatalf("listener got port %d, want 49152-65535", a.Port)
				}
				b, _ := r.newEndpoint()
				if err := b.Bind(tcpip.FullAddress{}); err != nil {
					r.fatalf("Bind port 0: %v", err)
				}
				if a, _ := b.GetLocalAddress(); a.Port < 49152 {
					r.fatalf("Bind to port 0 got port %d, want 49152-65535", a.Port)
				}
			}),
		},
	}, {
		name: "bind conflicts report ErrPortInUse",
		rule: "issue 3: a second bind of a port in use is a clear error",
		script: []step{
			check("bind 7 twice", func(r *runner) {
				a, _ := r.newEndpoint()
				if err := a.Bind(tcpip.FullAddress{Port: 7}); err != nil {
					r.fatalf("first Bind: %v", err)
				}
				b, _ := r.newEndpoint()
				if err := b.Bind(tcpip.FullAddress{Port: 7}); !sameError(err, &tcpip.ErrPortInUse{}) {
					r.fatalf("second Bind: %v, want ErrPortInUse", err)
				}
				if err := a.Listen(8); err != nil {
					r.fatalf("Listen: %v", err)
				}
				c, _ := r.newEndpoint()
				if err := c.Bind(tcpip.FullAddress{Port: 7}); !sameError(err, &tcpip.ErrPortInUse{}) {
					r.fatalf("Bind of a listening port: %v, want ErrPortInUse", err)
				}
			}),
		},
	}, {
		name: "rebinding a port whose old connection is in TIME-WAIT",
		rule: "issue 3: binding a local port whose old connection is in TIME-WAIT works, and the two incarnations are never confused",
		script: []step{
			passiveOpen(),
			toTimeWait(),
			closeListener(),
			listenOn(7, 8),
			listenerIs(7, "LISTEN"),
			// The old 4-tuple still belongs to the TIME-WAIT TCB.
			in(finAck, 5001, 1002),
			out(ack, 1002, 5002),
			stateIs("TIME-WAIT"),
			// A new peer port reaches the new listener.
			peer(40001),
			setISN(2000),
			in(syn, 9000, 0),
			out(synAck, 2000, 9001),
			in(ack, 9001, 2001),
			stateIs("ESTABLISHED"),
			acceptConn(),
			peer(40000),
			stateIs("TIME-WAIT"),
			advance(twoMSL),
			stateIs(""),
			peer(40001),
			stateIs("ESTABLISHED"),
		},
	}, {
		name: "listen backlog overflow drops the SYN; a retransmitted SYN succeeds after accept",
		rule: "issue 3 / listen.go: SYN-RECEIVED children plus unaccepted connections are bounded by the backlog; an extra SYN is dropped silently and counted (ListenOverflows)",
		script: []step{
			listenOn(7, 1),
			in(syn, 5000, 0),
			out(synAck, 1000, 5001),
			in(ack, 5001, 1001),
			stateIs("ESTABLISHED"),
			peer(40001),
			in(syn, 7000, 0),
			silence(),
			stateIs(""),
			check("counted", func(r *runner) {
				if n := r.d.proto.Stats().ListenOverflows; n != 1 {
					r.fatalf("ListenOverflows = %d, want 1", n)
				}
			}),
			acceptConn(),
			peer(40001),
			in(syn, 7000, 0),
			out(synAck, 1000, 7001),
			stateIs("SYN-RECEIVED"),
			// The SYN-RECEIVED child counts against the backlog too.
			peer(40002),
			in(syn, 8000, 0),
			silence(),
			stateIs(""),
		},
	}}
}

// resetCases check RST generation (RFC 9293 3.5.2, 3.10.7) and RFC 5961.
func resetCases() []conformanceCase {
	return []conformanceCase{{
		name: "RST for a segment to a port with no listener",
		rule: "RFC 9293 3.10.7.1: ACK off → <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; ACK on → <SEQ=SEG.ACK><CTL=RST>; a RST is not answered",
		script: []step{
			in(syn, 100, 0, dutPort(81)),
			out(rst|ack, 0, 101, dutPort(81)),
			in(syn, 100, 0, dutPort(81), data("abc")),
			out(rst|ack, 0, 104, dutPort(81)),
			in(fin, 200, 0, dutPort(81)),
			out(rst|ack, 0, 201, dutPort(81)),
			in(ack|psh, 100, 777, dutPort(81), data("x")),
			out(rst, 777, 0, dutPort(81)),
			in(rst, 100, 0, dutPort(81)),
			in(rst|ack, 100, 777, dutPort(81)),
			silence(),
		},
	}, {
		name: "unacceptable ACK in SYN-SENT is answered by RST",
		rule: "RFC 9293 3.10.7.3: in SYN-SENT an ACK =< ISS or > SND.NXT gets <SEQ=SEG.ACK><CTL=RST>; a RST with such an ACK is dropped",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			in(synAck, 5000, 2000),
			out(rst, 2000, 0),
			stateIs("SYN-SENT"),
			in(ack, 5000, 1000),
			out(rst, 1000, 0),
			in(rst|ack, 0, 2000),
			silence(),
			stateIs("SYN-SENT"),
			in(synAck, 5000, 1001),
			out(ack, 1001, 5001),
			stateIs("ESTABLISHED"),
		},
	}, {
		name: "RST acknowledging our SYN refuses the connection",
		rule: "RFC 9293 3.10.7.3: an acceptable RST in SYN-SENT → CLOSED, connection refused",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			in(rst|ack, 0, 1001),
			silence(),
			stateIs(""),
			took(tcpext.StateSynSent, tcpext.StateClosed),
			lastErr(&tcpip.ErrConnectionRefused{}),
		},
	}, {
		name: "unacceptable ACK in SYN-RECEIVED is answered by RST",
		rule: "RFC 9293 3.10.7.4 (fifth, SYN-RECEIVED): an ACK outside SND.UNA < SEG.ACK =< SND.NXT gets <SEQ=SEG.ACK><CTL=RST>",
		script: []step{
			listenOn(7, 8),
			in(syn, 5000, 0),
			out(synAck, 1000, 5001),
			in(ack, 5001, 5555),
			out(rst, 5555, 0),
			stateIs("SYN-RECEIVED"),
			in(ack, 5001, 1000),
			out(rst, 1000, 0),
			stateIs("SYN-RECEIVED"),
			in(ack, 5001, 1001),
			silence(),
			stateIs("ESTABLISHED"),
		},
	}, {
		name: "data after a full close is answered by RST",
		rule: "RFC 1122 4.2.2.13 / RFC 9293 3.10.7.4: data arriving after the application closed is lost, so the peer gets a RST",
		script: []step{
			activeOpen(),
			closeApp(),
			out(finAck, 1001, 5001),
			in(ack|psh, 5001, 1002, data("late")),
			out(rst, 1002, 0),
			stateIs(""),
		},
	}, {
		name: "data after a full close in FIN-WAIT-2 is answered by RST",
		rule: "RFC 1122 4.2.2.13: as above, in FIN-WAIT-2",
		script: []step{
			activeOpen(),
			closeApp(),
			out(finAck, 1001, 5001),
			in(ack, 5001, 1002),
			stateIs("FIN-WAIT-2"),
			in(ack|psh, 5001, 1002, data("late")),
			out(rst, 1002, 0),
			stateIs(""),
		},
	}, {
		name: "close with linger 0 sends RST and drops queued data",
		rule: "RFC 9293 3.10.5 (ABORT) via SO_LINGER 0: <SEQ=SND.NXT><CTL=RST>, queued data never sent",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			in(synAck, 5000, 1001, win(0)),
			out(ack, 1001, 5001),
			send("queued"),
			silence(),
			linger0(),
			closeApp(),
			out(rst, 1001, 0),
			stateIs(""),
			advance(time.Minute),
			silence(),
		},
	}, {
		name: "abort sends RST",
		rule: "RFC 9293 3.10.5: ABORT in a synchronized state sends <SEQ=SND.NXT><CTL=RST>",
		script: []step{
			activeOpen(),
			abortApp(),
			out(rst, 1001, 0),
			stateIs(""),
			recvErr(&tcpip.ErrConnectionAborted{}),
		},
	}, {
		name: "RFC 5961: RST with the exact sequence number resets",
		rule: "RFC 5961 3.2: SEG.SEQ = RCV.NXT resets; the application sees a reset, not an EOF",
		script: []step{
			activeOpen(),
			in(rst, 5001, 0),
			silence(),
			stateIs(""),
			recvErr(&tcpip.ErrConnectionReset{}),
			sendErr(&tcpip.ErrConnectionReset{}),
		},
	}, {
		name: "a RST after the peer's FIN is reported, not hidden by the end of file",
		rule: "RFC 9293 3.10.7.4: a RST in CLOSE-WAIT closes the connection and outstanding RECEIVEs get \"reset\" responses",
		script: []step{
			activeOpen(),
			in(finAck, 5001, 1001),
			out(ack, 1001, 5002),
			stateIs("CLOSE-WAIT"),
			in(rst, 5002, 0),
			stateIs(""),
			recvErr(&tcpip.ErrConnectionReset{}),
		},
	}, {
		// gVisor's TCP gets this wrong and stays in CLOSING for good
		// (refStuckInClosing, impairwire_test.go).
		name: "an ACK of our FIN that overtakes the peer's FIN still ends FIN-WAIT-1",
		rule: "RFC 9293 3.10.7.4: a segment beyond RCV.NXT but in the window is acceptable, and its ACK field is processed: FIN-WAIT-1 → FIN-WAIT-2, then the FIN → TIME-WAIT",
		script: []step{
			activeOpen(),
			closeApp(),
			out(finAck, 1001, 5001),
			stateIs("FIN-WAIT-1"),
			in(ack, 5002, 1002),
			stateIs("FIN-WAIT-2"),
			in(finAck, 5001, 1001),
			out(ack, 1002, 5002),
			stateIs("TIME-WAIT"),
		},
	}, {
		name: "RFC 5961: in-window RST that is not exact gets a challenge ACK",
		rule: "RFC 5961 3.2: RCV.NXT < SEG.SEQ < RCV.NXT+RCV.WND → challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT>, no reset",
		script: []step{
			activeOpen(),
			in(rst, 5100, 0),
			out(ack, 1001, 5001),
			stateIs("ESTABLISHED"),
			tcbCheck("counted", func(info tcpext.TCBInfo) string {
				if info.Counters.ChallengeACKs != 1 {
					return fmt.Sprintf("challenge_acks = %d, want 1", info.Counters.ChallengeACKs)
				}
				return ""
			}),
			in(rst, 5001, 0),
			stateIs(""),
			recvErr(&tcpip.ErrConnectionReset{}),
		},
	}, {
		name: "RFC 5961: out-of-window RST is dropped silently",
		rule: "RFC 5961 3.2 / RFC 9293 3.10.7.4: a RST outside the window is dropped without reply",
		script: []step{
			activeOpen(),
			in(rst, 5001+65535, 0),
			in(rst, 5000, 0),
			in(rst|ack, 4000, 1001),
			silence(),
			stateIs("ESTABLISHED"),
			tcbCheck("no challenge", func(info tcpext.TCBInfo) string {
				if info.Counters.ChallengeACKs != 0 {
					return fmt.Sprintf("challenge_acks = %d, want 0", info.Counters.ChallengeACKs)
				}
				return ""
			}),
		},
	}, {
		name: "RFC 5961: SYN in ESTABLISHED gets a challenge ACK",
		rule: "RFC 5961 4.2: a SYN in a synchronized state, whatever its sequence number, gets a challenge ACK and does not reset",
		script: []step{
			activeOpen(),
			in(syn, 5001, 0),
			out(ack, 1001, 5001),
			in(syn, 9000, 0),
			out(ack, 1001, 5001),
			in(syn, 100000, 0),
			out(ack, 1001, 5001),
			stateIs("ESTABLISHED"),
			tcbCheck("counted", func(info tcpext.TCBInfo) string {
				if info.Counters.ChallengeACKs < 2 {
					return fmt.Sprintf("challenge_acks = %d, want at least the 2 in-window SYNs", info.Counters.ChallengeACKs)
				}
				return ""
			}),
			send("x"),
			out(ack|psh, 1001, 5001, data("x")),
		},
	}, {
		name: "RFC 5961: challenge ACKs are rate limited",
		rule: "RFC 5961 7: at most ChallengeACKLimit challenge ACKs per second",
		opts: func(o *tcpext.Options) { o.ChallengeACKLimit = 2 },
		script: []step{
			activeOpen(),
			in(rst, 5100, 0),
			out(ack, 1001, 5001),
			in(rst, 5200, 0),
			out(ack, 1001, 5001),
			in(rst, 5300, 0),
			in(syn, 5400, 0),
			silence(),
			check("suppressed", func(r *runner) {
				if n := r.d.proto.Stats().ChallengeACKsSuppressed; n != 2 {
					r.fatalf("ChallengeACKsSuppressed = %d, want 2", n)
				}
			}),
			advance(time.Second),
			in(rst, 5500, 0),
			out(ack, 1001, 5001),
			stateIs("ESTABLISHED"),
		},
	}}
}

// keepaliveCases check RFC 9293 3.8.4 keepalives.
func keepaliveCases() []conformanceCase {
	probe := out(ack, 1000, 5001) // <SEQ=SND.NXT-1><ACK=RCV.NXT>, no data
	return []conformanceCase{{
		name: "keepalive: probe after idle, an answer resets the count",
		rule: "RFC 9293 3.8.4: after the idle time probe with <SEQ=SND.NXT-1> and no data, every interval; an answer means the peer is alive",
		script: []step{
			activeOpen(),
			keepalive(10*time.Second, 2*time.Second, 3),
			advance(10*time.Second - ms),
			silence(),
			advance(ms),
			probe,
			advance(2*time.Second - ms),
			silence(),
			advance(ms),
			probe,
			in(ack, 5001, 1001),
			silence(),
			// Idle counts again from the answer.
			advance(10*time.Second - ms),
			silence(),
			advance(ms),
			probe,
			advance(2 * time.Second),
			probe,
			advance(2 * time.Second),
			probe,
			stateIs("ESTABLISHED"),
			tcbCheck("probes counted", func(info tcpext.TCBInfo) string {
				if info.Counters.KeepaliveProbes != 5 {
					return fmt.Sprintf("keepalive_probes = %d, want 5", info.Counters.KeepaliveProbes)
				}
				return ""
			}),
		},
	}, {
		name: "keepalive: a peer that rebooted answers with RST",
		rule: "RFC 9293 3.8.4 / 3.5.2: the probe's answer from a peer that lost the connection is a RST, which resets it",
		script: []step{
			activeOpen(),
			keepalive(10*time.Second, 2*time.Second, 3),
			advance(10 * time.Second),
			probe,
			in(rst, 5001, 0),
			stateIs(""),
			recvErr(&tcpip.ErrConnectionReset{}),
		},
	}, {
		name: "keepalive: count unanswered probes fail the connection",
		rule: "RFC 9293 3.8.4 / RFC 1122 4.2.3.6: count unanswered probes → the connection is dead, ErrTimeout",
		script: []step{
			activeOpen(),
			keepalive(10*time.Second, 2*time.Second, 3),
			advance(10 * time.Second),
			probe,
			advance(2 * time.Second),
			probe,
			advance(2 * time.Second),
			probe,
			advance(2*time.Second - ms),
			stateIs("ESTABLISHED"),
			advance(ms),
			maybeOut(rst, 1001, 0),
			stateIs(""),
			recvErr(&tcpip.ErrTimeout{}),
		},
	}}
}

// deliveryCases check segment acceptability and reliable delivery.
func deliveryCases() []conformanceCase {
	return []conformanceCase{{
		name: "acceptability with an open window",
		rule: "RFC 9293 3.10.7.4 (first): len 0 / wnd > 0 and len > 0 / wnd > 0 cases; unacceptable segments get an ACK",
		script: []step{
			activeOpen(),
			in(ack, 5001+100, 1001), // len 0, in the window: acceptable
			silence(),
			in(ack, 5001+65535, 1001), // len 0, just past the window
			out(ack, 1001, 5001),
			in(ack|psh, 4998, 1001, data("xyzabc")), // starts before RCV.NXT, ends inside
			out(ack, 1001, 5004),
			recv("abc"),
			in(ack|psh, 5004+65535, 1001, data("zz")), // entirely past the window
			out(ack, 1001, 5004),
			recvErr(&tcpip.ErrWouldBlock{}),
		},
	}, {
		name: "acceptability with a zero receive window",
		rule: "RFC 9293 3.10.7.4 (first): with RCV.WND = 0 a segment of length 0 is acceptable only at RCV.NXT, one with data never; the ACK carries window 0",
		script: []step{
			activeOpen(),
			check("fill the receive buffer, then probe it", func(r *runner) {
				nxt := uint32(5001)
				w := uint16(65535)
				for i := 0; w > 0; i++ {
					if i > 100 {
						r.fatalf("window still %d after %d segments", w, i)
					}
					n := min(int(w), 32768)
					r.run(in(ack, nxt, 1001, payload(bytes.Repeat([]byte{'z'}, n))))
					got, ok := r.d.poll()
					if !ok || got.Flags != ack || uint32(got.Ack) != nxt+uint32(n) {
						r.fatalf("after %d bytes at %d: %v, want an ACK of %d", n, nxt, describe(got), nxt+uint32(n))
					}
					nxt += uint32(n)
					w = got.Window
				}
				queued := r.tcb().RecvQueue
				r.run(in(ack, nxt, 1001)) // len 0 at RCV.NXT: acceptable
				r.run(silence())
				r.run(in(ack, nxt+1, 1001)) // len 0 elsewhere: not
				r.run(out(ack, 1001, nxt, win(0)))
				r.run(in(ack|psh, nxt, 1001, data("x"))) // data: never
				r.run(out(ack, 1001, nxt, win(0)))
				if q := r.tcb().RecvQueue; q != queued {
					r.fatalf("recv_queue %d after a segment into a zero window, want %d", q, queued)
				}
				// Reading opens the window and says so at once.
				var b bytes.Buffer
				if _, err := r.ep.Read(&b, tcpip.ReadOptions{}); err != nil || b.Len() != queued {
					r.fatalf("Read = %d bytes, %v; want %d", b.Len(), err, queued)
				}
				r.run(out(ack, 1001, nxt, win(65535)))
				r.run(in(ack|psh, nxt, 1001, data("y")))
				r.run(out(ack, 1001, nxt+1))
				r.run(recv("y"))
			}),
		},
	}, {
		name: "an unacceptable segment gets an ACK, an unacceptable RST does not",
		rule: "RFC 9293 3.10.7.4 (first): if not acceptable send <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> unless RST is set",
		script: []step{
			activeOpen(),
			in(ack|psh, 4000, 1001, data("old")),
			out(ack, 1001, 5001),
			in(rst, 4000, 0),
			silence(),
			stateIs("ESTABLISHED"),
		},
	}, {
		name: "a duplicate segment is dropped",
		rule: "RFC 9293 3.10.7.4: data already received is not delivered twice; the duplicate is ACKed",
		script: []step{
			activeOpen(),
			in(ack|psh, 5001, 1001, data("abc")),
			out(ack, 1001, 5004),
			in(ack|psh, 5001, 1001, data("abc")),
			out(ack, 1001, 5004),
			recv("abc"),
			recvErr(&tcpip.ErrWouldBlock{}),
			tcbCheck("counted", func(info tcpext.TCBInfo) string {
				if info.Counters.DupSegsIn != 1 {
					return fmt.Sprintf("dup_segs_in = %d, want 1", info.Counters.DupSegsIn)
				}
				return ""
			}),
		},
	}, {
		name: "out-of-order segments are held and delivered when the gap fills",
		rule: "RFC 9293 3.10.7.4 / RFC 5681 4.2: out-of-order data is held and answered at once by a duplicate ACK; filling the gap is ACKed at once; a held FIN counts when reached",
		script: []step{
			activeOpen(),
			in(ack|psh, 5004, 1001, data("def")),
			out(ack, 1001, 5001),
			recvErr(&tcpip.ErrWouldBlock{}),
			tcbCheck("held", func(info tcpext.TCBInfo) string {
				if info.OOOQueue != 3 {
					return fmt.Sprintf("ooo_queue = %d, want 3", info.OOOQueue)
				}
				return ""
			}),
			in(finAck, 5010, 1001, data("jkl")),
			out(ack, 1001, 5001),
			stateIs("ESTABLISHED"),
			in(ack|psh, 5001, 1001, data("abc")),
			out(ack, 1001, 5007),
			recv("abcdef"),
			in(ack|psh, 5007, 1001, data("ghi")),
			out(ack, 1001, 5014),
			stateIs("CLOSE-WAIT"),
			recv("ghijkl"),
			recvErr(&tcpip.ErrClosedForReceive{}),
		},
	}, {
		name: "a segment with a bad checksum is dropped and counted",
		rule: "RFC 9293 3.1: the checksum covers the pseudo-header; a bad one drops the segment silently",
		script: []step{
			activeOpen(),
			in(ack|psh, 5001, 1001, data("bad"), badChecksum()),
			silence(),
			recvErr(&tcpip.ErrWouldBlock{}),
			check("counted", func(r *runner) {
				if n := r.d.proto.Stats().ChecksumErrors; n != 1 {
					r.fatalf("ChecksumErrors = %d, want 1", n)
				}
			}),
			in(ack|psh, 5001, 1001, data("good")),
			out(ack, 1001, 5005),
			recv("good"),
		},
	}}
}

// retransmissionCases check RFC 6298 and the retry limits.
func retransmissionCases() []conformanceCase {
	synSchedule := []step{connectTo(80), out(syn, 1000, 0)}
	for _, d := range []time.Duration{1, 2, 4, 8, 16, 32} {
		synSchedule = append(synSchedule,
			advance(d*time.Second-ms), silence(),
			advance(ms), out(syn, 1000, 0))
	}
	dataSchedule := []step{activeOpen(), send("x"), out(ack|psh, 1001, 5001, data("x"))}
	for i := range 15 {
		d := min(200*ms<<i, time.Minute)
		dataSchedule = append(dataSchedule, advance(d), out(ack|psh, 1001, 5001, data("x")))
	}
	userTimeoutScript := func(set step) []step {
		return []step{
			activeOpen(),
			set,
			send("x"),
			out(ack|psh, 1001, 5001, data("x")),
			advance(200 * ms), out(ack|psh, 1001, 5001, data("x")),
			advance(400 * ms), out(ack|psh, 1001, 5001, data("x")),
			advance(800 * ms), out(ack|psh, 1001, 5001, data("x")),
			advance(1600 * ms), out(ack|psh, 1001, 5001, data("x")),
			advance(2*time.Second - ms),
			stateIs("ESTABLISHED"),
			advance(ms),
			maybeOut(rst, 1002, 0),
			stateIs(""),
			recvErr(&tcpip.ErrTimeout{}),
		}
	}
	rtt := func(srtt, rttvar time.Duration, rtoMS int64) step {
		return tcbCheck(fmt.Sprintf("srtt %v rttvar %v rto %dms", srtt, rttvar, rtoMS), func(info tcpext.TCBInfo) string {
			if info.SRTTus != srtt.Microseconds() || info.RTTVARus != rttvar.Microseconds() || info.RTOms != rtoMS {
				return fmt.Sprintf("srtt_us %d rttvar_us %d rto_ms %d, want %d %d %d",
					info.SRTTus, info.RTTVARus, info.RTOms, srtt.Microseconds(), rttvar.Microseconds(), rtoMS)
			}
			return ""
		})
	}
	return []conformanceCase{{
		name: "SYN: 1 s initial RTO, exponential backoff, retry limit → ErrTimeout",
		rule: "RFC 6298 2.1, 5.5: initial RTO 1 s, doubled on each expiry (at most 60 s); after the SYN retry limit the connect fails with a timeout",
		script: append(synSchedule,
			advance(60*time.Second-ms),
			stateIs("SYN-SENT"),
			advance(ms),
			silence(),
			stateIs(""),
			lastErr(&tcpip.ErrTimeout{}),
		),
	}, {
		name: "RTT sample from a SYN answered without retransmission",
		rule: "RFC 6298 2.2: first sample R: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4*RTTVAR (at least the minimum)",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			advance(100 * ms),
			in(synAck, 5000, 1001),
			out(ack, 1001, 5001),
			rtt(100*ms, 50*ms, 300),
		},
	}, {
		name: "Karn: no RTT sample from a retransmitted SYN",
		rule: "RFC 6298 3 (Karn): an ACK of a retransmitted segment gives no RTT sample",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			advance(time.Second),
			out(syn, 1000, 0),
			advance(300 * ms),
			in(synAck, 5000, 1001),
			out(ack, 1001, 5001),
			tcbCheck("no sample", func(info tcpext.TCBInfo) string {
				if info.SRTTus != 0 || info.RTTVARus != 0 {
					return fmt.Sprintf("srtt_us %d rttvar_us %d, want no sample", info.SRTTus, info.RTTVARus)
				}
				if info.RTOms < 1000 {
					return fmt.Sprintf("rto_ms %d was derived from an ambiguous sample", info.RTOms)
				}
				return ""
			}),
		},
	}, {
		name: "RTO is 3 s once established after a SYN timeout",
		rule: "RFC 6298 5.7: if the SYN's timer expired and RTO < 3 s, RTO MUST be re-initialized to 3 s when data transmission begins",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			advance(time.Second),
			out(syn, 1000, 0),
			in(synAck, 5000, 1001),
			out(ack, 1001, 5001),
			tcbCheck("rto 3 s", func(info tcpext.TCBInfo) string {
				if info.RTOms != 3000 {
					return fmt.Sprintf("rto_ms %d, want 3000", info.RTOms)
				}
				return ""
			}),
		},
	}, {
		name: "Karn for data, then RFC 6298 smoothing",
		rule: "RFC 6298 2.3, 3: no sample from retransmitted data; a clean sample updates RTTVAR = 3/4 RTTVAR + 1/4 |SRTT-R|, SRTT = 7/8 SRTT + 1/8 R",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			advance(50 * ms),
			in(synAck, 5000, 1001),
			out(ack, 1001, 5001),
			rtt(50*ms, 25*ms, 200),
			send("data"),
			out(ack|psh, 1001, 5001, data("data")),
			advance(200 * ms),
			out(ack|psh, 1001, 5001, data("data")),
			advance(100 * ms),
			in(ack, 5001, 1005),
			rtt(50*ms, 25*ms, 200),
			send("more"),
			out(ack|psh, 1005, 5001, data("more")),
			advance(120 * ms),
			in(ack, 5001, 1009),
			rtt(58750*time.Microsecond, 36250*time.Microsecond, 203),
		},
	}, {
		name: "data: retry limit → ErrTimeout",
		rule: "RFC 9293 3.8.3 (R2) / RFC 6298 5.5: data is retransmitted with backoff until the retry limit, then the connection fails with a timeout",
		script: append(dataSchedule,
			advance(time.Minute-ms),
			stateIs("ESTABLISHED"),
			advance(ms),
			maybeOut(rst, 1002, 0),
			stateIs(""),
			recvErr(&tcpip.ErrTimeout{}),
		),
	}, {
		name:   "user timeout (TCP_USER_TIMEOUT socket option)",
		rule:   "RFC 9293 3.8.3, 3.10.8 / RFC 5482: data unacknowledged for the user timeout fails the connection then, not at a later RTO",
		script: userTimeoutScript(userTimeout(5 * time.Second)),
	}, {
		name:   "user timeout (Options.UserTimeout)",
		rule:   "RFC 9293 3.8.3, 3.10.8 / RFC 5482: as above, from the protocol default",
		opts:   func(o *tcpext.Options) { o.UserTimeout = 5 * time.Second },
		script: userTimeoutScript(check("(protocol default)", func(*runner) {})),
	}, {
		name: "FIN is retransmitted with backoff",
		rule: "RFC 9293 3.8.1 / RFC 6298 5.4: the FIN occupies sequence space and is retransmitted like data",
		script: []step{
			activeOpen(),
			closeApp(),
			out(finAck, 1001, 5001),
			advance(200*ms - ms),
			silence(),
			advance(ms),
			out(finAck, 1001, 5001),
			advance(400 * ms),
			out(finAck, 1001, 5001),
			in(ack, 5001, 1002),
			stateIs("FIN-WAIT-2"),
			advance(time.Second),
			silence(),
		},
	}, {
		name: "SYN,ACK is retransmitted in SYN-RECEIVED",
		rule: "RFC 6298 / RFC 9293 3.8.1: our SYN in a SYN,ACK is retransmitted on timeout; a retransmitted SYN from the peer is answered by the SYN,ACK again",
		script: []step{
			listenOn(7, 8),
			in(syn, 5000, 0),
			out(synAck, 1000, 5001),
			advance(time.Second - ms),
			silence(),
			advance(ms),
			out(synAck, 1000, 5001),
			in(syn, 5000, 0),
			out(synAck, 1000, 5001),
			in(ack, 5001, 1001),
			stateIs("ESTABLISHED"),
		},
	}}
}

// icmpCases check ICMP errors delivered through the stack (HandleError).
func icmpCases() []conformanceCase {
	return []conformanceCase{{
		name: "ICMP port unreachable in SYN-SENT refuses the connect",
		rule: "RFC 9293 3.9 / RFC 5461: a hard ICMP error during SYN-SENT fails the connection attempt",
		script: []step{
			connectTo(80),
			out(syn, 1000, 0),
			icmp(header.ICMPv4PortUnreachable, 0, 1000),
			stateIs(""),
			lastErr(&tcpip.ErrConnectionRefused{}),
			advance(time.Minute),
			silence(),
		},
	}, {
		name: "ICMP host unreachable in ESTABLISHED is a soft error",
		rule: "RFC 5461 4 / RFC 1122 4.2.3.9: in synchronized states unreachables do not abort the connection",
		script: []step{
			activeOpen(),
			send("x"),
			out(ack|psh, 1001, 5001, data("x")),
			icmp(header.ICMPv4HostUnreachable, 0, 1001),
			stateIs("ESTABLISHED"),
			in(ack, 5001, 1002),
			send("y"),
			out(ack|psh, 1002, 5001, data("y")),
		},
	}, {
		name: "ICMP fragmentation needed lowers the MSS and resends",
		rule: "RFC 1191 6.5: fragmentation needed with a next-hop MTU lowers the effective MSS to MTU-40 for the segments in flight",
		script: []step{
			activeOpen(),
			send(strings.Repeat("m", 2000)),
			out(ack, 1001, 5001, dataLen(1460)),
			out(ack|psh, 2461, 5001, dataLen(540)),
			icmp(header.ICMPv4FragmentationNeeded, 1000, 1001),
			tcbCheck("mss 960, initial window still ten segments", func(info tcpext.TCBInfo) string {
				if info.MSS != 960 || info.Cwnd != 10*960 {
					return fmt.Sprintf("mss %d cwnd %d, want 960 and %d", info.MSS, info.Cwnd, 10*960)
				}
				return ""
			}),
			out(ack, 1001, 5001, dataLen(960)),
			out(ack, 1961, 5001, dataLen(960)),
			out(ack|psh, 2921, 5001, dataLen(80)),
		},
	}, {
		name: "ICMP quoting a sequence number outside the window is ignored",
		rule: "RFC 5927 4.1: an ICMP error whose quoted sequence number is not in SND.UNA..SND.NXT is dropped",
		script: []step{
			activeOpen(),
			send(strings.Repeat("m", 2000)),
			out(ack, 1001, 5001, dataLen(1460)),
			out(ack|psh, 2461, 5001, dataLen(540)),
			icmp(header.ICMPv4FragmentationNeeded, 1000, 1001+70000),
			icmp(header.ICMPv4FragmentationNeeded, 1000, 1000),
			silence(),
			tcbCheck("mss unchanged", func(info tcpext.TCBInfo) string {
				if info.MSS != wantMSS || info.Counters.ICMPIgnored != 2 {
					return fmt.Sprintf("mss %d icmp_ignored %d, want %d and 2", info.MSS, info.Counters.ICMPIgnored, wantMSS)
				}
				return ""
			}),
		},
	}}
}

// pshUrgCases check PSH and URG.
func pshUrgCases() []conformanceCase {
	return []conformanceCase{{
		name: "PSH data is readable at once",
		rule: "RFC 9293 3.9.1.2: data with PSH is delivered to the application promptly",
		script: []step{
			activeOpen(),
			in(ack|psh, 5001, 1001, data("now")),
			out(ack, 1001, 5004),
			check("readable", func(r *runner) {
				if r.ep.Readiness(waiter.EventIn) == 0 {
					r.fatalf("endpoint not readable after a PSH segment")
				}
			}),
			recv("now"),
		},
	}, {
		name: "incoming urgent pointer advances RCV.UP, data stays inline",
		rule: "RFC 9293 3.10.7.4 (sixth) / RFC 6093: RCV.UP = max(RCV.UP, SEG.SEQ+SEG.UP); urgent data is read inline",
		script: []step{
			activeOpen(),
			in(ack|psh|urg, 5001, 1001, data("abcde"), urgPtr(3)),
			out(ack, 1001, 5006),
			tcbCheck("rcv_up", func(info tcpext.TCBInfo) string {
				if info.RcvUp != 5004 || info.Counters.UrgentIn != 1 {
					return fmt.Sprintf("rcv_up %d urgent_in %d, want 5004 and 1", info.RcvUp, info.Counters.UrgentIn)
				}
				return ""
			}),
			recv("abcde"),
		},
	}, {
		name: "WriteUrgent sends URG with the urgent pointer",
		rule: "RFC 9293 3.8.5 / RFC 6093: urgent data is sent with URG and SEG.UP pointing past its last byte",
		script: []step{
			activeOpen(),
			sendUrgent("xyz"),
			out(ack|psh|urg, 1001, 5001, data("xyz"), urgPtr(3)),
			tcbCheck("snd_up", func(info tcpext.TCBInfo) string {
				if info.SndUp != 1004 {
					return fmt.Sprintf("snd_up %d, want 1004", info.SndUp)
				}
				return ""
			}),
			in(ack, 5001, 1004),
			send("plain"),
			out(ack|psh, 1004, 5001, data("plain")),
		},
	}}
}

// persistCases check zero-window probing (RFC 9293 3.8.6.1, RFC 1122
// 4.2.2.17): a receiver that keeps answering probes keeps the connection
// open for ever; one that has gone silent must not pin it for ever.
func persistCases() []conformanceCase {
	zeroWindowOpen := steps("active open into a zero window",
		connectTo(80),
		out(syn, 1000, 0),
		in(synAck, 5000, 1001, win(0)),
		out(ack, 1001, 5001),
		send("x"),
		silence(),
	)
	return []conformanceCase{{
		name: "zero-window probes answered by the peer keep the connection open",
		rule: "RFC 1122 4.2.2.17 / RFC 9293 3.8.6.1: as long as the receiver acknowledges the probes, the sender MUST keep the connection open",
		script: []step{
			zeroWindowOpen,
			check("answer every probe for an hour", func(r *runner) {
				probes := 0
				for range 3600 {
					r.run(advance(time.Second))
					for {
						got, ok := r.d.poll()
						if !ok {
							break
						}
						if got.Flags&ack == 0 || uint32(got.Seq) != 1001 || len(got.Payload) > 1 {
							r.fatalf("expected a zero-window probe, got %s", describe(got))
						}
						probes++
						r.run(in(ack, 5001, 1001, win(0)))
					}
				}
				if probes < 10 {
					r.fatalf("%d probes in an hour, want the window probed", probes)
				}
			}),
			stateIs("ESTABLISHED"),
			in(ack, 5001, 1001, win(65535)),
			out(ack|psh, 1001, 5001, data("x")),
		},
	}, {
		name: "zero-window probes unanswered do not pin the connection for ever",
		rule: "RFC 1122 4.2.2.17 (the MUST holds only while probes are acknowledged) / RFC 9293 3.8.3: a silent peer behind a zero window fails the connection like unanswered retransmissions",
		script: []step{
			zeroWindowOpen,
			check("wait up to two hours", func(r *runner) {
				for range 120 {
					r.run(advance(time.Minute))
					for _, ok := r.d.poll(); ok; _, ok = r.d.poll() {
					}
				}
			}),
			stateIs(""),
			recvErr(&tcpip.ErrTimeout{}),
		},
	}, {
		name: "zero-window probes unanswered after a full close do not leak the TCB",
		rule: "issue 3: no TCB outlives its connection; a closed endpoint behind a silent zero window must go",
		script: []step{
			zeroWindowOpen,
			closeApp(),
			check("wait up to two hours", func(r *runner) {
				for range 120 {
					r.run(advance(time.Minute))
					for _, ok := r.d.poll(); ok; _, ok = r.d.poll() {
					}
				}
			}),
			stateIs(""),
		},
	}}
}
