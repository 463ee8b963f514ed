package mgmt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/synfin/synfin/tcpext"
)

func TestTCBDumpJSON(t *testing.T) {
	sh := NewShell(sampleTCBs, WithDumps(sampleDumps))
	out, status := run(t, sh, "tcb dump 7")
	if status != StatusOK {
		t.Fatalf("status %d:\n%s", status, out)
	}
	var d tcpext.TCBDump
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("not a dump: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(d, resetDump) {
		t.Errorf("dump changed on its way through JSON:\n got %+v\nwant %+v", d, resetDump)
	}

	out, status = run(t, sh, "tcb dump all")
	var all []tcpext.TCBDump
	if status != StatusOK || json.Unmarshal([]byte(out), &all) != nil || len(all) != 2 || all[1].TCB.ID != 42 {
		t.Errorf("tcb dump all: status %d\n%s", status, out)
	}
	out, _ = run(t, NewShell(sampleTCBs, WithDumps(fakeDumps(nil))), "tcb dump all")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("tcb dump all with no TCBs = %q, want []", out)
	}
}

func TestTCBDumpErrors(t *testing.T) {
	sh := NewShell(sampleTCBs, WithDumps(sampleDumps))
	for _, tc := range []struct {
		line   string
		status int
		want   string
	}{
		{"tcb dump", StatusUsage, "usage: tcb dump ID|all [--pcap]"},
		{"tcb dump 1 2", StatusUsage, "want one TCB id"},
		{"tcb dump x", StatusUsage, `bad TCB id "x"`},
		{"tcb dump 99", StatusError, "no TCB with id 99, live or recently closed"},
		{"tcb dump 7 --json", StatusUsage, `unknown flag "--json"`},
	} {
		out, status := run(t, sh, tc.line)
		if status != tc.status || !strings.Contains(out, tc.want) {
			t.Errorf("%s: status %d, output %q; want %d and %q", tc.line, status, out, tc.status, tc.want)
		}
	}
	if out, status := run(t, NewShell(sampleTCBs), "tcb dump 7"); status != StatusError || !strings.Contains(out, "no flight recorder") {
		t.Errorf("without a recorder: status %d, %q", status, out)
	}
	var b bytes.Buffer
	term := terminalOutput{newFlushWriter(&b)}
	if status := sh.Run(t.Context(), "tcb dump 7 --pcap", term); status != StatusError {
		t.Errorf("pcap to a terminal: status %d", status)
	}
	term.Flush()
	if !strings.Contains(b.String(), "pcap is binary") {
		t.Errorf("pcap to a terminal said %q", b.String())
	}
}

// pcapRecord is one packet read back from a pcap file.
type pcapRecord struct {
	data            []byte
	capLen, origLen int
}

func readPcap(t *testing.T, b []byte) []pcapRecord {
	t.Helper()
	le := binary.LittleEndian
	if len(b) < 24 || le.Uint32(b) != pcapMagic || le.Uint32(b[20:]) != pcapLinkRaw {
		t.Fatalf("bad pcap header % x", b[:min(len(b), 24)])
	}
	var recs []pcapRecord
	for b = b[24:]; len(b) > 0; {
		if len(b) < 16 {
			t.Fatalf("truncated record header")
		}
		capLen, origLen := int(le.Uint32(b[8:])), int(le.Uint32(b[12:]))
		if len(b) < 16+capLen {
			t.Fatalf("truncated record")
		}
		recs = append(recs, pcapRecord{data: b[16 : 16+capLen], capLen: capLen, origLen: origLen})
		b = b[16+capLen:]
	}
	return recs
}

func TestTCBDumpPcap(t *testing.T) {
	sh := NewShell(sampleTCBs, WithDumps(sampleDumps))
	out, status := run(t, sh, "tcb dump 7 --pcap")
	if status != StatusOK {
		t.Fatalf("status %d: %s", status, out)
	}
	recs := readPcap(t, []byte(out))
	if len(recs) != 6 {
		t.Fatalf("%d packets, want the 6 recorded segments", len(recs))
	}
	be := binary.BigEndian
	syn := recs[0].data
	if syn[0] != 0x45 || syn[9] != 6 || ipv4Checksum(syn[:20]) != 0 {
		t.Errorf("SYN's IPv4 header % x", syn[:20])
	}
	if src, dst := syn[12:16], syn[16:20]; !bytes.Equal(src, []byte{198, 18, 0, 1}) || !bytes.Equal(dst, []byte{198, 18, 0, 2}) {
		t.Errorf("SYN from %v to %v, want the peer to us", src, dst)
	}
	tcp := syn[20:]
	if be.Uint16(tcp) != 40000 || be.Uint16(tcp[2:]) != 7 || be.Uint32(tcp[4:]) != 9000 || tcp[13] != 0x02 {
		t.Errorf("SYN's TCP header % x", tcp[:20])
	}
	if hl := int(tcp[12]>>4) * 4; hl <= 20 || !bytes.Contains(tcp[20:hl], []byte{2, 4, 0x05, 0xb4}) {
		t.Errorf("SYN's options % x lack MSS 1460", tcp[20:])
	}
	data := recs[3]
	if data.origLen != data.capLen+1000 || int(be.Uint16(data.data[2:])) != data.origLen {
		t.Errorf("data segment: caplen %d, len %d, IP total %d; want the 1000 payload bytes counted but not captured",
			data.capLen, data.origLen, be.Uint16(data.data[2:]))
	}
	if rst := recs[5].data[20:]; rst[13] != 0x04 {
		t.Errorf("last segment's flags %#x, want RST", rst[13])
	}
}

