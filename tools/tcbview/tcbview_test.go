package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synfin/synfin/tcpext"
)

// lossyDump makes the dump of a transfer from the firmware that loses two
// segments (SACK, fast retransmit), later loses a retransmission (RTO),
// and stalls on a zero window for half a second.
func lossyDump() (d tcpext.TCBDump, retransmits int) {
	const iss, irs, mss = 1000, 5000, 1000
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var ev []tcpext.Event
	out := func(ms int, seq uint32, flags string, n int, retx bool, cwnd uint32) {
		ev = append(ev, tcpext.Event{At: at(ms), Kind: tcpext.EventSegOut, Cwnd: cwnd,
			Seg: &tcpext.SegEvent{Seq: seq, Ack: irs + 1, Flags: flags, Window: 1000, Len: n, Retransmit: retx, WScale: -1}})
		if retx {
			retransmits++
		}
	}
	in := func(ms int, ack uint32, win uint16, sack ...[2]uint32) {
		ev = append(ev, tcpext.Event{At: at(ms), Kind: tcpext.EventSegIn,
			Seg: &tcpext.SegEvent{Seq: irs + 1, Ack: ack, Flags: "ACK", Window: win, WScale: -1, SACK: sack}})
	}
	ev = append(ev, tcpext.Event{At: at(0), Kind: tcpext.EventState, From: "CLOSED", To: "SYN-SENT", Cause: "connect"})
	out(0, iss, "SYN", 0, false, 10*mss)
	ev = append(ev, tcpext.Event{At: at(1), Kind: tcpext.EventSegIn, Seg: &tcpext.SegEvent{Seq: irs, Ack: iss + 1, Flags: "SYN|ACK", Window: 65535, MSS: mss, WScale: 2}})
	ev = append(ev, tcpext.Event{At: at(1), Kind: tcpext.EventState, From: "SYN-SENT", To: "ESTABLISHED", Cause: "SYN,ACK"})
	seq := uint32(iss + 1)
	for i := range 20 {
		out(2+i, seq+uint32(i*mss), "ACK", mss, false, 10*mss)
	}
	// Segments 4 and 5 were lost: the ACKs stop at 4 and SACK the rest.
	for i := 6; i < 20; i++ {
		in(10+i, seq+4*mss, 16000, [2]uint32{seq + 6*mss, seq + uint32(i+1)*mss})
	}
	ev = append(ev, tcpext.Event{At: at(27), Kind: tcpext.EventCC, Cause: "fast-retransmit", Cwnd: 5 * mss, Ssthresh: 5 * mss})
	out(27, seq+4*mss, "ACK", mss, true, 5*mss)
	out(28, seq+5*mss, "ACK", mss, true, 5*mss)
	// The second retransmission is lost too: the RTO resends it.
	in(40, seq+5*mss, 16000, [2]uint32{seq + 6*mss, seq + 20*mss})
	ev = append(ev, tcpext.Event{At: at(300), Kind: tcpext.EventTimer, Timer: "retransmit"})
	ev = append(ev, tcpext.Event{At: at(300), Kind: tcpext.EventCC, Cause: "rto", Cwnd: mss, Ssthresh: 2 * mss})
	out(300, seq+5*mss, "ACK", mss, true, mss)
	// The receiver's application stops reading: a zero window, probed.
	in(310, seq+20*mss, 0)
	ev = append(ev, tcpext.Event{At: at(510), Kind: tcpext.EventTimer, Timer: "persist"})
	out(510, seq+20*mss, "ACK", 1, false, mss)
	in(511, seq+20*mss, 0)
	in(810, seq+20*mss, 8000)
	for i := range 5 {
		out(811+i, seq+uint32((20+i)*mss), "ACK|PSH", mss, false, 2*mss)
	}
	in(830, seq+25*mss, 16000)
	ev = append(ev, tcpext.Event{At: at(900), Kind: tcpext.EventSegIn, Seg: &tcpext.SegEvent{Seq: irs + 1, Flags: "RST", WScale: -1}})
	ev = append(ev, tcpext.Event{At: at(900), Kind: tcpext.EventState, From: "ESTABLISHED", To: "CLOSED", Cause: "RST"})
	return tcpext.TCBDump{
		TCB: tcpext.TCBInfo{ID: 9, State: "CLOSED", Local: "198.18.0.2:50000", Remote: "198.18.0.1:9",
			ISS: iss, IRS: irs, SndWScale: 2, RcvWScale: 5},
		Closed: true, ClosedAt: at(900), Events: ev,
	}, retransmits
}

