package tcpext_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/synfin/synfin/tcpext"
)

// FuzzEndpoint drives a DUT with a program decoded from the fuzz input:
// segments from scripted peers, clock advances and socket API calls. Segment
// numbers are offsets from the DUT's own state (RCV.NXT, SND.NXT of the TCB
// the segment is for), so small inputs reach deep states: in-window data,
// exact RSTs, ACKs of our FIN. The checks: nothing panics, and no TCB
// outlives its connection — once the application has closed every
// endpoint and the clock has run past every timer (2*MSL, the FIN-WAIT-2
// timeout, the retransmission limit, keepalive), the TCB table holds only
// the listener the program left open, if any.
func FuzzEndpoint(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 2048 {
			return // longer programs add time, not states
		}
		fz := newFuzzer(t)
		fz.run(prog)
		fz.closeAllAndCheck()
	})
}

// Opcodes of a fuzz program. Each is followed by its argument bytes;
// missing bytes read as zero.
const (
	opSegment byte = iota // flags, tuple+bits, seq offset, ack offset, window+length
	opAdvance             // duration index
	opAPI                 // call, endpoint index
	opICMP                // code index, seq offset
	numOps
)

// fuzzSeeds are meaningful programs for the fuzzer to mutate: handshakes
// both ways, data, each side closing, resets, timers.
var fuzzSeeds = [][]byte{
	// Passive open on port 7, accept, data, peer FIN, close.
	{opSegment, byte(syn), 0, 0, 0, wOpen, opSegment, byte(ack), 0, 0, 0, wOpen, opAPI, apiAccept, 0,
		opSegment, byte(ack | psh), 0, 0, 0, wOpen | 5, opAPI, apiRead, 0, opSegment, byte(finAck), 0, 0, 0, wOpen,
		opAPI, apiClose, 0, opSegment, byte(ack), 0, 0, 0, wOpen},
	// Active open, write, DUT closes, peer acks and FINs, TIME-WAIT.
	{opAPI, apiConnect, 0, opSegment, byte(synAck), 2, 0, 0, wOpen, opAPI, apiWrite, 0,
		opSegment, byte(ack), 2, 0, 0, wOpen, opAPI, apiClose, 0, opSegment, byte(finAck), 2, 0, 0, wOpen,
		opAdvance, 5},
	// Active open, simultaneous open by a crossing SYN, RST.
	{opAPI, apiConnect, 0, opSegment, byte(syn), 2, 0, 0, wOpen, opSegment, byte(ack), 2, 0, 0, wOpen,
		opSegment, byte(rst), 2, 0, 0, 0},
	// Zero window, data queued, close, long wait.
	{opAPI, apiConnect, 0, opSegment, byte(synAck), 2, 0, 0, 0, opAPI, apiWrite, 0, opAPI, apiClose, 0,
		opAdvance, 7, opAdvance, 7},
	// Keepalive on an idle connection, then timers.
	{opSegment, byte(syn), 0, 0, 0, wOpen, opSegment, byte(ack), 0, 0, 0, wOpen, opAPI, apiAccept, 0,
		opAPI, apiKeepalive, 0, opAdvance, 4, opAdvance, 4, opAdvance, 4},
	// ICMP fragmentation needed on data in flight, then RTOs.
	{opAPI, apiConnect, 0, opSegment, byte(synAck), 2 | 16, 0, 0, wOpen, opAPI, apiWrite, 200,
		opICMP, 2, 0, opAdvance, 2, opAdvance, 3},
}

// wOpen is the window-index bits of a segment's last byte for a 65535 window.
const wOpen = 3 << 6

// API calls of opAPI.
const (
	apiConnect byte = iota
	apiAccept
	apiWrite
	apiRead
	apiClose
	apiShutdownWrite
	apiShutdownRead
	apiAbort
	apiLingerClose
	apiKeepalive
	apiWriteUrgent
	apiUserTimeout
	apiCloseListener
	apiConnectListener
	numAPI
)

