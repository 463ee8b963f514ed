package tcpext_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/synfin/synfin/tcpext"
)

// The classic worked examples of the TCP literature, replayed with exact
// numbers. SetISNForTest fixes the DUT's side; the scripted peer plays the
// other.

// runScript runs one script on a fresh DUT with the conformance options.
func runScript(t *testing.T, ss ...step) {
	t.Helper()
	r := newRunner(t, conformanceOptions())
	r.script(ss...)
	r.finish()
}

// The handshake with client ISN 26500 and server ISN 29010: the SYN,ACK
// acknowledges 26501 and the final ACK acknowledges 29011, because each
// SYN takes one sequence number.
func TestClassicHandshakeDUTServer(t *testing.T) {
	runScript(t,
		setISN(29010),
		listenOn(7, 8),
		in(syn, 26500, 0, withMSS(wantMSS)),
		out(synAck, 29010, 26501, withMSS(wantMSS)),
		in(ack, 26501, 29011),
		stateIs("ESTABLISHED"),
		acceptConn(),
		tcbCheck("iss and irs", func(info tcpext.TCBInfo) string {
			if info.ISS != 29010 || info.IRS != 26500 || info.SndNxt != 29011 || info.RcvNxt != 26501 {
				return fmt.Sprintf("iss %d irs %d snd_nxt %d rcv_nxt %d, want 29010 26500 29011 26501",
					info.ISS, info.IRS, info.SndNxt, info.RcvNxt)
			}
			return ""
		}),
	)
}

func TestClassicHandshakeDUTClient(t *testing.T) {
	runScript(t,
		setISN(26500),
		connectTo(80),
		out(syn, 26500, 0, withMSS(wantMSS)),
		in(synAck, 29010, 26501, withMSS(wantMSS)),
		out(ack, 26501, 29011),
		stateIs("ESTABLISHED"),
		tcbCheck("iss and irs", func(info tcpext.TCBInfo) string {
			if info.ISS != 26500 || info.IRS != 29010 || info.SndNxt != 26501 || info.RcvNxt != 29011 {
				return fmt.Sprintf("iss %d irs %d snd_nxt %d rcv_nxt %d, want 26500 29010 26501 29011",
					info.ISS, info.IRS, info.SndNxt, info.RcvNxt)
			}
			return ""
		}),
	)
}

// The teardown: the closer's FIN has sequence number 32630 and is
// acknowledged with 32631; the other side's FIN, sequence number 24122
// (acknowledging 32631), is acknowledged with 24123. Replayed once with the
// DUT closing first and once with the peer closing first.
func TestClassicTeardownDUTClosesFirst(t *testing.T) {
	runScript(t,
		setISN(32629), // so that SND.NXT is 32630 after the handshake
		connectTo(80),
		out(syn, 32629, 0),
		in(synAck, 24121, 32630),
		out(ack, 32630, 24122),
		closeApp(),
		out(finAck, 32630, 24122),
		stateIs("FIN-WAIT-1"),
		in(ack, 24122, 32631),
		stateIs("FIN-WAIT-2"),
		in(finAck, 24122, 32631),
		out(ack, 32631, 24123),
		stateIs("TIME-WAIT"),
	)
}

func TestClassicTeardownPeerClosesFirst(t *testing.T) {
	runScript(t,
		setISN(24121),
		listenOn(7, 8),
		in(syn, 32629, 0),
		out(synAck, 24121, 32630),
		in(ack, 32630, 24122),
		acceptConn(),
		in(finAck, 32630, 24122),
		out(ack, 24122, 32631),
		stateIs("CLOSE-WAIT"),
		closeApp(),
		out(finAck, 24122, 32631),
		stateIs("LAST-ACK"),
		in(ack, 32631, 24123),
		stateIs(""),
	)
}

// classicOptions is the option list <mss 512, nop, wscale 0, nop, nop,
// timestamp 146647 0> as it appears on the wire.
var classicOptions = []byte{
	0x02, 0x04, 0x02, 0x00, // MSS 512
	0x01,             // NOP
	0x03, 0x03, 0x00, // window scale 0
	0x01, 0x01, // NOP NOP
	0x08, 0x0a, 0x00, 0x02, 0x3c, 0xd7, 0x00, 0x00, 0x00, 0x00, // timestamps 146647 0
}

func TestClassicOptionList(t *testing.T) {
	o, err := tcpext.ParseOptions(classicOptions)
	if err != nil {
		t.Fatalf("ParseOptions: %v", err)
	}
	fields := []struct {
		name      string
		got, want any
	}{
		{"MSS", o.MSS, uint16(512)},
		{"WindowScale", o.WindowScale, int8(0)},
		{"Timestamps", o.Timestamps, true},
		{"TSVal", o.TSVal, uint32(146647)},
		{"TSEcr", o.TSEcr, uint32(0)},
		{"SACKPermitted", o.SACKPermitted, false},
		{"NumSACK", o.NumSACK, 0},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}

	// The same list in a SYN header (data offset 10 words) parses the same,
	// with nothing mistaken for payload.
	b := make([]byte, header.TCPMinimumSize+len(classicOptions))
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 7)
	binary.BigEndian.PutUint32(b[4:], 26500)
	b[12] = byte(len(b)/4) << 4
	b[13] = byte(header.TCPFlagSyn)
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[header.TCPMinimumSize:], classicOptions)
	s, err := tcpext.ParseSegment(b)
	if err != nil {
		t.Fatalf("ParseSegment: %v", err)
	}
	if s.Options != o || len(s.Payload) != 0 || s.Seq != 26500 || s.Flags != header.TCPFlagSyn {
		t.Fatalf("segment %+v, want the same options, SYN seq 26500, no payload", s)
	}
}

// A SYN carrying the classic option list reaches a listener: the DUT takes
// the peer's MSS of 512 as its own sending MSS.
func TestClassicOptionListInSYN(t *testing.T) {
	r := newRunner(t, conformanceOptions())
	r.script(listenOn(7, 8))
	b := make([]byte, header.TCPMinimumSize+len(classicOptions))
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 7)
	binary.BigEndian.PutUint32(b[4:], 26500)
	b[12] = byte(len(b)/4) << 4
	b[13] = byte(header.TCPFlagSyn)
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[header.TCPMinimumSize:], classicOptions)
	r.d.injectRaw(b, false)
	r.script(
		out(synAck, dutISS, 26501),
		stateIs("SYN-RECEIVED"),
		tcbCheck("mss 512", func(info tcpext.TCBInfo) string {
			if info.MSS != 512 {
				return fmt.Sprintf("mss %d, want 512 from the peer's option", info.MSS)
			}
			return ""
		}),
	)
	r.finish()
}