func writeDump(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func render(t *testing.T, args ...string) (svg string, img image.Image, timeline string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("tcbview %v: %v\n%s", args, err, stderr.String())
	}
	path := args[len(args)-1]
	prefix := strings.TrimSuffix(path, ".json")
	for i, a := range args {
		if a == "-o" {
			prefix = args[i+1]
		}
	}
	b, err := os.ReadFile(prefix + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(prefix + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err = png.Decode(f)
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	return string(b), img, stdout.String()
}

func TestRenderLossyTransfer(t *testing.T) {
	d, retransmits := lossyDump()
	svg, img, timeline := render(t, writeDump(t, d))

	if got := strings.Count(svg, `class="retransmit"`); got != retransmits {
		t.Errorf("the SVG marks %d retransmissions, the dump has %d", got, retransmits)
	}
	if got := strings.Count(svg, `class="retransmit-marker"`); got != retransmits {
		t.Errorf("%d retransmission markers, want %d", got, retransmits)
	}
	for class, want := range map[string]int{"zero-window": 1, "rto": 1, "fast-retransmit": 1, "sack": 15, "segment": 27, "ack": 1, "window": 1, "cwnd": 1} {
		if got := strings.Count(svg, `class="`+class+`"`); got != want {
			t.Errorf("%d elements of class %s, want %d", got, class, want)
		}
	}
	if !strings.Contains(svg, "zero window 500ms") {
		t.Error("the zero-window stall is not labelled with its length")
	}
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
	}

	b := img.Bounds()
	if b.Dx() != canvasW || b.Dy() != canvasH {
		t.Fatalf("PNG is %v", b)
	}
	colours := map[[3]uint32]bool{}
	var ink, red int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r>>8 < 240 || g>>8 < 240 || bl>>8 < 240 {
				ink++
			}
			if r>>8 > 200 && g>>8 < 60 && bl>>8 < 60 {
				red++
			}
		}
	}
	if frac := float64(ink) / float64(b.Dx()*b.Dy()); frac < 0.02 || len(colours) < 20 {
		t.Errorf("the PNG looks empty: %.1f%% ink, %d colours", 100*frac, len(colours))
	}
	if red < 50 {
		t.Errorf("only %d red pixels: the retransmissions do not show in the PNG", red)
	}

	for _, want := range []string{"TCB 9", "RETRANSMIT", "ZERO WINDOW", "cc RTO", "cc FAST-RETRANSMIT", "timer persist fired",
		"state ESTABLISHED -> CLOSED (RST)", "sack=6001-20001", "3 retransmitted, 1 RTOs, 1 fast retransmits, 1 zero-window stalls (longest 500ms)"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("no %q in the timeline:\n%s", want, timeline)
		}
	}
}

func TestRenderIncomingData(t *testing.T) {
	// The peer sends; its second segment arrives twice.
	t0 := time.Unix(1000, 0)
	seg := func(ms int, kind string, seq, ack uint32, n int, win uint16) tcpext.Event {
		return tcpext.Event{At: t0.Add(time.Duration(ms) * time.Millisecond), Kind: kind,
			Seg: &tcpext.SegEvent{Seq: seq, Ack: ack, Flags: "ACK", Len: n, Window: win, WScale: -1}}
	}
	d := tcpext.TCBDump{TCB: tcpext.TCBInfo{ID: 3, Local: "198.18.0.2:9", Remote: "198.18.0.1:4000", IRS: 100},
		Events: []tcpext.Event{
			seg(0, tcpext.EventSegIn, 101, 1, 1000, 500), seg(1, tcpext.EventSegIn, 1101, 1, 1000, 500),
			seg(2, tcpext.EventSegOut, 1, 2101, 0, 100), seg(200, tcpext.EventSegIn, 1101, 1, 1000, 500),
			seg(201, tcpext.EventSegOut, 1, 2101, 0, 100),
		}}
	svg, _, timeline := render(t, writeDump(t, []tcpext.TCBDump{d}))
	if got := strings.Count(svg, `class="retransmit"`); got != 1 {
		t.Errorf("%d retransmissions marked in data received, want 1", got)
	}
	if !strings.Contains(svg, "data peer -&gt; firmware") || strings.Contains(svg, `class="cwnd"`) {
		t.Error("incoming data should be drawn as such, without our cwnd")
	}
	if !strings.Contains(timeline, "seq=1001:2001 (1000)") || !strings.Contains(timeline, "ack=2001 win=100") {
		t.Errorf("timeline:\n%s", timeline)
	}
}

func TestPickAndErrors(t *testing.T) {
	d, _ := lossyDump()
	small := tcpext.TCBDump{TCB: tcpext.TCBInfo{ID: 1}, Events: []tcpext.Event{}}
	path := writeDump(t, []tcpext.TCBDump{small, d})
	_, _, timeline := render(t, path)
	if !strings.HasPrefix(timeline, "TCB 9 ") {
		t.Errorf("without -id, want the TCB that moved the most data:\n%s", timeline[:min(len(timeline), 200)])
	}
	_, _, timeline = render(t, "-id", "1", "-o", filepath.Join(t.TempDir(), "one"), path)
	if !strings.HasPrefix(timeline, "TCB 1 ") {
		t.Errorf("-id 1 drew:\n%s", timeline)
	}
	var out, errOut bytes.Buffer
	for _, args := range [][]string{
		{"-id", "5", path}, {}, {"-dir", "sideways", path}, {filepath.Join(t.TempDir(), "missing.json")},
		{writeDump(t, "not a dump")}, {writeDump(t, []tcpext.TCBDump{})},
	} {
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("tcbview %v succeeded", args)
		}
	}
}
