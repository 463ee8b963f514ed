package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/firmware/services"
	"github.com/synfin/synfin/mgmt"
	"github.com/synfin/synfin/tcpext"
	"github.com/synfin/synfin/tcpext/stacknet"
)

func TestTCPOptionsFromConfig(t *testing.T) {
	got := tcpOptions(config.TCP{
		CongestionControl: "cubic",
		MSL:               time.Second,
		FinWait2Timeout:   2 * time.Second,
		QuietTime:         3 * time.Second,
		Keepalive:         config.Keepalive{Idle: 4 * time.Second, Interval: 5 * time.Second, Count: 6},
		RTOMin:            7 * time.Millisecond,
		RTOMax:            8 * time.Second,
		UserTimeout:       9 * time.Second,
		Recorder:          config.Recorder{Events: 100},
	})
	want := tcpext.Options{
		CongestionControl: "cubic",
		MSL:               time.Second,
		FinWait2Timeout:   2 * time.Second,
		QuietTime:         3 * time.Second,
		Keepalive:         tcpext.KeepaliveOptions{Idle: 4 * time.Second, Interval: 5 * time.Second, Count: 6},
		MinRTO:            7 * time.Millisecond,
		MaxRTO:            8 * time.Second,
		UserTimeout:       9 * time.Second,
		// tcp.recorder.* at 0 turns the recorder off, which tcpext
		// spells negative.
		RecorderEvents: 100,
		ClosedTCBs:     -1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tcpOptions =\n%+v\nwant\n%+v", got, want)
	}
}

// selfAddr is the default config's address, where the stack talks to
// itself.
var selfAddr = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})

// loopStack is the firmware's stack with the services of the lab (echo 7,
// discard 9, daytime 13, chargen 19) running. Its link goes nowhere: what
// the tests do stays inside the stack, as connections to its own address
// do.
func loopStack(t *testing.T) *stack.Stack {
	t.Helper()
	cfg := testConfig(t)
	cfg.Services = config.Services{Echo: config.Service{Port: 7}, Discard: config.Service{Port: 9}, Daytime: config.Service{Port: 13}, Chargen: config.Service{Port: 19}}
	s, err := newStack(cfg, channel.New(1, 1500, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		destroyStack(s)
	})
	for _, svc := range enabledServices(cfg.Services) {
		ln, err := stacknet.ListenTCP(s, tcpip.FullAddress{Port: svc.port}, ipv4.ProtocolNumber)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { services.Serve(ctx, ln, svc.handler, slog.New(slog.DiscardHandler)) })
	}
	return s
}

