package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/synfin/synfin/tcpext"
	"github.com/synfin/synfin/tools/lab/labnet"
)

// labMSL is tcp.msl in the lab tests: short, so TIME-WAIT ends quickly.
const labMSL = time.Second

// labDrivers are the NIC drivers the lab tests run over; on the lab's veth
// AF_XDP runs its XDP program in native mode.
var labDrivers = []string{"afpacket", "afxdp"}

// driverEnv sets nic.driver for a lab's firmware.
func driverEnv(driver string) []string { return []string{"SYNFIN_NIC_DRIVER=" + driver} }

// TestLabAgainstLinux runs the firmware in the netns lab over each NIC
// driver, AF_XDP in both its modes, and talks to it from Linux's own TCP
// with nc, as a user would.
func TestLabAgainstLinux(t *testing.T) {
	for _, tc := range []struct{ name, driver, xdpMode string }{
		{"afpacket", "afpacket", ""},
		{"afxdp-native", "afxdp", "native"},
		{"afxdp-generic", "afxdp", "generic"},
	} {
		t.Run(tc.name, func(t *testing.T) { testLabAgainstLinux(t, tc.driver, tc.xdpMode) })
	}
}

func testLabAgainstLinux(t *testing.T, driver, xdpMode string) {
	env := driverEnv(driver)
	if xdpMode != "" {
		env = append(env, "SYNFIN_NIC_XDP_MODE="+xdpMode)
	}
	lab := startLab(t, labnet.Options{MSL: labMSL, Env: env}, "nc")

	t.Run("driver in show interfaces", func(t *testing.T) {
		ifc := showInterface(t, lab)
		if ifc.Driver != driver || ifc.Stats.Driver != driver || ifc.Stats.Mode != xdpMode {
			t.Fatalf("show interfaces: driver %q (stats %q, mode %q), want %q mode %q", ifc.Driver, ifc.Stats.Driver, ifc.Stats.Mode, driver, xdpMode)
		}
		if !ifc.Stats.Link.Up {
			t.Fatalf("show interfaces: link not up: %+v", ifc.Stats.Link)
		}
	})

	t.Run("echo 1 MiB", func(t *testing.T) {
		in := make([]byte, 1<<20)
		if _, err := rand.Read(in); err != nil {
			t.Fatal(err)
		}
		cmd := lab.PeerCommand("nc", "-N", labnet.DUTAddress, "7")
		cmd.Stdin = bytes.NewReader(in)
		out, err := run(t, cmd, 60*time.Second)
		if err != nil {
			t.Fatalf("nc: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("echo returned %d bytes, not the %d sent byte for byte", len(out), len(in))
		}
	})

	t.Run("discard 16 MiB", func(t *testing.T) {
		const size = 16 << 20
		cmd := lab.PeerCommand("nc", "-N", labnet.DUTAddress, "9")
		cmd.Stdin = io.LimitReader(rand.Reader, size)
		// nc -N exits only once discard has closed its side, which it does
		// after reading our FIN, which follows the last byte.
		if _, err := run(t, cmd, 120*time.Second); err != nil {
			t.Fatalf("nc: %v", err)
		}
	})

	t.Run("daytime then TIME-WAIT for 2*MSL", func(t *testing.T) {
		cmd := lab.PeerCommand("nc", "-d", labnet.DUTAddress, "13")
		out, err := run(t, cmd, 10*time.Second)
		if err != nil {
			t.Fatalf("nc: %v (nc exits when it sees EOF)", err)
		}
		if !regexp.MustCompile(`^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \S+\r?\n$`).Match(out) {
			t.Fatalf("daytime line %q", out)
		}
		// daytime closes first, so the firmware holds TIME-WAIT.
		tw := findTCB(t, lab, func(c tcpext.TCBInfo) bool {
			return c.State == "TIME-WAIT" && c.Local == labnet.DUTAddress+":13"
		})
		if tw == nil {
			t.Fatalf("no TIME-WAIT TCB on :13 after daytime closed: %s", showTCB(t, lab))
		}
		waitFor(t, 2*labMSL+3*time.Second, "the TIME-WAIT TCB to go after 2*MSL", func() bool {
			return findTCB(t, lab, func(c tcpext.TCBInfo) bool { return c.ID == tw.ID }) == nil
		})
	})

	t.Run("chargen streams", func(t *testing.T) {
		const want = 100000
		cmd := lab.PeerCommand("sh", "-c", fmt.Sprintf("nc -d %s 19 | head -c %d", labnet.DUTAddress, want))
		out, err := run(t, cmd, 30*time.Second)
		if err != nil {
			t.Fatalf("nc: %v", err)
		}
		if len(out) != want {
			t.Fatalf("chargen gave %d bytes, want %d", len(out), want)
		}
		line := strings.SplitN(string(out), "\n", 2)[0]
		if len(strings.TrimRight(line, "\r")) != 72 {
			t.Fatalf("chargen line %q is not 72 characters", line)
		}
	})

	t.Run("closed port is refused", func(t *testing.T) {
		cmd := lab.PeerCommand("nc", "-v", "-w", "3", labnet.DUTAddress, "81")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Stdin = strings.NewReader("")
		if _, err := run(t, cmd, 10*time.Second); err == nil {
			t.Fatal("connection to a closed port succeeded")
		}
		if !strings.Contains(stderr.String(), "refused") {
			t.Fatalf("nc said %q, want connection refused (a RST)", stderr.String())
		}
	})

	t.Run("held connection in show tcb", func(t *testing.T) {
		cmd := lab.PeerCommand("nc", "-N", labnet.DUTAddress, "9")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		var held *tcpext.TCBInfo
		waitFor(t, 10*time.Second, "the held connection to show as ESTABLISHED", func() bool {
			held = findTCB(t, lab, func(c tcpext.TCBInfo) bool {
				return c.State == "ESTABLISHED" && c.Local == labnet.DUTAddress+":9" &&
					strings.HasPrefix(c.Remote, labnet.PeerAddress+":")
			})
			return held != nil
		})
		if held.MSS != 1460 || held.RcvWnd == 0 || held.SndWnd == 0 {
			t.Fatalf("held TCB mss=%d rcv_wnd=%d snd_wnd=%d", held.MSS, held.RcvWnd, held.SndWnd)
		}
		detail, err := lab.Shell(fmt.Sprintf("show tcb %d --json", held.ID))
		if err != nil {
			t.Fatal(err)
		}
		var one tcpext.TCBInfo
		if err := json.Unmarshal([]byte(detail), &one); err != nil || one.ID != held.ID || one.IRS == 0 && one.ISS == 0 {
			t.Fatalf("show tcb %d --json: %v\n%s", held.ID, err, detail)
		}

		// The peer closes first: Linux holds TIME-WAIT, the firmware goes
		// through CLOSE-WAIT and LAST-ACK to nothing.
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("nc: %v", err)
		}
		waitFor(t, 10*time.Second, "the firmware's TCB to close", func() bool {
			return findTCB(t, lab, func(c tcpext.TCBInfo) bool { return c.ID == held.ID }) == nil
		})
		out, err := lab.PeerCommand("ss", "-tan", "state", "time-wait", "dst", labnet.DUTAddress).Output()
		if err != nil {
			t.Fatalf("ss: %v", err)
		}
		if !strings.Contains(string(out), held.Local) {
			t.Fatalf("Linux holds no TIME-WAIT for %s:\n%s", held.Local, out)
		}
	})
}

