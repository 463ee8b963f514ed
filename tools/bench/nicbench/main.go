//go:build linux

// Command nicbench measures the firmware's NIC drivers over the lab's veth
// pair against a Linux peer, next to Linux talking to Linux over the same
// veth, and prints a Markdown table.
//
// For each setup the peer (Linux in synfin-peer) first pings the DUT 50
// times (the average round trip shows how long a lone frame waits in the
// driver), then sends to the discard service for -duration, then reads
// from chargen for -duration.
// Goodput is application bytes per second: for discard, the bytes written
// until the server has read them all and closed (the client half-closes
// and waits for EOF); for chargen, the bytes read. Frames per second are
// the DUT side's count of frames received (discard) or sent (chargen): the
// firmware's driver counters, or the kernel's for veth-dut in the
// Linux↔Linux row. A veth hands over TSO super-segments whole, so a frame
// may carry up to 64 KiB.
//
// Usage (root; builds the firmware unless -firmware is given):
//
//	go run ./tools/bench/nicbench -duration 5s
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/synfin/synfin/tools/lab/labnet"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each direction runs")
	firmware := flag.String("firmware", "", "firmware binary (default: build ./firmware)")
	drivers := flag.String("drivers", "afpacket,afxdp:native,afxdp:generic", "comma-separated NIC drivers to measure, AF_XDP as afxdp:MODE")
	flag.Parse()
	if err := run(*duration, *firmware, strings.Split(*drivers, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "nicbench:", err)
		os.Exit(1)
	}
}

// result is one setup's measurement.
type result struct {
	setup                      string
	discardBps, chargenBps     float64 // goodput, bytes per second
	discardFrames, chargenFrms float64 // frames per second at the DUT
	rtt                        string  // ping's average round trip from the peer
}

func run(d time.Duration, firmware string, drivers []string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: builds network namespaces")
	}
	if firmware == "" {
		dir, err := os.MkdirTemp("", "nicbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		firmware = filepath.Join(dir, "firmware")
		if out, err := exec.Command("go", "build", "-o", firmware, "./firmware").CombinedOutput(); err != nil {
			return fmt.Errorf("build firmware: %v\n%s", err, out)
		}
	}
	var results []result
	for _, drv := range drivers {
		driver, mode, _ := strings.Cut(drv, ":")
		r, err := benchFirmware(firmware, driver, mode, d)
		if err != nil {
			return fmt.Errorf("%s: %w", drv, err)
		}
		results = append(results, r)
	}
	r, err := benchLinux(d)
	if err != nil {
		return fmt.Errorf("linux: %w", err)
	}
	results = append(results, r)
	printTable(os.Stdout, results, d)
	return nil
}

// benchFirmware runs the firmware with driver (and XDP mode) in the lab
// and measures it.
func benchFirmware(firmware, driver, xdpMode string, d time.Duration) (result, error) {
	env := []string{"SYNFIN_NIC_DRIVER=" + driver}
	if xdpMode != "" {
		env = append(env, "SYNFIN_NIC_XDP_MODE="+xdpMode)
	}
	lab, err := labnet.Up(labnet.Options{FirmwarePath: firmware, Env: env})
	if err != nil {
		return result{}, err
	}
	defer lab.Down()
	stats := func() (frameCounts, error) {
		out, err := lab.Shell("show interfaces --json")
		if err != nil {
			return frameCounts{}, err
		}
		var ifcs []struct {
			Driver string `json:"driver"`
			Stats  struct {
				Mode     string `json:"mode"`
				RxFrames uint64 `json:"rx_frames"`
				TxFrames uint64 `json:"tx_frames"`
			} `json:"stats"`
		}
		if err := json.Unmarshal([]byte(out), &ifcs); err != nil || len(ifcs) != 1 {
			return frameCounts{}, fmt.Errorf("show interfaces --json: %v: %s", err, out)
		}
		s := ifcs[0].Stats
		return frameCounts{rx: s.RxFrames, tx: s.TxFrames, label: ifcs[0].Driver + modeLabel(s.Mode)}, nil
	}
	return measure(d, stats)
}

func modeLabel(mode string) string {
	if mode == "" {
		return ""
	}
	return " (" + mode + " XDP)"
}

