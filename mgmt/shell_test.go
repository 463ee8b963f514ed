package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/synfin/synfin/tcpext"
)

// fakeTCBs is a TCBSource over a fixed list.
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

var sampleTCBs = fakeTCBs{
	{
		ID: 1, State: "LISTEN", Local: "198.18.0.2:7", Remote: "0.0.0.0:0",
		CC: "cubic", RTOms: 1000, History: []tcpext.HistoryItem{},
	},
	{
		ID: 42, State: "ESTABLISHED", Local: "198.18.0.2:7", Remote: "198.18.0.1:40312",
		ISS: 1000, IRS: 2000, SndUna: 1001, SndNxt: 1501, SndWnd: 64240, SndWL1: 2001, SndWL2: 1001,
		RcvNxt: 2101, RcvWnd: 65535, MSS: 1460, SndWScale: 7, RcvWScale: 7, SACKPermitted: true,
		Timestamps: true, TSRecent: 12345, CC: "cubic", Cwnd: 14600, Ssthresh: 65535,
		SRTTus: 1250, RTTVARus: 400, RTOms: 201, Backoff: 1,
		Timers:    []tcpext.TimerInfo{{Name: "retransmit", RemainingMS: 150}, {Name: "keepalive", RemainingMS: 7200000}},
		SendQueue: 500, RecvQueue: 17, OOOQueue: 3,
		Counters: tcpext.Counters{SegsIn: 10, SegsOut: 11, BytesIn: 100, BytesOut: 500, Retransmits: 2, DupSegsIn: 1, RSTsIn: 0, RSTsOut: 0},
		History: []tcpext.HistoryItem{
			{At: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), From: "LISTEN", To: "SYN-RECEIVED", Cause: "SYN"},
			{At: time.Date(2026, 1, 2, 3, 4, 5, 9000, time.UTC), From: "SYN-RECEIVED", To: "ESTABLISHED", Cause: "ACK of SYN"},
		},
	},
}

func run(t *testing.T, sh *Shell, line string) (string, int) {
	t.Helper()
	var b bytes.Buffer
	status := sh.Run(context.Background(), line, &b)
	return b.String(), status
}

func TestHelpListsCommands(t *testing.T) {
	out, status := run(t, NewShell(sampleTCBs), "help")
	if status != StatusOK {
		t.Fatalf("status %d", status)
	}
	for _, want := range []string{
		"help", "show tcb [ID] [--json]", "show config [--json]", "show interfaces [--json]", "show stats [--json]",
		"clear tcb ID", "tcp connect HOST:PORT [--local-port N] [--send TEXT] [--hold DURATION]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

func TestEmptyLine(t *testing.T) {
	if out, status := run(t, NewShell(sampleTCBs), "   "); out != "" || status != StatusOK {
		t.Fatalf("empty line gave %q, %d", out, status)
	}
}

func TestShowTCBTable(t *testing.T) {
	out, status := run(t, NewShell(sampleTCBs), "show tcb")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got:\n%s", out)
	}
	header := strings.Fields(lines[0])
	wantHeader := []string{"ID", "STATE", "LOCAL", "REMOTE", "SEND-Q", "RECV-Q", "CWND", "SRTT", "RTO"}
	if !reflect.DeepEqual(header, wantHeader) {
		t.Errorf("header = %q, want %q", header, wantHeader)
	}
	row := strings.Fields(lines[2])
	wantRow := []string{"42", "ESTABLISHED", "198.18.0.2:7", "198.18.0.1:40312", "500", "17", "14600", "1.25ms", "201ms"}
	if !reflect.DeepEqual(row, wantRow) {
		t.Errorf("row = %q, want %q", row, wantRow)
	}
	// Aligned: every column starts at the same offset on every line.
	for _, col := range []string{"STATE", "REMOTE", "RTO"} {
		at := strings.Index(lines[0], col)
		for _, l := range lines[1:] {
			if at >= len(l) || l[at-1] != ' ' || l[at] == ' ' {
				t.Errorf("column %s not aligned in %q", col, l)
			}
		}
	}
}

func TestShowTCBJSONRoundTrips(t *testing.T) {
	out, status := run(t, NewShell(sampleTCBs), "show tcb --json")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	var got []tcpext.TCBInfo
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if !reflect.DeepEqual(got, []tcpext.TCBInfo(sampleTCBs)) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, sampleTCBs)
	}
}

func TestShowTCBJSONEmptyIsArray(t *testing.T) {
	out, status := run(t, NewShell(fakeTCBs(nil)), "show tcb --json")
	if status != StatusOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("got %q, %d; want [] and 0", out, status)
	}
	out, _ = run(t, NewShell(fakeTCBs(nil)), "show tcb")
	if !strings.HasPrefix(out, "ID") || strings.Count(out, "\n") != 1 {
		t.Fatalf("empty table = %q, want just the header", out)
	}
}

// jsonKeys lists the JSON keys of t's fields, nested structs' keys included.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		keys = append(keys, key)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
			keys = append(keys, jsonKeys(f.Type)...)
		}
	}
	return keys
}

