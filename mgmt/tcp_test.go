package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synfin/synfin/tcpext"
)

// fakeTCP is a TCPControl whose Dial connects to a server of the test on
// the host's loopback, whatever address it is given.
type fakeTCP struct {
	stats tcpext.StatsSnapshot
	tcbs  fakeTCBs
	// addr is where Dial really connects; "" makes it fail as refused.
	addr string

	mu        sync.Mutex
	aborted   []uint64
	remote    netip.AddrPort
	localPort uint16
	cc        string
}

func (f *fakeTCP) SetDefaultCongestionControl(name string) error {
	if name != "newreno" && name != "cubic" {
		return fmt.Errorf("congestion control %q: unknown", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cc = name
	return nil
}

func (f *fakeTCP) Stats() tcpext.StatsSnapshot { return f.stats }

func (f *fakeTCP) Abort(id uint64) error {
	if _, ok := f.tcbs.TCB(id); !ok {
		return fmt.Errorf("no TCB with id %d", id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborted = append(f.aborted, id)
	return nil
}

// fakeTCBID is the TCB id Dial reports.
const fakeTCBID = 77

func (f *fakeTCP) Dial(ctx context.Context, remote netip.AddrPort, localPort uint16) (net.Conn, uint64, error) {
	f.mu.Lock()
	f.remote, f.localPort = remote, localPort
	f.mu.Unlock()
	addr := f.addr
	if addr == "" {
		// A port nobody listens on: the host's TCP refuses it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, 0, err
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	return c, fakeTCBID, nil
}

// peer runs handle for each connection to a loopback listener and returns
// its address.
func peer(t *testing.T, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c.(*net.TCPConn))
			})
		}
	})
	return ln.Addr().String()
}

// echoPeer sends back what it gets and closes after the client's FIN.
func echoPeer(c *net.TCPConn) { io.Copy(c, c) }

func tcpShell(f *fakeTCP) *Shell { return NewShell(f.tcbs, WithTCPControl(f)) }