func dialSelf(t *testing.T, s *stack.Stack, port uint16) *stacknet.Conn {
	t.Helper()
	c, err := stacknet.DialTCP(context.Background(), s, tcpip.FullAddress{}, tcpip.FullAddress{Addr: selfAddr, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tcbOf returns the TCB with the given addresses, waiting a little for it
// to appear: the accepting side's TCB is set up as the dialer's returns.
func tcbOf(t *testing.T, s *stack.Stack, local, remote net.Addr) tcpext.TCBInfo {
	t.Helper()
	for range 100 {
		for _, tcb := range tcpext.ProtocolOf(s).TCBs() {
			if tcb.Local == local.String() && tcb.Remote == remote.String() && tcb.State == "ESTABLISHED" {
				return tcb
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no ESTABLISHED TCB %s -> %s", local, remote)
	return tcpext.TCBInfo{}
}

func hasTimer(tcb tcpext.TCBInfo, name string) bool {
	return slices.ContainsFunc(tcb.Timers, func(ti tcpext.TimerInfo) bool { return ti.Name == name })
}

func TestServicesKeepAlive(t *testing.T) {
	s := loopStack(t)
	for _, port := range []uint16{7, 9, 19} {
		c := dialSelf(t, s, port)
		// The handler turns keepalive on once it has the connection, a
		// moment after the dial returns.
		var server tcpext.TCBInfo
		for range 500 {
			if server = tcbOf(t, s, c.RemoteAddr(), c.LocalAddr()); hasTimer(server, "keepalive") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !hasTimer(server, "keepalive") {
			t.Errorf("port %d: the service's TCB runs no keepalive timer: %+v", port, server.Timers)
		}
		// The control: the dialing side did not ask for keepalive.
		if client := tcbOf(t, s, c.LocalAddr(), c.RemoteAddr()); hasTimer(client, "keepalive") {
			t.Errorf("port %d: the client's TCB runs a keepalive timer", port)
		}
	}
}

func TestTCPControlDial(t *testing.T) {
	s := loopStack(t)
	ctl := tcpControl{Protocol: tcpext.ProtocolOf(s), stack: s}
	conn, id, err := ctl.Dial(context.Background(), netip.MustParseAddrPort("198.18.0.2:7"), 40007)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tcb, ok := ctl.TCB(id)
	if !ok || tcb.Local != "198.18.0.2:40007" || tcb.Remote != "198.18.0.2:7" {
		t.Fatalf("Dial's TCB %d is %+v, want 198.18.0.2:40007 -> 198.18.0.2:7", id, tcb)
	}
	if _, _, err := ctl.Dial(context.Background(), netip.MustParseAddrPort("198.18.0.2:81"), 0); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial to a closed port = %v, want ECONNREFUSED", err)
	}
}

// TestShellOverStack runs the TCP commands against the firmware's real
// stack and services.
func TestShellOverStack(t *testing.T) {
	s := loopStack(t)
	proto := tcpext.ProtocolOf(s)
	sh := mgmt.NewShell(proto, mgmt.WithTCPControl(tcpControl{Protocol: proto, stack: s}))
	run := func(line string) (string, int) {
		var b bytes.Buffer
		status := sh.Run(context.Background(), line, &b)
		return b.String(), status
	}

	out, status := run(`tcp connect 198.18.0.2:7 --send "hello, echo\n"`)
	if status != mgmt.StatusOK || !regexp.MustCompile(`^connected to 198\.18\.0\.2:7 from 198\.18\.0\.2:\d+ \(TCB \d+\)\n`).MatchString(out) ||
		!strings.Contains(out, "received 12 bytes:\nhello, echo\n") || !strings.HasSuffix(out, "closed: 12 bytes sent, 12 bytes received\n") {
		t.Fatalf("tcp connect to echo: %d\n%s", status, out)
	}
	if out, status := run("tcp connect 198.18.0.2:81"); status != mgmt.StatusError || !strings.Contains(out, "connection refused") {
		t.Fatalf("tcp connect to a closed port: %d\n%s", status, out)
	}

	// clear tcb resets a live connection: the peer sees the RST.
	c := dialSelf(t, s, 9)
	server := tcbOf(t, s, c.RemoteAddr(), c.LocalAddr())
	before := proto.Stats()
	if out, status := run(fmt.Sprintf("clear tcb %d", server.ID)); status != mgmt.StatusOK {
		t.Fatalf("clear tcb: %d\n%s", status, out)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after clear tcb of the other end = %v, want ECONNRESET", err)
	}
	if _, ok := proto.TCB(server.ID); ok {
		t.Fatalf("TCB %d still there after clear tcb", server.ID)
	}

	out, status = run("show stats --json")
	var stats struct {
		TCP       tcpext.StatsSnapshot `json:"tcp"`
		TCBStates map[string]int       `json:"tcb_states"`
	}
	if err := json.Unmarshal([]byte(out), &stats); status != mgmt.StatusOK || err != nil {
		t.Fatalf("show stats --json: %d, %v\n%s", status, err, out)
	}
	if stats.TCP.ResetsSent <= before.ResetsSent || stats.TCP.ResetsReceived <= before.ResetsReceived {
		t.Errorf("resets sent %d -> %d, received %d -> %d; want both up", before.ResetsSent, stats.TCP.ResetsSent, before.ResetsReceived, stats.TCP.ResetsReceived)
	}
	if got := stats.TCBStates["LISTEN"]; got != 4 {
		t.Errorf("%d TCBs in LISTEN, want the 4 services'", got)
	}
}

func TestEndLog(t *testing.T) {
	var buf lockedBuffer
	l := newEndLog(slog.New(slog.NewTextHandler(&buf, nil)))
	for _, tr := range []tcpext.Transition{
		{ID: 1, From: tcpext.StateEstablished, To: tcpext.StateFinWait1, Cause: "close"},
		{ID: 2, From: tcpext.StateTimeWait, To: tcpext.StateClosed, Cause: "2*MSL"},
		{ID: 3, From: tcpext.StateLastAck, To: tcpext.StateClosed, Cause: "ACK of FIN"},
		{ID: 4, From: tcpext.StateEstablished, To: tcpext.StateClosed, Cause: "RST received"},
		{ID: 5, From: tcpext.StateSynSent, To: tcpext.StateClosed, Cause: "RST in SYN-SENT: connection refused"},
	} {
		l.observe(tr)
	}
	// More ends than the queue holds: the surplus is counted, not waited for.
	for i := range endLogQueue {
		l.observe(tcpext.Transition{ID: uint64(100 + i), From: tcpext.StateFinWait2, To: tcpext.StateClosed, Cause: "timeout"})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		l.run(ctx)
		close(done)
	}()
	for deadline := time.Now().Add(10 * time.Second); strings.Count(buf.String(), "\n") < endLogQueue && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != endLogQueue {
		t.Fatalf("%d lines logged, want %d (the queue's worth):\n%s", len(lines), endLogQueue, buf.String())
	}
	for i, want := range []string{
		`msg="tcp connection ended" tcb=4 state=ESTABLISHED cause="RST received" unlogged_before=2`,
		`tcb=5 state=SYN-SENT cause="RST in SYN-SENT: connection refused"`,
		`tcb=100 state=FIN-WAIT-2 cause=timeout`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %s, want %s", i, lines[i], want)
		}
	}
	if strings.Contains(buf.String(), "tcb=1 ") || strings.Contains(buf.String(), "tcb=2 ") || strings.Contains(buf.String(), "tcb=3 ") {
		t.Errorf("orderly transitions logged:\n%s", buf.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