func TestShowOneTCBHasEveryField(t *testing.T) {
	out, status := run(t, NewShell(sampleTCBs), "show tcb 42")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	for _, key := range jsonKeys(reflect.TypeFor[tcpext.TCBInfo]()) {
		if !strings.Contains(out, key+":") {
			t.Errorf("no %q line in:\n%s", key, out)
		}
	}
	for _, want := range []string{
		"state:", "ESTABLISHED",
		"retransmit:", "150ms left",
		"keepalive:", "2h0m0s left",
		"srtt_us:", "1250 (1.25ms)",
		"2026-01-02T03:04:05.000006Z", "LISTEN -> SYN-RECEIVED", "SYN",
		"SYN-RECEIVED -> ESTABLISHED", "ACK of SYN",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	out, _ = run(t, NewShell(sampleTCBs), "show tcb 1")
	for _, want := range []string{"timers:", "none", "history:", "none"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

func TestShowOneTCBJSON(t *testing.T) {
	out, status := run(t, NewShell(sampleTCBs), "show tcb 42 --json")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	var got tcpext.TCBInfo
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if !reflect.DeepEqual(got, sampleTCBs[1]) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, sampleTCBs[1])
	}
	// The flag may come first too.
	if _, status := run(t, NewShell(sampleTCBs), "show tcb --json 42"); status != StatusOK {
		t.Errorf("show tcb --json 42: status %d", status)
	}
}

func TestErrors(t *testing.T) {
	sh := NewShell(sampleTCBs)
	for _, tc := range []struct {
		line   string
		status int
		want   []string
	}{
		{"show tcb 99", StatusError, []string{"error: no TCB with id 99\n"}},
		{"show tcb 99 --json", StatusError, []string{"error: no TCB with id 99\n"}},
		{"show tcb abc", StatusUsage, []string{`error: bad TCB id "abc"`, "usage: show tcb [ID] [--json]"}},
		{"show tcb -1", StatusUsage, []string{`error: unknown flag "-1"`, "usage: show tcb"}},
		{"show tcb 1 2", StatusUsage, []string{`error: unexpected argument "2"`, "usage: show tcb"}},
		{"show tcb --yaml", StatusUsage, []string{`error: unknown flag "--yaml"`, "usage: show tcb"}},
		{"help me", StatusUsage, []string{`error: unexpected argument "me"`, "usage: help"}},
		{"frobnicate", StatusUsage, []string{`error: unknown command "frobnicate"`, "commands:", "show tcb"}},
		{"show", StatusUsage, []string{`error: unknown command "show"`, "commands:"}},
		{"show tcbs", StatusUsage, []string{`error: unknown command "show tcbs"`, "commands:"}},
		{"\x00\xff\xfe garbage", StatusUsage, []string{"error: unknown command", "commands:"}},
		{"show config", StatusError, []string{"error: no configuration available"}},
	} {
		out, status := run(t, sh, tc.line)
		if status != tc.status {
			t.Errorf("%q: status %d, want %d", tc.line, status, tc.status)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.line, w, out)
			}
		}
	}
}

type testConfig struct {
	Board string `json:"board"`
	TCP   struct {
		MSL       string `json:"msl"`
		Keepalive struct {
			Count int `json:"count"`
		} `json:"keepalive"`
	} `json:"tcp"`
}

func TestShowConfig(t *testing.T) {
	var cfg testConfig
	cfg.Board = "rpi4"
	cfg.TCP.MSL = "30s"
	cfg.TCP.Keepalive.Count = 9
	sh := NewShell(sampleTCBs, WithConfig(cfg))

	out, status := run(t, sh, "show config")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	want := "board:                rpi4\ntcp.keepalive.count:  9\ntcp.msl:              30s\n"
	if out != want {
		t.Errorf("show config =\n%s\nwant\n%s", out, want)
	}

	out, status = run(t, sh, "show config --json")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	var got testConfig
	if err := json.Unmarshal([]byte(out), &got); err != nil || got != cfg {
		t.Errorf("show config --json = %s (%v), want %+v", out, err, cfg)
	}
}

func TestShowInterfaces(t *testing.T) {
	ifaces := []Interface{{
		Name: "veth-dut", MAC: "02:00:00:00:00:01", MTU: 1500, Driver: "afpacket", Address: "198.18.0.2/24",
		Stats: struct {
			RxFrames uint64 `json:"rx_frames"`
			TxFrames uint64 `json:"tx_frames"`
		}{RxFrames: 7, TxFrames: 1234567890123},
	}}
	sh := NewShell(sampleTCBs, WithInterfaces(func() []Interface { return ifaces }))
	out, status := run(t, sh, "show interfaces")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	for _, want := range []string{"veth-dut\n", "mac:", "02:00:00:00:00:01", "mtu:", "1500", "stats.rx_frames:", "stats.tx_frames:", "1234567890123"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	out, _ = run(t, sh, "show interfaces --json")
	var got []struct {
		Name  string            `json:"name"`
		Stats map[string]uint64 `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if len(got) != 1 || got[0].Name != "veth-dut" || got[0].Stats["tx_frames"] != 1234567890123 {
		t.Errorf("show interfaces --json = %s", out)
	}

	out, status = run(t, NewShell(sampleTCBs), "show interfaces --json")
	if status != StatusOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("no interfaces: got %q, %d; want []", out, status)
	}
}

// panicky is a TCBSource that blows up.
type panicky struct{ fakeTCBs }

func (panicky) TCBs() []tcpext.TCBInfo { panic("snapshot bug") }

func TestPanicIsContained(t *testing.T) {
	sh := NewShell(panicky{sampleTCBs}, WithLogger(slog.New(slog.DiscardHandler)))
	out, status := run(t, sh, "show tcb")
	if status != StatusError || !strings.Contains(out, "error: internal error: snapshot bug") {
		t.Fatalf("got %q, %d", out, status)
	}
	if _, status := run(t, sh, "show tcb 42"); status != StatusOK {
		t.Fatalf("shell unusable after a panic: status %d", status)
	}
}