// benchLinux gives veth-dut a kernel address and serves discard and
// chargen from Linux's own TCP in the DUT namespace.
func benchLinux(d time.Duration) (result, error) {
	lab, err := labnet.Up(labnet.Options{})
	if err != nil {
		return result{}, err
	}
	defer lab.Down()
	for _, args := range [][]string{
		{"-n", labnet.DUTNamespace, "addr", "add", fmt.Sprintf("%s/%d", labnet.DUTAddress, labnet.PrefixLen), "dev", labnet.DUTInterface},
		{"-n", labnet.DUTNamespace, "link", "set", labnet.DUTInterface, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return result{}, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	var discard, chargen net.Listener
	if err := labnet.InNamespace(labnet.DUTNamespace, func() (err error) {
		if discard, err = net.Listen("tcp", labnet.DUTAddress+":9"); err != nil {
			return err
		}
		chargen, err = net.Listen("tcp", labnet.DUTAddress+":19")
		return err
	}); err != nil {
		return result{}, err
	}
	defer discard.Close()
	defer chargen.Close()
	go serve(discard, func(c net.Conn) { io.Copy(io.Discard, c) })
	go serve(chargen, func(c net.Conn) {
		go io.Copy(io.Discard, c)
		line := bytes.Repeat(chargenLine, 64)
		for {
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	})
	stats := func() (frameCounts, error) {
		out, err := exec.Command("ip", "-n", labnet.DUTNamespace, "-s", "-j", "link", "show", labnet.DUTInterface).Output()
		if err != nil {
			return frameCounts{}, err
		}
		var links []struct {
			Stats64 struct {
				Rx struct{ Packets uint64 } `json:"rx"`
				Tx struct{ Packets uint64 } `json:"tx"`
			} `json:"stats64"`
		}
		if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
			return frameCounts{}, fmt.Errorf("ip -s -j link: %v: %s", err, out)
		}
		return frameCounts{rx: links[0].Stats64.Rx.Packets, tx: links[0].Stats64.Tx.Packets, label: "Linux ↔ Linux"}, nil
	}
	return measure(d, stats)
}

// chargenLine is one line of a chargen-like stream for the Linux server.
var chargenLine = []byte("!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n")

func serve(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// frameCounts are the DUT's frame counters at one moment.
type frameCounts struct {
	rx, tx uint64
	label  string
}

// measure runs discard then chargen from the peer namespace against the
// DUT address, reading the DUT's frame counters around each.
func measure(d time.Duration, stats func() (frameCounts, error)) (result, error) {
	var r result
	before, err := stats()
	if err != nil {
		return r, err
	}
	r.setup = before.label
	if r.rtt, err = pingRTT(); err != nil {
		return r, err
	}
	bytes, elapsed, err := sendDiscard(d)
	if err != nil {
		return r, fmt.Errorf("discard: %w", err)
	}
	mid, err := stats()
	if err != nil {
		return r, err
	}
	r.discardBps = float64(bytes) / elapsed.Seconds()
	r.discardFrames = float64(mid.rx-before.rx) / elapsed.Seconds()

	bytes, elapsed, err = readChargen(d)
	if err != nil {
		return r, fmt.Errorf("chargen: %w", err)
	}
	after, err := stats()
	if err != nil {
		return r, err
	}
	r.chargenBps = float64(bytes) / elapsed.Seconds()
	r.chargenFrms = float64(after.tx-mid.tx) / elapsed.Seconds()
	return r, nil
}

// pingRTT returns the average round trip of 50 pings from the peer, in
// milliseconds as ping prints it.
func pingRTT() (string, error) {
	out, err := exec.Command("ip", "netns", "exec", labnet.PeerNamespace, "ping", "-q", "-c", "50", "-i", "0.02", labnet.DUTAddress).Output()
	if err != nil {
		return "", fmt.Errorf("ping: %w", err)
	}
	// rtt min/avg/max/mdev = 0.177/0.214/0.541/0.077 ms
	_, stats, ok := strings.Cut(string(out), " = ")
	fields := strings.Split(stats, "/")
	if !ok || len(fields) < 2 {
		return "", fmt.Errorf("ping printed %q", out)
	}
	return fields[1] + " ms", nil
}

// dialFromPeer connects to the DUT's port from the peer namespace.
func dialFromPeer(port int) (*net.TCPConn, error) {
	var c net.Conn
	err := labnet.InNamespace(labnet.PeerNamespace, func() (err error) {
		c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", labnet.DUTAddress, port), 5*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// sendDiscard writes to discard for d, half-closes and waits for the
// server's close, which comes once it has read everything.
func sendDiscard(d time.Duration) (uint64, time.Duration, error) {
	c, err := dialFromPeer(9)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	var n uint64
	start := time.Now()
	for time.Since(start) < d {
		w, err := c.Write(buf)
		n += uint64(w)
		if err != nil {
			return n, 0, err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return n, 0, err
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return n, 0, fmt.Errorf("waiting for the server to finish: %w", err)
	}
	return n, time.Since(start), nil
}

// readChargen reads from chargen for d.
func readChargen(d time.Duration) (uint64, time.Duration, error) {
	c, err := dialFromPeer(19)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	var n uint64
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	for {
		r, err := c.Read(buf)
		n += uint64(r)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return n, time.Since(start), nil
			}
			return n, 0, err
		}
	}
}

func printTable(w io.Writer, rs []result, d time.Duration) {
	fmt.Fprintf(w, "%d s per direction; goodput in Mbit/s of application data, frames/s as the DUT side counts them\n\n", int(d.Seconds()))
	fmt.Fprintln(w, "| setup | peer → discard | frames/s in | chargen → peer | frames/s out | ping RTT |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %.0f Mbit/s | %.0f | %.0f Mbit/s | %.0f | %s |\n",
			r.setup, r.discardBps*8/1e6, r.discardFrames, r.chargenBps*8/1e6, r.chargenFrms, r.rtt)
	}
}
