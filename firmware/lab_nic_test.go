package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synfin/synfin/nic"
	"github.com/synfin/synfin/tools/lab/labnet"
)

// labInterface is one entry of `show interfaces --json`.
type labInterface struct {
	Name   string    `json:"name"`
	Driver string    `json:"driver"`
	Stats  nic.Stats `json:"stats"`
}

func showInterface(t *testing.T, lab *labnet.Lab) labInterface {
	t.Helper()
	out, err := lab.Shell("show interfaces --json")
	if err != nil {
		t.Fatal(err)
	}
	var ifcs []labInterface
	if err := json.Unmarshal([]byte(out), &ifcs); err != nil || len(ifcs) != 1 {
		t.Fatalf("show interfaces --json: %v\n%s", err, out)
	}
	return ifcs[0]
}

// syncBuffer is a bytes.Buffer safe to fill from one goroutine and read
// from another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestLabLinkFlap takes the peer's end of the veth down for 2 s in the
// middle of an echo transfer: the transfer completes byte for byte, and
// the firmware counts the carrier going and coming back.
func TestLabLinkFlap(t *testing.T) {
	for _, driver := range labDrivers {
		t.Run(driver, func(t *testing.T) {
			lab := startLab(t, labnet.Options{MSL: labMSL, Env: driverEnv(driver)}, "nc")
			before := showInterface(t, lab).Stats.Link

			const half = 2 << 20
			in := make([]byte, 2*half)
			if _, err := rand.Read(in); err != nil {
				t.Fatal(err)
			}
			cmd := lab.PeerCommand("nc", "-N", labnet.DUTAddress, "7")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var out syncBuffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer cmd.Process.Kill()

			wrote := make(chan error, 1)
			resume := make(chan struct{})
			go func() {
				_, err := stdin.Write(in[:half])
				if err == nil {
					<-resume
					_, err = stdin.Write(in[half:])
				}
				stdin.Close()
				wrote <- err
			}()
			waitFor(t, 30*time.Second, "the first half to come back", func() bool { return out.Len() >= half/2 })

			peerLink := func(state string) {
				t.Helper()
				if b, err := exec.Command("ip", "-n", labnet.PeerNamespace, "link", "set", labnet.PeerInterface, state).CombinedOutput(); err != nil {
					t.Fatalf("ip link set %s %s: %v: %s", labnet.PeerInterface, state, err, b)
				}
			}
			peerLink("down")
			// Data sent into the dead link is lost and must be
			// retransmitted once it is back.
			close(resume)
			waitFor(t, 5*time.Second, "the firmware to see the carrier go", func() bool {
				return showInterface(t, lab).Stats.Link.Downs > before.Downs
			})
			time.Sleep(2 * time.Second)
			peerLink("up")

			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("nc: %v", err)
				}
			case <-time.After(90 * time.Second):
				t.Fatalf("transfer did not complete after the link came back: %d of %d bytes echoed", out.Len(), len(in))
			}
			if err := <-wrote; err != nil {
				t.Fatalf("writing to nc: %v", err)
			}
			if got := out.Bytes(); !bytes.Equal(got, in) {
				t.Fatalf("echo returned %d bytes, not the %d sent byte for byte", len(got), len(in))
			}
			after := showInterface(t, lab).Stats.Link
			if !after.Up || after.Downs != before.Downs+1 || after.Ups != before.Ups+1 {
				t.Fatalf("link state %+v after one flap, was %+v", after, before)
			}
		})
	}
}

// TestLabCrashAFXDP kills the firmware running AF_XDP with SIGKILL, which
// leaves its XDP program attached, and starts it again: it removes the
// stale program, comes up and serves.
func TestLabCrashAFXDP(t *testing.T) {
	env := driverEnv("afxdp")
	lab, firmware := startLabWithPath(t, labnet.Options{MSL: labMSL, Env: env}, "nc")
	st, err := labnet.Inspect()
	if err != nil || st.FirmwarePID == 0 {
		t.Fatalf("no firmware pid: %+v, %v", st, err)
	}
	if err := syscall.Kill(st.FirmwarePID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the killed firmware to be gone", func() bool {
		st, err := labnet.Inspect()
		return err == nil && !st.FirmwareRunning
	})
	if !strings.Contains(linkDetails(t), "prog/xdp") {
		t.Fatalf("no XDP program left on %s after SIGKILL:\n%s", labnet.DUTInterface, linkDetails(t))
	}

	var log syncBuffer
	cmd := exec.Command("ip", "netns", "exec", labnet.DUTNamespace, firmware, "--config", labnet.ConfigFile)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The lab's Down stops it with everything else in the namespace.
	go cmd.Wait()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("restarted firmware's log:\n%s", log.Bytes())
		}
	})
	waitFor(t, 20*time.Second, "the restarted firmware to answer ping", func() bool {
		return lab.PeerCommand("ping", "-c1", "-W1", labnet.DUTAddress).Run() == nil
	})
	if !strings.Contains(string(log.Bytes()), "removed XDP program") {
		t.Errorf("the restarted firmware did not report removing the stale XDP program:\n%s", log.Bytes())
	}

	in := make([]byte, 1<<20)
	if _, err := rand.Read(in); err != nil {
		t.Fatal(err)
	}
	nc := lab.PeerCommand("nc", "-N", labnet.DUTAddress, "7")
	nc.Stdin = bytes.NewReader(in)
	got, err := run(t, nc, 60*time.Second)
	if err != nil {
		t.Fatalf("nc: %v", err)
	}
	if !bytes.Equal(got, in) {
		t.Fatalf("echo after restart returned %d bytes, not the %d sent byte for byte", len(got), len(in))
	}
	if ifc := showInterface(t, lab); ifc.Driver != "afxdp" {
		t.Fatalf("restarted firmware runs %q, want afxdp", ifc.Driver)
	}
}