// TestTCBDumpPcapReadsInTshark checks the file with a real reader, when
// one is installed (make deps installs tshark).
func TestTCBDumpPcapReadsInTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed: run `make deps`")
	}
	out, status := run(t, NewShell(sampleTCBs, WithDumps(sampleDumps)), "tcb dump 7 --pcap")
	if status != StatusOK {
		t.Fatalf("status %d", status)
	}
	path := filepath.Join(t.TempDir(), "7.pcap")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := tsharkFlags(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"SYN", "SYN,ACK", "ACK", "PSH,ACK", "PSH,ACK", "RST"}
	if !slicesEqual(got, want) {
		t.Errorf("tshark sees flags %q, want %q", got, want)
	}
}

// tsharkFlags lists the TCP flags of each packet of a pcap file as tshark
// reads them, e.g. "SYN,ACK".
func tsharkFlags(path string) ([]string, error) {
	out, err := exec.Command("tshark", "-n", "-r", path, "-T", "fields", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
		"-e", "tcp.flags.push", "-e", "tcp.flags.reset", "-e", "tcp.flags.fin").Output()
	if err != nil {
		return nil, err
	}
	var flags []string
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		var names []string
		for i, v := range strings.Split(strings.TrimSpace(line), "\t") {
			if v == "1" || v == "True" {
				names = append(names, []string{"SYN", "ACK", "PSH", "RST", "FIN"}[i])
			}
		}
		if slicesEqual(names, []string{"ACK", "PSH"}) {
			names = []string{"PSH", "ACK"}
		}
		flags = append(flags, strings.Join(names, ","))
	}
	return flags, nil
}

func slicesEqual(a, b []string) bool { return reflect.DeepEqual(a, b) }

func TestShowTCBRecentEvents(t *testing.T) {
	// A live TCB with the closed one's events, to see them shown.
	live := resetDump
	live.Closed = false
	sh := NewShell(fakeTCBs{live.TCB}, WithDumps(fakeDumps{live}))
	out, status := run(t, sh, "show tcb 7")
	if status != StatusOK {
		t.Fatalf("status %d\n%s", status, out)
	}
	for _, want := range []string{
		"recent events (11 of 11; tcb dump 7 has them all)",
		"05:06:07.000000  <-  SYN      seq=0 win=64240 mss=1460 ws=7 sack_perm ts=1/0",
		"->  SYN|ACK  seq=0 ack=1 win=65535",
		"->  ACK|PSH  seq=1:1001 (1000) ack=1 win=2048 ts=278/2 cwnd=1460  RETRANSMIT",
		"cc RTO: cwnd=1460 ssthresh=2920", "timer retransmit fired",
		"<-  RST      seq=1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	out, _ = run(t, NewShell(sampleTCBs, WithDumps(sampleDumps)), "show tcb 42")
	if !strings.Contains(out, "recent events:  none recorded") {
		t.Errorf("a live TCB without events:\n%s", out)
	}
}

func TestShowClosedTCBPointsToItsDump(t *testing.T) {
	// The table holds live TCBs only: scripts wait on "no TCB" for a
	// connection to be gone.
	for _, line := range []string{"show tcb 7", "show tcb 7 --json"} {
		out, status := run(t, NewShell(sampleTCBs, WithDumps(sampleDumps)), line)
		if status != StatusError || !strings.Contains(out, "error: no TCB with id 7: it closed at 2026-03-04T05:06:08.000000Z; tcb dump 7 has") {
			t.Errorf("%s: status %d\n%s", line, status, out)
		}
	}
}

func TestEventTextFlagsZeroWindow(t *testing.T) {
	tcb := tcpext.TCBInfo{ISS: 100, IRS: 200, SndWScale: 3}
	got := EventText(tcpext.Event{Kind: tcpext.EventSegIn, Seg: &tcpext.SegEvent{Seq: 201, Ack: 150, Flags: "ACK", Window: 0, WScale: -1}}, tcb)
	if got != "<-  ACK      seq=1 ack=50 win=0  ZERO WINDOW" {
		t.Errorf("zero window: %q", got)
	}
	got = EventText(tcpext.Event{Kind: tcpext.EventSegIn, Seg: &tcpext.SegEvent{Seq: 201, Ack: 150, Flags: "ACK", Window: 10, WScale: -1,
		SACK: [][2]uint32{{160, 170}}}}, tcb)
	if got != "<-  ACK      seq=1 ack=50 win=80 sack=60-70" {
		t.Errorf("scaled window and SACK: %q", got)
	}
}
