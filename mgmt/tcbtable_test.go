package mgmt

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/synfin/synfin/tcpext"
)

var tableTCBs = fakeTCBs{
	{ID: 1, State: "LISTEN", Local: "*:22", Remote: "*:*"},
	{ID: 2, State: "ESTABLISHED", Local: "198.18.0.2:22", Remote: "198.18.0.1:50000", Cwnd: 30000, SRTTus: 900},
	{ID: 3, State: "TIME-WAIT", Local: "198.18.0.2:7", Remote: "198.18.0.1:40000", Cwnd: 10000},
	{ID: 4, State: "ESTABLISHED", Local: "198.18.0.2:49152", Remote: "198.18.1.9:80", Cwnd: 20000, SRTTus: 5000},
	{ID: 5, State: "SYN-RECEIVED", Local: "198.18.0.2:7", Remote: "198.18.0.1:40001"},
}

func ids(t *testing.T, sh *Shell, line string) []uint64 {
	t.Helper()
	out, status := run(t, sh, line)
	if status != StatusOK {
		t.Fatalf("%s: status %d\n%s", line, status, out)
	}
	var tcbs []tcpext.TCBInfo
	if err := json.Unmarshal([]byte(out), &tcbs); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	var got []uint64
	for _, tcb := range tcbs {
		got = append(got, tcb.ID)
	}
	return got
}

func TestShowTCBFiltersAndSorts(t *testing.T) {
	sh := NewShell(tableTCBs)
	for _, tc := range []struct {
		line string
		want []uint64
	}{
		{"show tcb --json", []uint64{1, 2, 3, 4, 5}},
		{"show tcb --json --state established", []uint64{2, 4}},
		{"show tcb --json --state=TIME-WAIT,syn-received", []uint64{3, 5}},
		{"show tcb --json --port 22", []uint64{1, 2}},
		{"show tcb --json --port 80", []uint64{4}},
		{"show tcb --json --remote 198.18.0.1", []uint64{2, 3, 5}},
		{"show tcb --json --remote 198.18.0.1:40000", []uint64{3}},
		{"show tcb --json --remote 198.18.1.0/24", []uint64{4}},
		{"show tcb --json --state established --remote 198.18.0.0/16 --port 22", []uint64{2}},
		{"show tcb --json --sort cwnd", []uint64{1, 5, 3, 4, 2}},
		{"show tcb --json --sort cwnd --reverse", []uint64{2, 4, 3, 5, 1}},
		{"show tcb --json --sort state", []uint64{1, 5, 2, 4, 3}},
		{"show tcb --json --sort remote", []uint64{1, 3, 5, 2, 4}},
		{"show tcb --json --sort srtt --state established", []uint64{2, 4}},
		{"show tcb --json --state closed", nil},
	} {
		if got := ids(t, sh, tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("%s: ids %v, want %v", tc.line, got, tc.want)
		}
	}
	out, _ := run(t, sh, "show tcb --state listen")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "*:22") {
		t.Errorf("filtered table:\n%s", out)
	}
}

func TestShowTCBFilterErrors(t *testing.T) {
	sh := NewShell(tableTCBs)
	for _, tc := range []struct{ line, want string }{
		{"show tcb --state bogus", `unknown state "bogus"`},
		{"show tcb --port 0", `bad --port "0"`},
		{"show tcb --port http", `bad --port "http"`},
		{"show tcb --remote nowhere", `bad --remote "nowhere"`},
		{"show tcb --sort color", `unknown sort key "color"`},
		{"show tcb --sort", "flag --sort needs a value"},
		{"show tcb 2 --state established", "filters and sorting apply to the table"},
	} {
		out, status := run(t, sh, tc.line)
		if status != StatusUsage || !strings.Contains(out, tc.want) || !strings.Contains(out, "usage: show tcb") {
			t.Errorf("%s: status %d, %q; want usage and %q", tc.line, status, out, tc.want)
		}
	}
}

func TestComplete(t *testing.T) {
	sh := NewShell(tableTCBs)
	for _, tc := range []struct {
		line, cur string
		want      []string
	}{
		{"", "", []string{"clear", "help", "set", "show", "tcb", "tcp"}},
		{"sh", "sh", []string{"show"}},
		{"show ", "", []string{"config", "interfaces", "stats", "system", "tcb"}},
		{"show t", "t", []string{"tcb"}},
		{"show tcb --s", "--s", []string{"--sort", "--state"}},
		{"show tcb --state ", "", []string{"close-wait", "closed", "closing", "established", "fin-wait-1", "fin-wait-2", "last-ack", "listen", "syn-received", "syn-sent", "time-wait"}},
		{"show tcb --sort r", "r", []string{"recv-q", "remote", "rto"}},
		{"tcb dump ", "", []string{"--pcap", "1", "2", "3", "4", "5", "all"}},
		{"clear tcb 4", "4", []string{"4"}},
		{"help ", "", nil},
		{"bogus ", "", nil},
	} {
		cur, got := sh.complete(tc.line)
		// Other commands may join the table; only those named here count.
		if tc.line == "" {
			got = slices.DeleteFunc(got, func(w string) bool { return !slices.Contains(tc.want, w) })
		}
		if cur != tc.cur || !slices.Equal(got, tc.want) {
			t.Errorf("complete(%q) = %q, %q; want %q, %q", tc.line, cur, got, tc.cur, tc.want)
		}
	}
	if p := commonPrefix([]string{"--sort", "--state"}); p != "--s" {
		t.Errorf("commonPrefix = %q", p)
	}
}