func linkDetails(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", labnet.DUTNamespace, "-d", "link", "show", labnet.DUTInterface).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	return string(out)
}

// TestLabCapture captures an echo session through the shell and has tshark
// read the file: the handshake, the data both ways and the close are in it,
// and the filter kept out everything else.
func TestLabCapture(t *testing.T) {
	for _, driver := range labDrivers {
		t.Run(driver, func(t *testing.T) {
			lab := startLab(t, labnet.Options{MSL: labMSL, Env: driverEnv(driver)}, "nc", "tshark")
			file := filepath.Join(t.TempDir(), "echo.pcap")
			out, err := lab.Shell(fmt.Sprintf("capture start --file %s --filter %s:7", file, labnet.DUTAddress))
			if err != nil {
				t.Fatalf("capture start: %v: %s", err, out)
			}
			// Traffic the filter must leave out: a daytime session.
			if _, err := run(t, lab.PeerCommand("nc", "-d", labnet.DUTAddress, "13"), 10*time.Second); err != nil {
				t.Fatalf("nc daytime: %v", err)
			}
			const msg = "hello through the capture\n"
			nc := lab.PeerCommand("nc", "-N", labnet.DUTAddress, "7")
			nc.Stdin = strings.NewReader(msg)
			if got, err := run(t, nc, 10*time.Second); err != nil || string(got) != msg {
				t.Fatalf("nc echo: %q, %v", got, err)
			}
			// The firmware's last ACK of the peer's FIN may still be on
			// its way.
			time.Sleep(200 * time.Millisecond)
			out, err = lab.Shell("capture stop --json")
			if err != nil {
				t.Fatalf("capture stop: %v: %s", err, out)
			}
			var res struct{ Frames uint64 }
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.Frames == 0 {
				t.Fatalf("capture stop --json: %v\n%s", err, out)
			}

			tshark := exec.Command("tshark", "-r", file, "-T", "fields", "-E", "separator=,",
				"-e", "ip.src", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
				"-e", "tcp.flags.fin", "-e", "tcp.flags.reset", "-e", "tcp.payload")
			var stderr bytes.Buffer
			tshark.Stderr = &stderr
			lines, err := tshark.Output()
			if err != nil {
				t.Fatalf("tshark: %v: %s", err, stderr.String())
			}
			checkEchoSession(t, string(lines), msg)
		})
	}
}

// checkEchoSession reads tshark's fields (ip.src, tcp.srcport,
// tcp.dstport, syn, ack, fin, rst, payload) and checks that they show a
// whole echo session with the peer and nothing but port 7.
func checkEchoSession(t *testing.T, lines, msg string) {
	t.Helper()
	var syn, synAck, fromPeer, fromDUT, finPeer, finDUT bool
	hexMsg := fmt.Sprintf("%x", msg)
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		f := strings.Split(l, ",")
		if len(f) != 8 {
			t.Fatalf("tshark line %q", l)
		}
		if f[1] != "7" && f[2] != "7" {
			t.Errorf("frame outside the filter: %q", l)
		}
		peer := f[0] == labnet.PeerAddress
		switch {
		case f[3] == "1" && f[4] == "0" && peer:
			syn = true
		case f[3] == "1" && f[4] == "1" && !peer:
			synAck = true
		}
		if strings.ReplaceAll(f[7], ":", "") == hexMsg {
			fromPeer = fromPeer || peer
			fromDUT = fromDUT || !peer
		}
		if f[5] == "1" {
			finPeer = finPeer || peer
			finDUT = finDUT || !peer
		}
		if f[6] == "1" {
			t.Errorf("reset in a clean echo session: %q", l)
		}
	}
	for what, ok := range map[string]bool{
		"SYN from the peer": syn, "SYN-ACK from the firmware": synAck,
		"the data from the peer": fromPeer, "the data echoed": fromDUT,
		"FIN from the peer": finPeer, "FIN from the firmware": finDUT,
	} {
		if !ok {
			t.Errorf("capture lacks %s:\n%s", what, lines)
		}
	}
}
