package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synfin/synfin/tcpext"
	"github.com/synfin/synfin/tools/lab/labnet"
)

// sshClient runs OpenSSH's clients in the lab's peer namespace against the
// firmware, with a key of the test's own and the firmware's host key
// pinned, so a login also proves the firmware serves the key it stored.
type sshClient struct {
	lab *labnet.Lab
	dir string
	key string
}

func (c *sshClient) args(key string, extra ...string) []string {
	a := append([]string{"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + filepath.Join(c.dir, "known_hosts"),
		"-o", "LogLevel=ERROR", "-i", key}, extra...)
	return a
}

// ssh runs command on the firmware over SSH and returns its stdout,
// stderr and exit status.
func (c *sshClient) ssh(t *testing.T, key string, command ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := c.lab.PeerCommand("ssh", append(c.args(key), append([]string{"admin@" + labnet.DUTAddress}, command...)...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := run(t, cmd, 60*time.Second)
	status = cmd.ProcessState.ExitCode()
	if err != nil && status < 0 {
		t.Fatalf("ssh %v: %v", command, err)
	}
	return string(out), errb.String(), status
}

func newSSHClient(t *testing.T, env ...string) *sshClient {
	t.Helper()
	dir := t.TempDir()
	c := &sshClient{dir: dir, key: filepath.Join(dir, "testkey")}
	keygen := func(path string) {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "synfin test", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	keygen(c.key)
	pub, err := os.ReadFile(c.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	c.lab = startLab(t, labnet.Options{MSL: labMSL, Env: append([]string{
		"SYNFIN_MGMT_SSH_HOST_KEY=" + hostKey,
		"SYNFIN_MGMT_SSH_AUTHORIZED_KEYS=" + authorized,
	}, env...)}, "nc", "ssh", "scp", "ssh-keygen", "tshark")
	hostPub, err := exec.Command("ssh-keygen", "-y", "-f", hostKey).Output()
	if err != nil {
		t.Fatalf("the firmware made no readable host key at %s: %v", hostKey, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(labnet.DUTAddress+" "+string(hostPub)), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLabSSH logs in to the firmware with OpenSSH from Linux, over the
// firmware's own TCP, and uses what SSH offers: exec, scp of dumps, and
// the refusals.
func TestLabSSH(t *testing.T) {
	c := newSSHClient(t)

	t.Run("show tcb lists the SSH connection itself", func(t *testing.T) {
		out, errOut, status := c.ssh(t, c.key, "show", "tcb", "--json")
		if status != 0 {
			t.Fatalf("ssh show tcb --json: status %d: %s", status, errOut)
		}
		var tcbs []tcpext.TCBInfo
		if err := json.Unmarshal([]byte(out), &tcbs); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		var own []tcpext.TCBInfo
		for _, tcb := range tcbs {
			if tcb.State == "ESTABLISHED" && tcb.Local == labnet.DUTAddress+":22" && strings.HasPrefix(tcb.Remote, labnet.PeerAddress+":") {
				own = append(own, tcb)
			}
		}
		if len(own) != 1 {
			t.Fatalf("want exactly the one SSH connection ESTABLISHED from %s to %s:22, got %d:\n%s", labnet.PeerAddress, labnet.DUTAddress, len(own), out)
		}
		port, _ := strconv.Atoi(strings.TrimPrefix(own[0].Remote, labnet.PeerAddress+":"))
		if port < 1024 {
			t.Errorf("the client's port %d is not an ephemeral one", port)
		}
		text, _, status := c.ssh(t, c.key, "show tcb --state established --port 22")
		if status != 0 || !strings.Contains(text, "ESTABLISHED") || !strings.Contains(text, labnet.DUTAddress+":22") {
			t.Errorf("show tcb (text, filtered): status %d\n%s", status, text)
		}
		if _, _, status := c.ssh(t, c.key, "show", "tcb", "999999"); status != 1 {
			t.Errorf("show tcb of no TCB: exit status %d, want 1", status)
		}
		if out, _, status := c.ssh(t, c.key, "frobnicate"); status != 2 || !strings.Contains(out, "commands:") {
			t.Errorf("unknown command: exit status %d, want 2 and the usage\n%s", status, out)
		}
	})

	t.Run("interactive shell on a terminal", func(t *testing.T) {
		// -tt gives the session a terminal although the test's stdin is
		// not one; the keys go through as typed, tab included.
		cmd := c.lab.PeerCommand("ssh", append(c.args(c.key, "-tt"), "admin@"+labnet.DUTAddress)...)
		cmd.Stdin = strings.NewReader("show tc\t--state est\t\rexit\r")
		out, err := run(t, cmd, 30*time.Second)
		if err != nil {
			t.Fatalf("ssh -tt: %v\n%s", err, out)
		}
		for _, want := range []string{"synfin> ", "show tcb --state established", "ESTABLISHED", labnet.DUTAddress + ":22"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("no %q in the session:\n%s", want, out)
			}
		}
	})

	t.Run("a reset connection's dump by scp, its pcap by tshark", func(t *testing.T) {
		nc := c.lab.PeerCommand("nc", "-d", labnet.DUTAddress, "9")
		if err := nc.Start(); err != nil {
			t.Fatal(err)
		}
		ncDone := make(chan error, 1)
		go func() { ncDone <- nc.Wait() }()
		defer nc.Process.Kill()
		var held *tcpext.TCBInfo
		waitFor(t, 10*time.Second, "nc's connection to the discard service", func() bool {
			held = findTCB(t, c.lab, func(tcb tcpext.TCBInfo) bool {
				return tcb.State == "ESTABLISHED" && tcb.Local == labnet.DUTAddress+":9"
			})
			return held != nil
		})
		if out, errOut, status := c.ssh(t, c.key, "clear", "tcb", strconv.FormatUint(held.ID, 10)); status != 0 {
			t.Fatalf("clear tcb %d: status %d\n%s%s", held.ID, status, out, errOut)
		}
		select {
		case <-ncDone:
		case <-time.After(10 * time.Second):
			t.Fatal("nc did not notice the reset")
		}

		name := fmt.Sprintf("%d.json", held.ID)
		scp := c.lab.PeerCommand("scp", c.args(c.key, "-s", "admin@"+labnet.DUTAddress+":/tcb/"+name, c.dir)...)
		if out, err := scp.CombinedOutput(); err != nil {
			t.Fatalf("scp /tcb/%s: %v\n%s", name, err, out)
		}
		b, err := os.ReadFile(filepath.Join(c.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var d tcpext.TCBDump
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s does not parse: %v\n%s", name, err, b)
		}
		if d.TCB.ID != held.ID || !d.Closed || d.TCB.Remote != held.Remote {
			t.Errorf("%s: TCB %d %s closed=%v, want the closed TCB %d from %s", name, d.TCB.ID, d.TCB.Remote, d.Closed, held.ID, held.Remote)
		}
		if !hasSegment(d, tcpext.EventSegOut, "RST") {
			t.Errorf("the dump of an aborted connection holds no RST sent:\n%s", b)
		}

		// The pcap of the same connection, over ssh's exec as a binary
		// stream, read by tshark.
		pcap, errOut, status := c.ssh(t, c.key, "tcb", "dump", strconv.FormatUint(held.ID, 10), "--pcap")
		if status != 0 {
			t.Fatalf("tcb dump --pcap: status %d: %s", status, errOut)
		}
		path := filepath.Join(c.dir, "reset.pcap")
		if err := os.WriteFile(path, []byte(pcap), 0o644); err != nil {
			t.Fatal(err)
		}
		fields, err := exec.Command("tshark", "-n", "-r", path, "-T", "fields", "-e", "ip.src", "-e", "ip.dst",
			"-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.flags.reset").Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, fields)
		}
		lines := strings.Split(strings.TrimSpace(string(fields)), "\n")
		handshake := []struct {
			src, dst string
			syn, ack bool
		}{{labnet.PeerAddress, labnet.DUTAddress, true, false}, {labnet.DUTAddress, labnet.PeerAddress, true, true}, {labnet.PeerAddress, labnet.DUTAddress, false, true}}
		if len(lines) < 4 {
			t.Fatalf("tshark read %d packets, want the handshake and the RST:\n%s", len(lines), fields)
		}
		for i, want := range handshake {
			f := strings.Split(lines[i], "\t")
			if len(f) < 5 || f[0] != want.src || f[1] != want.dst || isSet(f[2]) != want.syn || isSet(f[3]) != want.ack {
				t.Errorf("packet %d as tshark reads it: %q; want %s -> %s syn=%v ack=%v", i+1, lines[i], want.src, want.dst, want.syn, want.ack)
			}
		}
		if last := strings.Split(lines[len(lines)-1], "\t"); len(last) < 5 || !isSet(last[4]) || last[0] != labnet.DUTAddress {
			t.Errorf("the last packet %q is not our RST", lines[len(lines)-1])
		}
	})

	t.Run("a refused active open keeps the peer's RST", func(t *testing.T) {
		out, _, status := c.ssh(t, c.key, "tcp", "connect", labnet.PeerAddress+":81")
		if status != 1 {
			t.Fatalf("tcp connect to a closed port: status %d\n%s", status, out)
		}
		all, _, status := c.ssh(t, c.key, "tcb", "dump", "all")
		var dumps []tcpext.TCBDump
		if status != 0 || json.Unmarshal([]byte(all), &dumps) != nil {
			t.Fatalf("tcb dump all: status %d\n%s", status, all)
		}
		for _, d := range dumps {
			if d.TCB.Remote == labnet.PeerAddress+":81" {
				if !d.Closed || !hasSegment(d, tcpext.EventSegIn, "RST") {
					t.Errorf("the refused connection's dump: closed=%v, events %+v", d.Closed, d.Events)
				}
				return
			}
		}
		t.Errorf("no dump of the refused connection to :81 in tcb dump all")
	})

	t.Run("unknown key and passwords are refused", func(t *testing.T) {
		stranger := filepath.Join(c.dir, "stranger")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		if _, errOut, status := c.ssh(t, stranger, "show", "tcb"); status != 255 || !strings.Contains(errOut, "Permission denied") {
			t.Errorf("unknown key: status %d, %q; want 255 and permission denied", status, errOut)
		}
		cmd := c.lab.PeerCommand("ssh", c.args(c.key, "-o", "PubkeyAuthentication=no",
			"-o", "PreferredAuthentications=password,keyboard-interactive", "admin@"+labnet.DUTAddress, "show", "tcb")...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Permission denied (publickey)") {
			t.Errorf("password login: %v, %q; want the server to offer public keys only", err, out)
		}
		// A good login clears the failures for the next test.
		if _, errOut, status := c.ssh(t, c.key, "help"); status != 0 {
			t.Fatalf("login with the right key: %d %s", status, errOut)
		}
	})

	t.Run("repeated failures are slowed down", func(t *testing.T) {
		stranger := filepath.Join(c.dir, "stranger")
		var took []time.Duration
		for range 6 {
			start := time.Now()
			if _, _, status := c.ssh(t, stranger, "help"); status != 255 {
				t.Fatalf("unknown key logged in: status %d", status)
			}
			took = append(took, time.Since(start))
		}
		// The first three are free; then each waits 0.5s, 1s, 2s more.
		if took[0] > 2*time.Second || took[4] < time.Second || took[5] < 2*time.Second || took[5] < took[0]+1500*time.Millisecond {
			t.Errorf("failed logins took %v: want the later ones slowed down by at least 1s and 2s", took)
		}
		start := time.Now()
		if _, errOut, status := c.ssh(t, c.key, "help"); status != 0 {
			t.Fatalf("the right key after failures from the same address: %d %s", status, errOut)
		}
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("the right key got in after %v, without the 4s wait its address has earned", d)
		}
	})
}

func isSet(field string) bool { return field == "1" || field == "True" }

// hasSegment reports whether d recorded a segment of kind with flag.
func hasSegment(d tcpext.TCBDump, kind, flag string) bool {
	for _, ev := range d.Events {
		if ev.Kind == kind && ev.Seg != nil && strings.Contains("|"+ev.Seg.Flags+"|", "|"+flag+"|") {
			return true
		}
	}
	return false
}

// TestLabDumpLossyTransfer dumps a connection that crossed a lossy link
// (the lab mode's impairment) and draws it with tcbview: the PNG must be a
// real picture and the SVG must mark every retransmission in the dump.
func TestLabDumpLossyTransfer(t *testing.T) {
	lab := startLab(t, labnet.Options{MSL: labMSL, Env: []string{
		"SYNFIN_NIC_IMPAIR_LOSS=3%", "SYNFIN_NIC_IMPAIR_DIRECTION=out", "SYNFIN_NIC_IMPAIR_DELAY=2ms",
		"SYNFIN_TCP_RECORDER_EVENTS=4096",
	}}, "nc")
	const size = 1 << 20
	cmd := lab.PeerCommand("sh", "-c", fmt.Sprintf("nc -d %s 19 | head -c %d | wc -c", labnet.DUTAddress, size))
	out, err := run(t, cmd, 60*time.Second)
	if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(size) {
		t.Fatalf("chargen through the lossy link: %v, %q", err, out)
	}
	all, err := lab.Shell("tcb dump all")
	if err != nil {
		t.Fatal(err)
	}
	var dumps []tcpext.TCBDump
	if err := json.Unmarshal([]byte(all), &dumps); err != nil {
		t.Fatalf("tcb dump all: %v", err)
	}
	var chargen *tcpext.TCBDump
	for i, d := range dumps {
		if d.TCB.Local == labnet.DUTAddress+":19" {
			chargen = &dumps[i]
		}
	}
	if chargen == nil {
		t.Fatal("no dump of the chargen connection")
	}
	retransmits := 0
	for _, ev := range chargen.Events {
		if ev.Kind == tcpext.EventSegOut && ev.Seg != nil && ev.Seg.Retransmit {
			retransmits++
		}
	}
	if retransmits == 0 {
		t.Fatalf("1 MiB at 3%% loss and no retransmission recorded (%d events, %d lost)", len(chargen.Events), chargen.EventsLost)
	}

	dir := t.TempDir()
	dump := filepath.Join(dir, "lossy.json")
	b, _ := json.Marshal(chargen)
	if err := os.WriteFile(dump, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tcbview := filepath.Join(dir, "tcbview")
	if out, err := exec.Command("go", "build", "-o", tcbview, "../tools/tcbview").CombinedOutput(); err != nil {
		t.Fatalf("building tcbview: %v\n%s", err, out)
	}
	timeline, err := exec.Command(tcbview, dump).Output()
	if err != nil {
		t.Fatalf("tcbview: %v", err)
	}
	if n := strings.Count(string(timeline), "RETRANSMIT\n"); n != retransmits {
		t.Errorf("the timeline flags %d retransmissions, the dump has %d", n, retransmits)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "lossy.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(svg), `class="retransmit"`); n != retransmits {
		t.Errorf("the SVG marks %d retransmissions, the dump has %d", n, retransmits)
	}
	f, err := os.Open(filepath.Join(dir, "lossy.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("lossy.png: %v", err)
	}
	ink := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r < 0xf000 || g < 0xf000 || b < 0xf000 {
				ink++
			}
		}
	}
	if fi.Size() < 10<<10 || ink < bounds.Dx()*bounds.Dy()/50 {
		t.Errorf("lossy.png is %d bytes with %d inked pixels: not a picture of a transfer", fi.Size(), ink)
	}
}
