package nic

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCaptureFilter(t *testing.T) {
	host := netip.MustParseAddr("198.18.0.1")
	for _, tc := range []struct {
		in   string
		want CaptureFilter
	}{
		{"", CaptureFilter{}},
		{"198.18.0.1", CaptureFilter{Host: host}},
		{"7", CaptureFilter{Port: 7}},
		{":7", CaptureFilter{Port: 7}},
		{"198.18.0.1:7", CaptureFilter{Host: host, Port: 7}},
	} {
		got, err := ParseCaptureFilter(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCaptureFilter(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if err == nil && strings.TrimPrefix(tc.in, ":") != got.String() {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
	for _, bad := range []string{"host", "198.18.0.1:http", "0", "70000", "::1", "198.18.0.1:0"} {
		if _, err := ParseCaptureFilter(bad); err == nil {
			t.Errorf("ParseCaptureFilter(%q) accepted", bad)
		}
	}
}

// ipv4Frame builds an ethernet frame with an IPv4 header and the first
// bytes of a TCP or UDP header (ports only).
func ipv4Frame(proto byte, src, dst string, sport, dport uint16) []byte {
	f := make([]byte, 14+20+8)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	ip[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	return f
}

func arpFrame(sender, target string) []byte {
	f := make([]byte, 14+28)
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	s, d := netip.MustParseAddr(sender).As4(), netip.MustParseAddr(target).As4()
	copy(f[14+14:], s[:])
	copy(f[14+24:], d[:])
	return f
}

func TestCaptureFilterMatch(t *testing.T) {
	echo := ipv4Frame(6, "198.18.0.1", "198.18.0.2", 40000, 7)
	reply := ipv4Frame(6, "198.18.0.2", "198.18.0.1", 7, 40000)
	udp := ipv4Frame(17, "198.18.0.3", "198.18.0.2", 53, 5353)
	fragment := ipv4Frame(6, "198.18.0.1", "198.18.0.2", 40000, 7)
	binary.BigEndian.PutUint16(fragment[14+6:], 100) // fragment offset: no ports
	arp := arpFrame("198.18.0.1", "198.18.0.2")
	for _, tc := range []struct {
		filter string
		frame  []byte
		want   bool
	}{
		{"", arp, true},
		{"198.18.0.1", echo, true},
		{"198.18.0.1", reply, true},
		{"198.18.0.1", udp, false},
		{"198.18.0.1", arp, true},
		{"198.18.0.3", arp, false},
		{"7", echo, true},
		{"7", reply, true},
		{"7", udp, false},
		{"5353", udp, true},
		{"7", arp, false},
		{"7", fragment, false},
		{"198.18.0.1:7", echo, true},
		{"198.18.0.3:7", echo, false},
		{"198.18.0.1:9", echo, false},
		{"7", echo[:20], false},
	} {
		f, err := ParseCaptureFilter(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.match(tc.frame); got != tc.want {
			t.Errorf("filter %q on %x: %v, want %v", tc.filter, tc.frame[12:], got, tc.want)
		}
	}
}

func TestCaptureWritesPcap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcap")
	f, _ := ParseCaptureFilter("7")
	c, err := newCapture(path, f)
	if err != nil {
		t.Fatal(err)
	}
	echo := ipv4Frame(6, "198.18.0.1", "198.18.0.2", 40000, 7)
	c.frame([][]byte{echo})
	c.frame([][]byte{ipv4Frame(17, "198.18.0.3", "198.18.0.2", 53, 5353)}) // filtered out
	// A transmitted frame comes in pieces.
	reply := ipv4Frame(6, "198.18.0.2", "198.18.0.1", 7, 40000)
	c.frame([][]byte{reply[:14], reply[14:34], reply[34:]})
	st, err := c.close()
	if err != nil {
		t.Fatal(err)
	}
	if st.Frames != 2 || st.Bytes != uint64(len(echo)+len(reply)) || st.File != path || st.Filter != "7" {
		t.Fatalf("stats %+v", st)
	}
	c.frame([][]byte{echo}) // after close: ignored

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 24+2*(16+len(echo)) {
		t.Fatalf("pcap of %d bytes, want %d", len(b), 24+2*(16+len(echo)))
	}
	if binary.NativeEndian.Uint32(b) != pcapMagicNanos || binary.NativeEndian.Uint32(b[20:]) != pcapLinkTypeEth {
		t.Fatalf("pcap header %x", b[:24])
	}
	rec := b[24:]
	for i, want := range [][]byte{echo, reply} {
		incl, orig := binary.NativeEndian.Uint32(rec[8:]), binary.NativeEndian.Uint32(rec[12:])
		if int(incl) != len(want) || int(orig) != len(want) || !bytes.Equal(rec[16:16+incl], want) {
			t.Fatalf("record %d: incl %d orig %d data %x, want %x", i, incl, orig, rec[16:16+incl], want)
		}
		rec = rec[16+incl:]
	}
}