// startLab builds the firmware and brings the lab up with it on opts,
// after checking that the lab's tools and the extra ones the test needs are
// there. The lab goes down when the test ends; the firmware's log is shown
// if it failed.
func startLab(t *testing.T, opts labnet.Options, tools ...string) *labnet.Lab {
	t.Helper()
	lab, _ := startLabWithPath(t, opts, tools...)
	return lab
}

// startLabWithPath is startLab that also returns the firmware binary's
// path, for a test that starts the firmware again itself.
func startLabWithPath(t *testing.T, opts labnet.Options, tools ...string) (*labnet.Lab, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab creates network namespaces and raw sockets")
	}
	for _, tool := range append([]string{"ip", "ping"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: run `make deps` (the README's test command does)", tool)
		}
	}
	opts.FirmwarePath = filepath.Join(t.TempDir(), "firmware")
	if out, err := exec.Command("go", "build", "-o", opts.FirmwarePath, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the firmware: %v\n%s", err, out)
	}
	lab, err := labnet.Up(opts)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("firmware log:\n%s", lab.FirmwareLog())
		}
		if err := lab.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return lab, opts.FirmwarePath
}

// run runs cmd with a deadline and returns its stdout.
func run(t *testing.T, cmd *exec.Cmd, limit time.Duration) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("%s timed out after %v", cmd, limit)
	}
}

func showTCB(t *testing.T, lab *labnet.Lab) string {
	t.Helper()
	out, err := lab.Shell("show tcb")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// findTCB returns the first TCB from `show tcb --json` that match accepts.
func findTCB(t *testing.T, lab *labnet.Lab, match func(tcpext.TCBInfo) bool) *tcpext.TCBInfo {
	t.Helper()
	out, err := lab.Shell("show tcb --json")
	if err != nil {
		t.Fatal(err)
	}
	var tcbs []tcpext.TCBInfo
	if err := json.Unmarshal([]byte(out), &tcbs); err != nil {
		t.Fatalf("show tcb --json is not a JSON array of TCBs: %v\n%s", err, out)
	}
	for i := range tcbs {
		if match(tcbs[i]) {
			return &tcbs[i]
		}
	}
	return nil
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
