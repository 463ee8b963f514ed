package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/mgmt"
	"github.com/synfin/synfin/tcpext"
)

// TestNoGVisorTCP guards the rule that gVisor's own TCP is never linked into
// the firmware (gonet, for one, would pull it in).
func TestNoGVisorTCP(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/synfin/synfin/firmware/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "gvisor.dev/gvisor/pkg/tcpip/transport/tcp" {
			t.Fatalf("the firmware links %s", pkg)
		}
	}
}

func TestBadConfigExitsNamingKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("tcp:\n  msl: 1s\n  msl_typo: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := runCLI([]string{"--config", path}, nil, &bytes.Buffer{}, &stderr); code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if !strings.Contains(stderr.String(), "config: tcp.msl_typo: unknown key") {
		t.Errorf("stderr %q does not name the key", stderr.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"stray"}, {"shell", "show", "tcb"}, {"shell", "--bogus"}} {
		if code := runCLI(args, nil, &bytes.Buffer{}, &bytes.Buffer{}); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}

type fakeTCBs []tcpext.TCBInfo

func (f fakeTCBs) TCBs() []tcpext.TCBInfo { return f }

func (f fakeTCBs) TCB(id uint64) (tcpext.TCBInfo, bool) {
	for _, t := range f {
		if t.ID == id {
			return t, true
		}
	}
	return tcpext.TCBInfo{}, false
}

func startMgmt(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mgmt.sock")
	sh := mgmt.NewShell(fakeTCBs{{ID: 3, State: "ESTABLISHED"}})
	srv, err := mgmt.Listen(path, sh, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		srv.Serve(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return path
}

func TestShellOneShotStatus(t *testing.T) {
	path := startMgmt(t)
	for _, tc := range []struct {
		cmd    string
		status int
		want   string
	}{
		{"show tcb 3", mgmt.StatusOK, "ESTABLISHED"},
		{"show tcb 4", mgmt.StatusError, "error: no TCB with id 4"},
		{"bogus", mgmt.StatusUsage, `error: unknown command "bogus"`},
	} {
		var stdout bytes.Buffer
		code := runCLI([]string{"shell", "--socket", path, "-c", tc.cmd}, nil, &stdout, &bytes.Buffer{})
		if code != tc.status || !strings.Contains(stdout.String(), tc.want) {
			t.Errorf("%q: exit %d with\n%s\nwant %d and %q", tc.cmd, code, stdout.String(), tc.status, tc.want)
		}
	}
}

func TestShellSocketFromEnv(t *testing.T) {
	t.Setenv("SYNFIN_MGMT_SOCKET", startMgmt(t))
	if code := runCLI([]string{"shell", "-c", "help"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestShellInteractive(t *testing.T) {
	path := startMgmt(t)
	stdin := strings.NewReader("help\n\n  show tcb\nbogus\nexit\nhelp\n")
	var stdout bytes.Buffer
	if code := runCLI([]string{"shell", "--socket", path}, stdin, &stdout, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stdout.String())
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "synfin> commands:") {
		t.Errorf("output does not start with a prompt and help:\n%s", out)
	}
	// help (and the help shown for "bogus") before exit; none after.
	if n := strings.Count(out, "commands:"); n != 2 {
		t.Errorf("help printed %d times, want 2 (nothing after exit):\n%s", n, out)
	}
	for _, want := range []string{"ESTABLISHED", `error: unknown command "bogus"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	stdout.Reset()
	if code := runCLI([]string{"shell", "--socket", path}, strings.NewReader("show tcb 3"), &stdout, &bytes.Buffer{}); code != 0 {
		t.Fatalf("EOF without exit: exit %d", code)
	}
	if !strings.Contains(stdout.String(), "ESTABLISHED") {
		t.Errorf("unterminated last line not run:\n%s", stdout.String())
	}
}

func TestShellNoFirmware(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	var stderr bytes.Buffer
	if code := runCLI([]string{"shell", "--socket", path, "-c", "help"}, nil, &bytes.Buffer{}, &stderr); code != exitNoConnection {
		t.Errorf("-c: exit %d, want %d", code, exitNoConnection)
	}
	if code := runCLI([]string{"shell", "--socket", path}, strings.NewReader("help\n"), &bytes.Buffer{}, &stderr); code != exitNoConnection {
		t.Errorf("interactive: exit %d, want %d", code, exitNoConnection)
	}
	if !strings.Contains(stderr.String(), "none.sock") {
		t.Errorf("stderr %q does not say which socket", stderr.String())
	}
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, config.EnvPrefix+"_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestNewStackRoutes(t *testing.T) {
	cfg := testConfig(t)
	s, err := newStack(cfg, channel.New(1, 1500, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer destroyStack(s)
	want := []tcpip.Route{
		{Destination: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4([4]byte{198, 18, 0, 0}), PrefixLen: 24}.Subnet(), NIC: nicID},
		{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4([4]byte{198, 18, 0, 1}), NIC: nicID},
	}
	if got := s.GetRouteTable(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("routes = %v, want %v", got, want)
	}
	if tcpext.ProtocolOf(s) == nil {
		t.Error("tcpext is not the stack's TCP")
	}

	cfg.Net.Gateway = netip.Addr{}
	s2, err := newStack(cfg, channel.New(1, 1500, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer destroyStack(s2)
	if got := s2.GetRouteTable(); len(got) != 1 {
		t.Errorf("without a gateway: routes = %v, want the subnet only", got)
	}
}

func TestNewStackAnswersPing(t *testing.T) {
	cfg := testConfig(t)
	ep := channel.New(4, 1500, "")
	s, err := newStack(cfg, ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer destroyStack(s)

	peer := tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	self := tcpip.AddrFrom4(cfg.Net.Address.Addr().As4())
	msg := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+4)
	ip := header.IPv4(msg)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(msg)),
		TTL:         64,
		Protocol:    uint8(header.ICMPv4ProtocolNumber),
		SrcAddr:     peer,
		DstAddr:     self,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(ip.Payload())
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(7)
	icmp.SetSequence(1)
	copy(icmp.Payload(), "ping")
	icmp.SetChecksum(header.ICMPv4Checksum(icmp, 0))
	ep.InjectInbound(ipv4.ProtocolNumber, stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(msg)}))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pkt := ep.ReadContext(ctx)
	if pkt == nil {
		t.Fatal("no reply to an echo request")
	}
	defer pkt.DecRef()
	view := pkt.ToView()
	defer view.Release()
	reply := header.IPv4(view.AsSlice())
	if !reply.IsValid(len(reply)) || reply.SourceAddress() != self || reply.DestinationAddress() != peer {
		t.Fatalf("reply is not IPv4 from %s to %s: %x", self, peer, []byte(reply))
	}
	r := header.ICMPv4(reply.Payload())
	if r.Type() != header.ICMPv4EchoReply || r.Ident() != 7 || string(r.Payload()) != "ping" {
		t.Fatalf("reply is not our echo reply: %x", []byte(r))
	}
}

func TestEnabledServices(t *testing.T) {
	got := enabledServices(config.Services{Echo: config.Service{Port: 7}, Chargen: config.Service{Port: 1919}})
	if len(got) != 2 || got[0].name != "echo" || got[0].port != 7 || got[1].name != "chargen" || got[1].port != 1919 {
		t.Errorf("enabledServices = %+v", got)
	}
}