var fuzzDurations = [...]time.Duration{ms, 50 * ms, 200 * ms, time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

var fuzzWindows = [...]uint16{0, 1, 1460, 65535}

type fuzzer struct {
	t   *testing.T
	d   *dut
	isn atomic.Uint32

	lis     tcpip.Endpoint
	lisOpen bool // lis is a listener the program has not closed
	eps     []tcpip.Endpoint
	lastSYN map[[2]uint16]uint32 // the peer's ISN per tuple, for segments with no TCB
}

func newFuzzer(t *testing.T) *fuzzer {
	o := tcpext.DefaultOptions()
	o.MSL = time.Second
	o.FinWait2Timeout = 3 * time.Second
	o.Keepalive = tcpext.KeepaliveOptions{Idle: 5 * time.Second, Interval: time.Second, Count: 2}
	o.ChallengeACKLimit = 4
	fz := &fuzzer{t: t, d: newDUT(t, o), lastSYN: map[[2]uint16]uint32{}}
	// A fixed ISN sequence keeps a failing input reproducible (ephemeral
	// ports still vary, but segments are addressed by the DUT's state).
	fz.isn.Store(1000)
	tcpext.SetISNForTest(fz.d.proto, func() uint32 { return fz.isn.Add(100000) })
	fz.lis = fz.newEndpoint()
	if err := fz.lis.Bind(tcpip.FullAddress{Port: 7}); err != nil {
		t.Fatal(err)
	}
	if err := fz.lis.Listen(2); err != nil {
		t.Fatal(err)
	}
	fz.lisOpen = true
	return fz
}

func (fz *fuzzer) newEndpoint() tcpip.Endpoint {
	var wq waiter.Queue
	ep, err := fz.d.s.NewEndpoint(header.TCPProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		fz.t.Fatalf("NewEndpoint: %v", err)
	}
	return ep
}

// reader hands out the program's bytes, zero once exhausted.
type reader struct{ b []byte }

func (r *reader) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (fz *fuzzer) run(prog []byte) {
	r := &reader{prog}
	for len(r.b) > 0 {
		switch r.next() % numOps {
		case opSegment:
			fz.segment(r.next(), r.next(), r.next(), r.next(), r.next())
		case opAdvance:
			fz.d.clock.Advance(fuzzDurations[r.next()%byte(len(fuzzDurations))])
		case opAPI:
			fz.api(r.next()%numAPI, r.next())
		case opICMP:
			fz.icmp(r.next(), r.next())
		}
		fz.drain()
	}
}

// tuple picks the 4-tuple (DUT port, peer port) a segment belongs to: two
// peers of the listener, the newest active connection, and a closed port.
func (fz *fuzzer) tuple(sel byte) (local, remote uint16) {
	switch sel % 4 {
	case 0:
		return 7, 40000
	case 1:
		return 7, 40001
	case 2:
		for i := len(fz.eps) - 1; i >= 0; i-- {
			if a, err := fz.eps[i].GetRemoteAddress(); err == nil && a.Port == 80 {
				l, _ := fz.eps[i].GetLocalAddress()
				return l.Port, 80
			}
		}
		return 7, 40002
	}
	return 9, 40003
}

// segment injects one segment. bits: tuple (2), far seq, far ack, MSS
// option, bad checksum. wl: window index (2 high bits) and payload length.
func (fz *fuzzer) segment(flags, bits, seqOff, ackOff, wl byte) {
	local, remote := fz.tuple(bits)
	seqBase, ackBase := fz.bases(local, remote)
	scale := func(off byte, far bool) uint32 {
		v := int32(int8(off))
		if far {
			v *= 2048 // reaches past a 64 KiB window either way
		}
		return uint32(v)
	}
	n := int(wl & 0x1f)
	if wl&0x20 != 0 {
		n *= 50
	}
	s := seg{
		srcPort: remote, dstPort: local,
		seq:     seqBase + scale(seqOff, bits&4 != 0),
		ack:     ackBase + scale(ackOff, bits&8 != 0),
		flags:   header.TCPFlags(flags),
		window:  fuzzWindows[wl>>6],
		payload: bytes.Repeat([]byte{'f'}, n),
	}
	if bits&16 != 0 {
		s.mss = 536 + uint16(n)
	}
	if s.flags&header.TCPFlagSyn != 0 && s.flags&header.TCPFlagAck == 0 {
		fz.lastSYN[[2]uint16{local, remote}] = s.seq
	}
	b := encodeSegment(s)
	if s.flags&header.TCPFlagUrg != 0 {
		b[18], b[19] = 0, byte(n/2)
	}
	fz.d.injectRaw(b, bits&32 != 0)
}

// bases returns the sequence and acknowledgment numbers the offsets of a
// segment for this tuple start from: the TCB's RCV.NXT and SND.NXT, or the
// peer's last ISN and 0 when there is no TCB (or it knows no RCV.NXT yet).
func (fz *fuzzer) bases(local, remote uint16) (seq, ackN uint32) {
	seq = fz.lastSYN[[2]uint16{local, remote}]
	if seq == 0 {
		seq = 5000 + uint32(remote)
		fz.lastSYN[[2]uint16{local, remote}] = seq
	}
	for _, info := range fz.d.proto.TCBs() {
		if hasPort(info.Local, local) && hasPort(info.Remote, remote) {
			if info.State != "SYN-SENT" {
				seq = info.RcvNxt
			}
			return seq, info.SndNxt
		}
	}
	return seq, 0
}

func (fz *fuzzer) pick(i byte) tcpip.Endpoint {
	if len(fz.eps) == 0 {
		return nil
	}
	return fz.eps[int(i)%len(fz.eps)]
}

func (fz *fuzzer) api(call, arg byte) {
	ep := fz.pick(arg)
	switch call {
	case apiConnect:
		if len(fz.eps) < 8 {
			ep := fz.newEndpoint()
			ep.Connect(tcpip.FullAddress{Addr: peerAddr, Port: 80})
			fz.eps = append(fz.eps, ep)
		}
	case apiAccept:
		fz.acceptAll()
	case apiWrite, apiWriteUrgent:
		if ep != nil {
			p := strings.NewReader(strings.Repeat("w", 1+int(arg)*8))
			if call == apiWrite {
				ep.Write(p, tcpip.WriteOptions{})
			} else {
				tcpext.WriteUrgent(ep, p)
			}
		}
	case apiRead:
		if ep != nil {
			var b bytes.Buffer
			ep.Read(&b, tcpip.ReadOptions{})
		}
	case apiClose:
		if ep != nil {
			ep.Close()
		}
	case apiShutdownWrite:
		if ep != nil {
			ep.Shutdown(tcpip.ShutdownWrite)
		}
	case apiShutdownRead:
		if ep != nil {
			ep.Shutdown(tcpip.ShutdownRead)
		}
	case apiAbort:
		if ep != nil {
			ep.Abort()
		}
	case apiLingerClose:
		if ep != nil {
			ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true})
			ep.Close()
		}
	case apiKeepalive:
		if ep != nil {
			ep.SocketOptions().SetKeepAlive(true)
		}
	case apiUserTimeout:
		if ep != nil {
			v := tcpip.TCPUserTimeoutOption(time.Duration(1+arg%8) * time.Second)
			ep.SetSockOpt(&v)
		}
	case apiCloseListener:
		if fz.lisOpen {
			fz.lis.Close()
			fz.lisOpen = false
		}
	case apiConnectListener:
		if fz.lisOpen {
			// The listener becomes an active open on port 7 (LISTEN →
			// SYN-SENT) and is an ordinary connection from then on.
			fz.lis.Connect(tcpip.FullAddress{Addr: peerAddr, Port: 80})
			fz.eps = append(fz.eps, fz.lis)
			fz.lisOpen = false
		}
	}
}

