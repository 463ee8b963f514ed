package mgmt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// fakeCapture records what the shell asks of it.
type fakeCapture struct {
	file, filter string
	running      bool
}

func (f *fakeCapture) StartCapture(file, filter string) (string, error) {
	if f.running {
		return "", errors.New("capture: one is already running")
	}
	if file == "" {
		file = "/tmp/default.pcap"
	}
	f.file, f.filter, f.running = file, filter, true
	return file, nil
}

func (f *fakeCapture) StopCapture() (CaptureResult, error) {
	if !f.running {
		return CaptureResult{}, errors.New("capture: none is running")
	}
	f.running = false
	return CaptureResult{File: f.file, Filter: f.filter, Frames: 12, Bytes: 3456}, nil
}

func TestCaptureCommands(t *testing.T) {
	fc := &fakeCapture{}
	sh := NewShell(sampleTCBs, WithCapture(fc))

	out, status := run(t, sh, "capture start --file /tmp/x.pcap --filter 198.18.0.1:7")
	if status != StatusOK || out != "capturing 198.18.0.1:7 to /tmp/x.pcap\n" {
		t.Fatalf("capture start: %d %q", status, out)
	}
	if fc.file != "/tmp/x.pcap" || fc.filter != "198.18.0.1:7" {
		t.Fatalf("capturer got file %q filter %q", fc.file, fc.filter)
	}
	if out, status := run(t, sh, "capture start"); status != StatusError || !strings.Contains(out, "already running") {
		t.Fatalf("second capture start: %d %q", status, out)
	}
	out, status = run(t, sh, "capture stop --json")
	var res CaptureResult
	if status != StatusOK || json.Unmarshal([]byte(out), &res) != nil || res.Frames != 12 || res.File != "/tmp/x.pcap" {
		t.Fatalf("capture stop --json: %d %q", status, out)
	}
	if out, status := run(t, sh, "capture start"); status != StatusOK || !strings.Contains(out, "all frames to /tmp/default.pcap") {
		t.Fatalf("capture start without flags: %d %q", status, out)
	}
	if out, status := run(t, sh, "capture stop"); status != StatusOK || out != "capture stopped: 12 frames, 3456 bytes in /tmp/default.pcap\n" {
		t.Fatalf("capture stop: %d %q", status, out)
	}
	if out, status := run(t, sh, "capture stop"); status != StatusError || !strings.Contains(out, "none is running") {
		t.Fatalf("capture stop with none running: %d %q", status, out)
	}
	if _, status := run(t, sh, "capture start now"); status != StatusUsage {
		t.Fatalf("capture start with an argument: status %d, want usage", status)
	}
	if out, status := run(t, NewShell(sampleTCBs), "capture start"); status != StatusError || !strings.Contains(out, "not available") {
		t.Fatalf("capture without a capturer: %d %q", status, out)
	}
}
