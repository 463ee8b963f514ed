package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"
	"time"

	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/nic/impair"
	"github.com/synfin/synfin/tools/lab/labnet"
)

// labIntegritySize is what nc sends to the echo service, and so what comes
// back: that much each way.
const labIntegritySize = 64 << 20

// The integrity requirement against Linux: 64 MiB each way
// between the firmware's echo service and Linux's TCP (nc), through the
// lab mode's impairment of the firmware's link, at 0 %, 1 % and 5 % loss
// each way, with reordering (250µs of jitter against 60µs per full frame
// at 200 Mbit/s), 1 % duplication and 0.1 % corruption. What comes back
// must hash as what was sent.
//
// The firmware's RTO floor is 50ms here rather than 200ms. This test is
// about integrity, and at 5 % loss the firmware's side spends most of the
// run waiting for retransmission timeouts: with 200ms the 5 % run takes
// about 145 s instead of about 58 s.
func TestLabIntegrityImpaired(t *testing.T) {
	for _, loss := range []string{"0%", "1%", "5%"} {
		t.Run("loss="+loss, func(t *testing.T) {
			settings := map[string]string{
				"nic.impair.loss":      loss,
				"nic.impair.delay":     "250us",
				"nic.impair.jitter":    "250us",
				"nic.impair.duplicate": "1%",
				"nic.impair.corrupt":   "0.1%",
				"nic.impair.rate":      "200mbit",
				"tcp.rto_min":          "50ms",
			}
			var env []string
			for k, v := range settings {
				env = append(env, config.EnvName(k)+"="+v)
			}
			lab := startLab(t, labnet.Options{MSL: labMSL, Env: env}, "nc")
			// Linux hands TSO super-segments of up to 64 KiB over a veth
			// unsplit; the impairment would lose or delay such a frame as
			// one packet, 45 segments at once. One segment per frame, as
			// on a wire, makes the loss rate a rate of segments.
			if out, err := lab.PeerCommand("ip", "link", "set", "dev", labnet.PeerInterface, "gso_max_segs", "1").CombinedOutput(); err != nil {
				t.Fatalf("turning TSO off on %s: %v\n%s", labnet.PeerInterface, err, out)
			}

			start := time.Now()
			sent, got, n, err := echoThrough(lab, labIntegritySize, 10*time.Minute)
			elapsed := time.Since(start)
			st := labNICStats(t, lab)
			t.Logf("%d MiB each way in %v; firmware link: rx %d frames (%d bytes), tx %d frames",
				labIntegritySize>>20, elapsed.Round(time.Millisecond), st.RxFrames, st.RxBytes, st.TxFrames)
			if st.Impair != nil {
				t.Logf("impairment: out %+v; in %+v", st.Impair.Out, st.Impair.In)
			}
			if err != nil {
				t.Fatalf("nc: %v (%d of %d bytes back)\n%s", err, n, labIntegritySize, showTCB(t, lab))
			}
			if n != labIntegritySize || got != sent {
				t.Fatalf("echo returned %d bytes with sha256 %x; sent %d bytes with sha256 %x", n, got, labIntegritySize, sent)
			}
			if st.Impair == nil || st.Impair.In.Duplicated+st.Impair.Out.Duplicated == 0 || st.Impair.In.Corrupted+st.Impair.Out.Corrupted == 0 {
				t.Errorf("the firmware's link did not impair as configured: %+v", st.Impair)
			}
			if st.RxFrames > 0 && st.RxBytes/st.RxFrames > 1514 {
				t.Errorf("the firmware received frames of %d bytes on average: super-frames, not wire frames", st.RxBytes/st.RxFrames)
			}
		})
	}
}

// echoThrough sends size pseudo-random bytes to the echo service with nc
// from the peer namespace, and returns the SHA-256 of what it sent, of
// what came back and how much came back.
func echoThrough(lab *labnet.Lab, size int64, limit time.Duration) (sent, got [sha256.Size]byte, n int64, err error) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(size))
	in := sha256.New()
	out := sha256.New()
	counter := &countWriter{}
	// nc -N shuts its sending side down at the end of its input, and exits
	// once the echo service has closed its side after echoing everything.
	cmd := lab.PeerCommand("nc", "-N", labnet.DUTAddress, "7")
	cmd.Stdin = io.TeeReader(io.LimitReader(rand.NewChaCha8(key), size), in)
	cmd.Stdout = io.MultiWriter(out, counter)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = runUntil(cmd, limit)
	if err != nil && stderr.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	in.Sum(sent[:0])
	out.Sum(got[:0])
	return sent, got, counter.n, err
}

// runUntil runs cmd, killing it after limit.
func runUntil(cmd *exec.Cmd, limit time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s timed out after %v", cmd, limit)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return len(b), nil
}

// labLinkStats is the stats part of `show interfaces --json`.
type labLinkStats struct {
	RxFrames uint64                `json:"rx_frames"`
	RxBytes  uint64                `json:"rx_bytes"`
	RxDrops  uint64                `json:"rx_drops"`
	TxFrames uint64                `json:"tx_frames"`
	Impair   *impair.EndpointStats `json:"impair"`
}

func labNICStats(t *testing.T, lab *labnet.Lab) labLinkStats {
	t.Helper()
	out, err := lab.Shell("show interfaces --json")
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []struct {
		Stats labLinkStats `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out), &ifaces); err != nil || len(ifaces) != 1 {
		t.Fatalf("show interfaces --json: %v\n%s", err, out)
	}
	return ifaces[0].Stats
}