// icmp injects a destination unreachable for the newest active connection
// quoting SND.UNA plus a small offset.
func (fz *fuzzer) icmp(code, off byte) {
	local, remote := fz.tuple(2)
	var una uint32
	for _, info := range fz.d.proto.TCBs() {
		if hasPort(info.Local, local) && hasPort(info.Remote, remote) {
			una = info.SndUna
		}
	}
	codes := [...]header.ICMPv4Code{header.ICMPv4PortUnreachable, header.ICMPv4HostUnreachable, header.ICMPv4FragmentationNeeded}
	fz.d.injectICMPUnreachable(codes[code%3], 576+uint16(off)*4, local, remote, una+uint32(int8(off)))
}

// acceptAll accepts every queued connection into eps.
func (fz *fuzzer) acceptAll() {
	for fz.lisOpen {
		ep, _, err := fz.lis.Accept(nil)
		if err != nil {
			return
		}
		fz.eps = append(fz.eps, ep)
	}
}

// drain discards what the DUT sent, so the link queue never fills.
func (fz *fuzzer) drain() {
	for pkt := fz.d.link.Read(); pkt != nil; pkt = fz.d.link.Read() {
		pkt.DecRef()
	}
}

// closeAllAndCheck closes every endpoint the program opened, runs the
// clock past every timer and checks that only the open listener is left.
func (fz *fuzzer) closeAllAndCheck() {
	fz.acceptAll()
	for _, ep := range fz.eps {
		ep.Close()
	}
	// Two hours in minute steps: past 2*MSL, the FIN-WAIT-2 timeout, the
	// SYN and data retry limits (about 15 minutes with a 60 s RTO cap) and
	// any keepalive.
	for range 120 {
		fz.d.clock.Advance(time.Minute)
		fz.drain()
		for fz.lisOpen {
			ep, _, err := fz.lis.Accept(nil)
			if err != nil {
				break
			}
			ep.Close()
		}
	}
	var leaked []string
	for _, info := range fz.d.proto.TCBs() {
		if fz.lisOpen && info.State == "LISTEN" && hasPort(info.Local, 7) {
			continue
		}
		leaked = append(leaked, fmt.Sprintf("#%d %s %s-%s timers %+v history %+v",
			info.ID, info.State, info.Local, info.Remote, info.Timers, info.History))
	}
	if len(leaked) > 0 {
		fz.t.Fatalf("%d TCB(s) left after closing everything and two hours:\n%s", len(leaked), strings.Join(leaked, "\n"))
	}
}