func TestTCPConnectSendsAndCloses(t *testing.T) {
	f := &fakeTCP{addr: peer(t, echoPeer)}
	out, status := run(t, tcpShell(f), `tcp connect 198.18.0.1:7 --send "hello world\n" --local-port 40000`)
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	want := []string{
		"connected to 127.0.0.1:",
		fmt.Sprintf("(TCB %d)\n", fakeTCBID),
		"received 12 bytes:\nhello world\n",
		"closed: 12 bytes sent, 12 bytes received\n",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if f.remote != netip.MustParseAddrPort("198.18.0.1:7") || f.localPort != 40000 {
		t.Errorf("Dial(%s, %d), want Dial(198.18.0.1:7, 40000)", f.remote, f.localPort)
	}
}

func TestTCPConnectHoldCollects(t *testing.T) {
	// The peer greets, then waits for the client to finish.
	f := &fakeTCP{addr: peer(t, func(c *net.TCPConn) {
		c.Write([]byte("220 ready\r\n"))
		io.Copy(io.Discard, c)
	})}
	out, status := run(t, tcpShell(f), "tcp connect 198.18.0.1:25 --hold 20ms")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	// The CR shows, so a line end's bytes are plain.
	if !strings.Contains(out, "received 11 bytes:\n220 ready\\r\n") || !strings.Contains(out, "closed: 0 bytes sent, 11 bytes received\n") {
		t.Fatalf("output:\n%s", out)
	}
	if f.localPort != 0 {
		t.Errorf("Dial from port %d, want 0 (ephemeral)", f.localPort)
	}
}

func TestTCPConnectHoldEndsWhenPeerCloses(t *testing.T) {
	f := &fakeTCP{addr: peer(t, func(c *net.TCPConn) { c.Write([]byte("bye\n")) })}
	done := make(chan string)
	go func() {
		out, _ := run(t, tcpShell(f), "tcp connect 198.18.0.1:13 --hold 1h")
		done <- out
	}()
	select {
	case out := <-done:
		if !strings.Contains(out, "bye\n") || !strings.Contains(out, "closed: 0 bytes sent, 4 bytes received") {
			t.Fatalf("output:\n%s", out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tcp connect --hold 1h still holding after the peer closed")
	}
}

func TestTCPConnectBoundsOutput(t *testing.T) {
	const size = 3*maxShown + 17
	f := &fakeTCP{addr: peer(t, func(c *net.TCPConn) { c.Write(bytes.Repeat([]byte("x"), size)) })}
	out, status := run(t, tcpShell(f), "tcp connect 198.18.0.1:19")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	if n := strings.Count(out, "x"); n != maxShown {
		t.Errorf("printed %d of the bytes, want the first %d", n, maxShown)
	}
	for _, w := range []string{
		fmt.Sprintf("received %d bytes:\n", size),
		fmt.Sprintf("... %d more bytes not shown\n", size-maxShown),
		fmt.Sprintf("closed: 0 bytes sent, %d bytes received\n", size),
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
}

func TestTCPConnectRefused(t *testing.T) {
	out, status := run(t, tcpShell(&fakeTCP{}), "tcp connect 198.18.0.1:81")
	if status != StatusError || !strings.Contains(out, "connection refused") || strings.Contains(out, "connected") {
		t.Fatalf("got %q, %d; want the refusal and status %d", out, status, StatusError)
	}
}

func TestTCPConnectReset(t *testing.T) {
	// The peer resets the connection once the client has said something.
	f := &fakeTCP{addr: peer(t, func(c *net.TCPConn) {
		c.Read(make([]byte, 1))
		c.SetLinger(0)
		c.Close()
	})}
	out, status := run(t, tcpShell(f), "tcp connect 198.18.0.1:7 --send x --hold 1h")
	if status != StatusError || !strings.Contains(out, "connection reset by peer") || !strings.Contains(out, "closed: 1 bytes sent, 0 bytes received") {
		t.Fatalf("got %q, %d; want the reset reported and status %d", out, status, StatusError)
	}
}

func TestTCPConnectUsage(t *testing.T) {
	sh := tcpShell(&fakeTCP{})
	for _, tc := range []struct{ line, want string }{
		{"tcp connect", "want one HOST:PORT"},
		{"tcp connect a:1 b:2", "want one HOST:PORT"},
		{"tcp connect example.com:80", `bad HOST:PORT "example.com:80"`},
		{"tcp connect 198.18.0.1", `bad HOST:PORT "198.18.0.1"`},
		{"tcp connect 198.18.0.1:0", `bad HOST:PORT "198.18.0.1:0"`},
		{"tcp connect [2001:db8::1]:80", "bad HOST:PORT"},
		{"tcp connect 198.18.0.1:80 --local-port 0", `bad --local-port "0"`},
		{"tcp connect 198.18.0.1:80 --local-port 65536", `bad --local-port "65536"`},
		{"tcp connect 198.18.0.1:80 --hold -1s", `bad --hold "-1s"`},
		{"tcp connect 198.18.0.1:80 --hold 5", `bad --hold "5"`},
		{"tcp connect 198.18.0.1:80 --hold 2h", `bad --hold "2h"`},
		{"tcp connect 198.18.0.1:80 --send", "flag --send needs a value"},
		{"tcp connect 198.18.0.1:80 --json", `unknown flag "--json"`},
	} {
		out, status := run(t, sh, tc.line)
		if status != StatusUsage || !strings.Contains(out, "error: "+tc.want) || !strings.Contains(out, "usage: tcp connect HOST:PORT") {
			t.Errorf("%q: got %q, %d; want usage error %q", tc.line, out, status, tc.want)
		}
	}
}

func TestValueFlagForms(t *testing.T) {
	f := &fakeTCP{addr: peer(t, echoPeer)}
	for _, line := range []string{
		"tcp connect 198.18.0.1:7 --send=abc --local-port=40001",
		"tcp connect --local-port 40001 --send abc 198.18.0.1:7",
	} {
		out, status := run(t, tcpShell(f), line)
		if status != StatusOK || !strings.Contains(out, "closed: 3 bytes sent, 3 bytes received") || f.localPort != 40001 {
			t.Errorf("%q: got %q, %d, local port %d", line, out, status, f.localPort)
		}
	}
	out, status := run(t, tcpShell(f), "show tcb --json=yes")
	if status != StatusUsage || !strings.Contains(out, "flag --json takes no value") {
		t.Errorf("boolean flag with a value: got %q, %d", out, status)
	}
}

func TestClearTCB(t *testing.T) {
	f := &fakeTCP{tcbs: sampleTCBs}
	sh := tcpShell(f)
	out, status := run(t, sh, "clear tcb 42")
	if status != StatusOK || out != "TCB 42 aborted\n" {
		t.Fatalf("got %q, %d", out, status)
	}
	if len(f.aborted) != 1 || f.aborted[0] != 42 {
		t.Fatalf("aborted %v, want [42]", f.aborted)
	}
	for _, tc := range []struct {
		line, want string
		status     int
	}{
		{"clear tcb 99", "error: no TCB with id 99\n", StatusError},
		{"clear tcb", "error: want one TCB id", StatusUsage},
		{"clear tcb x", `error: bad TCB id "x"`, StatusUsage},
		{"clear tcb 1 2", "error: want one TCB id", StatusUsage},
	} {
		out, status := run(t, sh, tc.line)
		if status != tc.status || !strings.Contains(out, tc.want) {
			t.Errorf("%q: got %q, %d; want %q, %d", tc.line, out, status, tc.want, tc.status)
		}
	}
	if len(f.aborted) != 1 {
		t.Errorf("failed commands aborted something: %v", f.aborted)
	}
}

func TestShowStats(t *testing.T) {
	f := &fakeTCP{tcbs: sampleTCBs, stats: tcpext.StatsSnapshot{SegmentsReceived: 123, ResetsReceived: 4}}
	sh := tcpShell(f)
	out, status := run(t, sh, "show stats")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	for _, w := range []string{"tcp:\n", "segments_received:", "123", "resets_received:", "tcb_states:\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in:\n%s", w, out)
		}
	}
	// States come in the RFC's order with their counts.
	var states []string
	for _, l := range strings.Split(out[strings.Index(out, "tcb_states:\n"):], "\n")[1:] {
		if f := strings.Fields(l); len(f) == 2 {
			states = append(states, f[0]+f[1])
		}
	}
	want := []string{"CLOSED:0", "LISTEN:1", "SYN-SENT:0", "SYN-RECEIVED:0", "ESTABLISHED:1", "FIN-WAIT-1:0", "FIN-WAIT-2:0", "CLOSE-WAIT:0", "CLOSING:0", "LAST-ACK:0", "TIME-WAIT:0"}
	if strings.Join(states, " ") != strings.Join(want, " ") {
		t.Errorf("tcb_states = %v, want %v", states, want)
	}

	out, status = run(t, sh, "show stats --json")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	var got struct {
		TCP       tcpext.StatsSnapshot `json:"tcp"`
		TCBStates map[string]int       `json:"tcb_states"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if got.TCP != f.stats || len(got.TCBStates) != 11 || got.TCBStates["LISTEN"] != 1 || got.TCBStates["ESTABLISHED"] != 1 {
		t.Errorf("show stats --json = %s", out)
	}
}

func TestTCPCommandsWithoutControl(t *testing.T) {
	sh := NewShell(sampleTCBs)
	for _, line := range []string{"show stats", "clear tcb 42", "tcp connect 198.18.0.1:7"} {
		out, status := run(t, sh, line)
		if status != StatusError || !strings.Contains(out, "error: no TCP control available") {
			t.Errorf("%q: got %q, %d", line, out, status)
		}
	}
}

func TestTCPConnectCanceled(t *testing.T) {
	f := &fakeTCP{addr: peer(t, func(c *net.TCPConn) { io.Copy(io.Discard, c) })}
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	w := &notifyWriter{w: &out, connected: make(chan struct{})}
	done := make(chan int)
	go func() { done <- tcpShell(f).Run(ctx, "tcp connect 198.18.0.1:9 --hold 1h", w) }()
	<-w.connected
	cancel()
	if status := <-done; status != StatusError || !errors.Is(ctx.Err(), context.Canceled) || !strings.Contains(out.String(), "context canceled") {
		t.Fatalf("got %q, %d after cancel", out.String(), status)
	}
}

// notifyWriter closes connected when the command flushes its first output:
// it has connected and is about to hold.
type notifyWriter struct {
	mu        sync.Mutex
	w         io.Writer
	connected chan struct{}
	once      sync.Once
}

func (n *notifyWriter) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.w.Write(p)
}

func (n *notifyWriter) Flush() error {
	n.once.Do(func() { close(n.connected) })
	return nil
}

func TestTCPConnectPeerNeverCloses(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	f := &fakeTCP{addr: peer(t, func(c *net.TCPConn) { <-stop })}
	out, status := run(t, tcpShell(f), "tcp connect 198.18.0.1:7 --send hi")
	want := fmt.Sprintf("the peer had not closed its side %v after our FIN\nclosed: 2 bytes sent, 0 bytes received\n", finishWait)
	if status != StatusOK || !strings.HasSuffix(out, want) {
		t.Fatalf("got %q, %d; want it to end in %q", out, status, want)
	}
}

func TestSetCongestionControl(t *testing.T) {
	f := &fakeTCP{}
	sh := tcpShell(f)
	var out bytes.Buffer
	if st := sh.Run(context.Background(), "set tcp congestion-control cubic", &out); st != StatusOK || f.cc != "cubic" {
		t.Fatalf("status %d, cc %q, output %q", st, f.cc, out.String())
	}
	out.Reset()
	if st := sh.Run(context.Background(), "set tcp congestion-control vegas", &out); st == StatusOK || f.cc != "cubic" || !strings.Contains(out.String(), "vegas") {
		t.Fatalf("unknown name: status %d, cc %q, output %q", st, f.cc, out.String())
	}
	out.Reset()
	if st := sh.Run(context.Background(), "set tcp congestion-control", &out); st != StatusUsage {
		t.Fatalf("missing name: status %d, output %q", st, out.String())
	}
}
