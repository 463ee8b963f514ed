package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synfin/synfin/tcpext"
	"github.com/synfin/synfin/tools/lab/labnet"
)

// Keepalive timers of the lifecycle lab: short, so a dead peer is found in
// seconds (idle + count*interval = 4s).
const (
	kaIdle     = time.Second
	kaInterval = time.Second
	kaCount    = 3
)

// TestLabLifecycle drives the firmware's TCP through the unusual ends and
// beginnings of a connection against Linux's TCP: both sides closing at
// once, both opening at once, a reset from Linux, and keepalive finding a
// peer that forgot the connection or went silent. Linux's side is Go
// sockets made in the peer namespace; segments are held back where a case
// needs them to cross by nftables rules in the peer namespace.
func TestLabLifecycle(t *testing.T) {
	lab := startLab(t, labnet.Options{
		MSL: labMSL,
		Env: []string{
			"SYNFIN_TCP_KEEPALIVE_IDLE=" + kaIdle.String(),
			"SYNFIN_TCP_KEEPALIVE_INTERVAL=" + kaInterval.String(),
			"SYNFIN_TCP_KEEPALIVE_COUNT=" + strconv.Itoa(kaCount),
		},
	}, "nft")
	filter := newPeerFilter(t, lab)

	t.Run("simultaneous close", func(t *testing.T) {
		t.Cleanup(filter.clear)
		const port = 5001
		server := make(chan net.Conn, 1)
		ln := peerListen(t, labnet.PeerAddress, port)
		go func() {
			if c, err := ln.Accept(); err == nil {
				server <- c
			}
		}()
		// Linux does not see the firmware's FIN until the rule goes.
		filter.drop("input", fmt.Sprintf("ip saddr %s tcp dport %d tcp flags & fin == fin", labnet.DUTAddress, port))
		result := shellAsync(lab, fmt.Sprintf("tcp connect %s:%d --hold 1s", labnet.PeerAddress, port))
		var srv net.Conn
		select {
		case srv = <-server:
			defer srv.Close()
		case <-time.After(10 * time.Second):
			t.Fatalf("Linux accepted nothing; tcp connect said: %s", (<-result).out)
		}

		// After the hold the firmware has sent its FIN, which Linux has
		// not seen: Linux's FIN now crosses it.
		remote := fmt.Sprintf("%s:%d", labnet.PeerAddress, port)
		tcb := waitTCB(t, lab, 10*time.Second, "the firmware's FIN-WAIT-1", func(c tcpext.TCBInfo) bool {
			return c.Remote == remote && c.State == "FIN-WAIT-1"
		})
		srv.Close()
		waitTCB(t, lab, 10*time.Second, "CLOSING: a FIN that does not acknowledge ours", func(c tcpext.TCBInfo) bool {
			return c.ID == tcb.ID && c.State == "CLOSING"
		})
		// The firmware's FIN gets through on its next retransmission.
		filter.clear()
		tw := waitTCB(t, lab, 20*time.Second, "TIME-WAIT once our FIN is acknowledged", func(c tcpext.TCBInfo) bool {
			return c.ID == tcb.ID && c.State == "TIME-WAIT"
		})
		for _, step := range [][2]string{{"ESTABLISHED", "FIN-WAIT-1"}, {"FIN-WAIT-1", "CLOSING"}, {"CLOSING", "TIME-WAIT"}} {
			if !passed(tw, step[0], step[1]) {
				t.Errorf("history lacks %s -> %s: %+v", step[0], step[1], tw.History)
			}
		}
		if r := <-result; r.err != nil || !strings.Contains(r.out, "closed: 0 bytes sent, 0 bytes received") {
			t.Errorf("tcp connect: %v\n%s", r.err, r.out)
		}
	})

	t.Run("simultaneous open", func(t *testing.T) {
		t.Cleanup(filter.clear)
		const fwPort, linuxPort = 5002, 5003
		// The firmware's SYN is lost, so Linux's SYN finds it in SYN-SENT.
		filter.drop("input", fmt.Sprintf("ip saddr %s tcp sport %d tcp dport %d tcp flags & (syn|ack) == syn", labnet.DUTAddress, fwPort, linuxPort))
		result := shellAsync(lab, fmt.Sprintf(`tcp connect %s:%d --local-port %d --send "from firmware\n" --hold 2s`, labnet.PeerAddress, linuxPort, fwPort))
		local := fmt.Sprintf("%s:%d", labnet.DUTAddress, fwPort)
		waitTCB(t, lab, 10*time.Second, "the firmware in SYN-SENT", func(c tcpext.TCBInfo) bool {
			return c.Local == local && c.State == "SYN-SENT"
		})

		conn := peerDial(t, net.JoinHostPort(labnet.PeerAddress, strconv.Itoa(linuxPort)), net.JoinHostPort(labnet.DUTAddress, strconv.Itoa(fwPort)))
		defer conn.Close()
		if _, err := conn.Write([]byte("from linux\n")); err != nil {
			t.Fatal(err)
		}
		tcb := waitTCB(t, lab, 10*time.Second, "the connection ESTABLISHED", func(c tcpext.TCBInfo) bool {
			return c.Local == local && c.State == "ESTABLISHED"
		})
		for _, step := range [][2]string{{"CLOSED", "SYN-SENT"}, {"SYN-SENT", "SYN-RECEIVED"}, {"SYN-RECEIVED", "ESTABLISHED"}} {
			if !passed(tcb, step[0], step[1]) {
				t.Errorf("history lacks %s -> %s: %+v", step[0], step[1], tcb.History)
			}
		}
		if n := len(tcbs(t, lab, func(c tcpext.TCBInfo) bool { return c.Local == local })); n != 1 {
			t.Errorf("%d TCBs on %s, want one connection", n, local)
		}

		// Data both ways, then the firmware's FIN after the hold.
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(conn)
		if err != nil || string(got) != "from firmware\n" {
			t.Fatalf("Linux read %q, %v; want \"from firmware\\n\" and EOF", got, err)
		}
		conn.Close()
		r := <-result
		if r.err != nil || !strings.Contains(r.out, "from linux\n") || !strings.Contains(r.out, "closed: 14 bytes sent, 11 bytes received") {
			t.Errorf("tcp connect: %v\n%s", r.err, r.out)
		}
	})

	t.Run("Linux resets mid-stream", func(t *testing.T) {
		before := stats(t, lab).ResetsReceived
		conn := peerDial(t, "", net.JoinHostPort(labnet.DUTAddress, "7"))
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, make([]byte, 5)); err != nil {
			t.Fatalf("no echo: %v", err)
		}
		tcb := waitTCB(t, lab, 10*time.Second, "the echo connection", func(c tcpext.TCBInfo) bool {
			return c.Remote == conn.LocalAddr().String() && c.State == "ESTABLISHED"
		})
		conn.SetLinger(0)
		conn.Close() // RST
		waitGone(t, lab, 10*time.Second, tcb.ID)
		if after := stats(t, lab).ResetsReceived; after <= before {
			t.Errorf("resets_received %d -> %d, want it up", before, after)
		}
		if cause := endCause(t, lab, tcb.ID); cause != "RST received" {
			t.Errorf("TCB %d ended with %q, want \"RST received\"", tcb.ID, cause)
		}
	})

	t.Run("keepalive finds a peer that forgot", func(t *testing.T) {
		t.Cleanup(filter.clear)
		conn := peerDial(t, "", net.JoinHostPort(labnet.DUTAddress, "9"))
		defer conn.Close()
		tcb := waitKeepalive(t, lab, conn)
		// Linux forgets the connection without telling the firmware: its
		// RST is dropped on the way out.
		filter.drop("output", fmt.Sprintf("ip daddr %s tcp sport %d", labnet.DUTAddress, port(conn.LocalAddr())))
		conn.SetLinger(0)
		conn.Close()
		filter.clear()
		// The next probe finds no connection at Linux, which answers with
		// the RST that ends the firmware's.
		waitGone(t, lab, kaIdle+kaCount*kaInterval+5*time.Second, tcb.ID)
		if cause := endCause(t, lab, tcb.ID); !strings.Contains(cause, "RST") {
			t.Errorf("TCB %d ended with %q, want a reset", tcb.ID, cause)
		}
	})

	t.Run("keepalive gives up on a silent peer", func(t *testing.T) {
		t.Cleanup(filter.clear)
		conn := peerDial(t, "", net.JoinHostPort(labnet.DUTAddress, "9"))
		defer conn.Close()
		tcb := waitKeepalive(t, lab, conn)
		// The peer hears nothing more, so answers nothing.
		filter.drop("input", fmt.Sprintf("ip saddr %s tcp dport %d", labnet.DUTAddress, port(conn.LocalAddr())))
		var probes uint64
		deadline := time.Now().Add(kaIdle + kaCount*kaInterval + 5*time.Second)
		for {
			c := tcbByID(t, lab, tcb.ID)
			if c == nil {
				break
			}
			probes = max(probes, c.Counters.KeepaliveProbes)
			if time.Now().After(deadline) {
				t.Fatalf("TCB %d still %s with %d probes sent after idle+count*interval", tcb.ID, c.State, c.Counters.KeepaliveProbes)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if probes < kaCount {
			t.Errorf("saw %d unanswered probes before the TCB went, want %d", probes, kaCount)
		}
		if cause := endCause(t, lab, tcb.ID); !strings.Contains(cause, "keepalive") {
			t.Errorf("TCB %d ended with %q, want the keepalive timeout", tcb.ID, cause)
		}
	})
}

// peerFilter drops segments in the peer namespace with nftables, in a
// table of its own whose input and output chains the cases fill.
type peerFilter struct {
	t   *testing.T
	lab *labnet.Lab
}

const filterTable = "inet synfin_test"

func newPeerFilter(t *testing.T, lab *labnet.Lab) *peerFilter {
	f := &peerFilter{t: t, lab: lab}
	f.nft("add table " + filterTable)
	for _, chain := range []string{"input", "output"} {
		f.nft(fmt.Sprintf("add chain %s %s { type filter hook %s priority 0 ; }", filterTable, chain, chain))
	}
	return f
}

// drop adds a rule that drops what match matches to chain.
func (f *peerFilter) drop(chain, match string) {
	f.nft(fmt.Sprintf("add rule %s %s %s drop", filterTable, chain, match))
}

// clear removes every rule.
func (f *peerFilter) clear() { f.nft("flush table " + filterTable) }

func (f *peerFilter) nft(command string) {
	f.t.Helper()
	if out, err := f.lab.PeerCommand("nft", command).CombinedOutput(); err != nil {
		f.t.Fatalf("nft %s: %v\n%s", command, err, out)
	}
}

// peerListen listens on Linux's side of the lab.
func peerListen(t *testing.T, addr string, port int) net.Listener {
	t.Helper()
	var ln net.Listener
	err := labnet.InNamespace(labnet.PeerNamespace, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		return err
	})
	if err != nil {
		t.Fatalf("listen in the peer namespace: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// peerDial connects from Linux's side of the lab, from local unless it is
// empty. Linux's own keepalive stays off: only the firmware's probes run.
func peerDial(t *testing.T, local, remote string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{KeepAlive: -1, Timeout: 10 * time.Second}
	if local != "" {
		a, err := net.ResolveTCPAddr("tcp", local)
		if err != nil {
			t.Fatal(err)
		}
		d.LocalAddr = a
	}
	var c net.Conn
	err := labnet.InNamespace(labnet.PeerNamespace, func() error {
		var err error
		c, err = d.Dial("tcp", remote)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from the peer namespace: %v", remote, err)
	}
	return c.(*net.TCPConn)
}

func port(a net.Addr) int { return a.(*net.TCPAddr).Port }

type shellResult struct {
	out string
	err error
}

// shellAsync runs a shell command in the background.
func shellAsync(lab *labnet.Lab, command string) <-chan shellResult {
	ch := make(chan shellResult, 1)
	go func() {
		out, err := lab.Shell(command)
		ch <- shellResult{out, err}
	}()
	return ch
}

// tcbs returns the TCBs from `show tcb --json` that match accepts.
func tcbs(t *testing.T, lab *labnet.Lab, match func(tcpext.TCBInfo) bool) []tcpext.TCBInfo {
	t.Helper()
	out, err := lab.Shell("show tcb --json")
	if err != nil {
		t.Fatal(err)
	}
	var all []tcpext.TCBInfo
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("show tcb --json: %v\n%s", err, out)
	}
	return slices.DeleteFunc(all, func(c tcpext.TCBInfo) bool { return !match(c) })
}

// waitTCB polls until a TCB matches and returns it.
func waitTCB(t *testing.T, lab *labnet.Lab, limit time.Duration, what string, match func(tcpext.TCBInfo) bool) tcpext.TCBInfo {
	t.Helper()
	var found []tcpext.TCBInfo
	waitFor(t, limit, what, func() bool {
		found = tcbs(t, lab, match)
		return len(found) > 0
	})
	return found[0]
}

// tcbByID returns TCB id, or nil once it is gone.
func tcbByID(t *testing.T, lab *labnet.Lab, id uint64) *tcpext.TCBInfo {
	t.Helper()
	out, err := lab.Shell(fmt.Sprintf("show tcb %d --json", id))
	if err != nil {
		if strings.Contains(out, fmt.Sprintf("no TCB with id %d", id)) {
			return nil
		}
		t.Fatal(err)
	}
	var c tcpext.TCBInfo
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("show tcb %d --json: %v\n%s", id, err, out)
	}
	return &c
}

func waitGone(t *testing.T, lab *labnet.Lab, limit time.Duration, id uint64) {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("TCB %d to go", id), func() bool { return tcbByID(t, lab, id) == nil })
}

// waitKeepalive waits for the firmware's TCB of Linux's conn to run its
// keepalive timer, which the service turns on as it takes the connection.
func waitKeepalive(t *testing.T, lab *labnet.Lab, conn net.Conn) tcpext.TCBInfo {
	t.Helper()
	return waitTCB(t, lab, 10*time.Second, "the service's TCB with a keepalive timer", func(c tcpext.TCBInfo) bool {
		return c.Remote == conn.LocalAddr().String() && c.State == "ESTABLISHED" &&
			slices.ContainsFunc(c.Timers, func(ti tcpext.TimerInfo) bool { return ti.Name == "keepalive" })
	})
}

// passed reports whether c's history has the transition from -> to.
func passed(c tcpext.TCBInfo, from, to string) bool {
	return slices.ContainsFunc(c.History, func(h tcpext.HistoryItem) bool { return h.From == from && h.To == to })
}

func stats(t *testing.T, lab *labnet.Lab) tcpext.StatsSnapshot {
	t.Helper()
	out, err := lab.Shell("show stats --json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		TCP tcpext.StatsSnapshot `json:"tcp"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("show stats --json: %v\n%s", err, out)
	}
	return s.TCP
}

// endCause returns the cause the firmware logged for TCB id's end: a TCB
// leaves the table as it closes, and the log keeps why.
func endCause(t *testing.T, lab *labnet.Lab, id uint64) string {
	t.Helper()
	re := regexp.MustCompile(fmt.Sprintf(`msg="tcp connection ended" tcb=%d state=\S+ cause=("(?:[^"\\]|\\.)*"|\S+)`, id))
	var m []string
	waitFor(t, 5*time.Second, fmt.Sprintf("the end of TCB %d in the firmware log", id), func() bool {
		m = re.FindStringSubmatch(lab.FirmwareLog())
		return m != nil
	})
	if cause, err := strconv.Unquote(m[1]); err == nil {
		return cause
	}
	return m[1]
}
