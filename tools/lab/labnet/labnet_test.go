//go:build linux

package labnet

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// up builds a lab and tears it down when the test ends, failed or not.
func up(t *testing.T, opts Options) *Lab {
	t.Helper()
	l, err := Up(opts)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return l
}

// addrs returns the IPv4 addresses of ifname in namespace ns.
func addrs(t *testing.T, ns, ifname string) []string {
	t.Helper()
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatalf("%s in %s: %v", ifname, ns, err)
	}
	list, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range list {
		out = append(out, a.IPNet.String())
	}
	return out
}

func assertGone(t *testing.T) {
	t.Helper()
	for _, ns := range []string{DUTNamespace, PeerNamespace} {
		if namespaceExists(ns) {
			t.Errorf("namespace %s still exists", ns)
		}
	}
	if _, err := os.Stat(RunDir); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", RunDir, err)
	}
}

func TestUpDownWithoutFirmware(t *testing.T) {
	requireRoot(t)
	l, err := Up(Options{MSL: 45 * time.Second})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() { l.Down() })

	if got := addrs(t, PeerNamespace, PeerInterface); len(got) != 1 || got[0] != "198.18.0.1/24" {
		t.Errorf("%s addresses %v, want [198.18.0.1/24]", PeerInterface, got)
	}
	if got := addrs(t, DUTNamespace, DUTInterface); len(got) != 0 {
		t.Errorf("%s addresses %v, want none", DUTInterface, got)
	}
	for _, ns := range []string{DUTNamespace, PeerNamespace} {
		if out, err := NamespaceCommand(ns, "ip", "-br", "link", "show", "lo").Output(); err != nil || !strings.Contains(string(out), "UP") {
			t.Errorf("lo in %s: %q, %v; want it up", ns, out, err)
		}
	}
	if out, err := l.PeerCommand("ip", "-br", "addr", "show", PeerInterface).Output(); err != nil || !strings.Contains(string(out), PeerAddress) {
		t.Errorf("PeerCommand: %q, %v", out, err)
	}
	cfg, err := os.ReadFile(ConfigFile)
	if err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, want := range []string{"msl: 45s", "interface: veth-dut", "address: 198.18.0.2/24", "socket: " + MgmtSocket, "chargen: {port: 19}"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("default config lacks %q:\n%s", want, cfg)
		}
	}
	if _, err := l.Shell("help"); err == nil {
		t.Error("Shell without firmware succeeded")
	}

	if err := l.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	assertGone(t)
	if err := l.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
	// Holding the lock, no other lab can be up: Down finds nothing.
	lock, err := acquireLock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := Down(); err != nil {
		t.Errorf("Down with nothing there: %v", err)
	}
}

// fakeFirmware stands in for the firmware: it makes the kernel answer ping
// as 198.18.0.2, creates the socket file and runs until SIGTERM; its shell
// subcommand echoes the command.
const fakeFirmware = `#!/bin/sh
if [ "$1" = shell ]; then echo "ran: $5"; exit 0; fi
echo "fake firmware $*"
echo "SYNFIN_TCP_MSL=$SYNFIN_TCP_MSL"
ip link set veth-dut up
ip addr add 198.18.0.2/24 dev veth-dut
touch /run/synfin-lab/mgmt.sock
trap 'echo stopping; exit 0' TERM
while :; do sleep 0.1; done
`

func writeScript(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "firmware")
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUpWithFirmware(t *testing.T) {
	requireRoot(t)
	l := up(t, Options{FirmwarePath: writeScript(t, fakeFirmware), Env: []string{"SYNFIN_TCP_MSL=7s"}})

	if log := l.FirmwareLog(); !strings.Contains(log, "fake firmware --config "+ConfigFile) {
		t.Errorf("firmware log %q: want the firmware started with --config %s", log, ConfigFile)
	}
	if log := l.FirmwareLog(); !strings.Contains(log, "SYNFIN_TCP_MSL=7s\n") {
		t.Errorf("firmware log %q: want Options.Env in the firmware's environment", log)
	}
	st, err := Inspect()
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if !st.FirmwareRunning || !st.MgmtSocket || !st.Namespaces[DUTNamespace] || !st.Namespaces[PeerNamespace] {
		t.Errorf("Inspect = %+v, want everything present and running", st)
	}
	if out, err := l.Shell("show tcb"); err != nil || out != "ran: show tcb\n" {
		t.Errorf("Shell = %q, %v", out, err)
	}
	if out, err := l.DUTCommand("cat", "/proc/net/dev").Output(); err != nil || !strings.Contains(string(out), DUTInterface) {
		t.Errorf("DUTCommand does not run in %s: %v\n%s", DUTNamespace, err, out)
	}

	if err := l.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	assertGone(t)
	select {
	case <-l.firmwareExited:
	case <-time.After(time.Second):
		t.Error("firmware still runs after Down")
	}
}

func TestUpFirmwareFails(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name, script, want string
	}{
		{"exits", "#!/bin/sh\necho boom >&2\nexit 3\n", "exited during start-up"},
		{"never answers", "#!/bin/sh\necho boom\nexec sleep 60\n", "not ready after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What a failed Up leaves is checked, and cleared, under the
			// lab lock: once Up has given it up, another package's test
			// may build its lab, clearing the log, and must not have its
			// lab cleared by this test.
			l, opts, err := prepare(Options{FirmwarePath: writeScript(t, tt.script), ReadyTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if l.lock, err = acquireLock(); err != nil {
				t.Fatal(err)
			}
			defer l.lock.Close()
			defer Down()
			start := time.Now()
			err = l.upLocked(opts)
			if err == nil {
				t.Fatal("Up succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "boom") {
				t.Errorf("error %q: want %q and the log tail", err, tt.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Up took %v to fail", d)
			}
			for _, ns := range []string{DUTNamespace, PeerNamespace} {
				if namespaceExists(ns) {
					t.Errorf("namespace %s left after a failed Up", ns)
				}
			}
			if _, err := os.Stat(LogFile); err != nil {
				t.Errorf("log not kept after a failed Up: %v", err)
			}
		})
	}
}

func TestInNamespace(t *testing.T) {
	requireRoot(t)
	up(t, Options{})
	peerAddr := net.JoinHostPort(PeerAddress, "0")
	// The peer's address is only in its namespace, so binding it works
	// there and nowhere else.
	if ln, err := net.Listen("tcp", peerAddr); err == nil {
		ln.Close()
		t.Fatalf("%s can be bound outside the peer namespace", PeerAddress)
	}
	var ln net.Listener
	err := InNamespace(PeerNamespace, func() error {
		var err error
		ln, err = net.Listen("tcp", peerAddr)
		return err
	})
	if err != nil {
		t.Fatalf("InNamespace: %v", err)
	}
	defer ln.Close()
	// The socket stays in its namespace: a client there reaches it.
	err = InNamespace(PeerNamespace, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("dialing the listener from the peer namespace: %v", err)
	}
	if _, err := net.Listen("tcp", peerAddr); err == nil {
		t.Fatal("this goroutine was left in the peer namespace")
	}

	want := errors.New("from fn")
	if err := InNamespace(PeerNamespace, func() error { return want }); !errors.Is(err, want) {
		t.Errorf("InNamespace = %v, want fn's error", err)
	}
	if err := InNamespace("synfin-nonesuch", func() error { return nil }); err == nil {
		t.Error("InNamespace of a missing namespace succeeded")
	}
}
