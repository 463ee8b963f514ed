package mgmt

import (
	"cmp"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/synfin/synfin/tcpext"
)

// The pcap file format (libpcap 2.4, microsecond timestamps) with raw IP
// packets: the recorder keeps no link layer.
const (
	pcapMagic      = 0xa1b2c3d4
	pcapLinkRaw    = 101 // LINKTYPE_RAW: each packet starts with its IP header
	pcapSnapLen    = 65535
	ipv4HeaderLen  = 20
	tcpHeaderLen   = 20
	maxTCPOptions  = 40
	ipProtoTCP     = 6
	defaultIPv4TTL = 64
)

// tcpFlagBits are the TCP header's flag bits by the names the recorder
// uses.
var tcpFlagBits = map[string]byte{
	"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08,
	"ACK": 0x10, "URG": 0x20, "ECE": 0x40, "CWR": 0x80,
}

// pcapPacket is one recorded segment rebuilt as an IPv4 packet: headers
// only, with the payload's length in the IP total length and the pcap
// record's original length, as a capture truncated after the TCP header.
type pcapPacket struct {
	at      time.Time
	headers []byte
	origLen int
}

// writePcap writes the segments recorded in dumps, in time order, as a
// pcap file that tcpdump, tshark and Wireshark read. The checksums are
// left zero: without the payload they cannot be computed.
func writePcap(w io.Writer, dumps []tcpext.TCBDump) error {
	var pkts []pcapPacket
	for _, d := range dumps {
		local, remote := parseEndpoint(d.TCB.Local), parseEndpoint(d.TCB.Remote)
		for _, ev := range d.Events {
			if ev.Seg == nil {
				continue
			}
			switch ev.Kind {
			case tcpext.EventSegOut:
				pkts = append(pkts, buildPacket(ev.At, local, remote, ev.Seg))
			case tcpext.EventSegIn:
				pkts = append(pkts, buildPacket(ev.At, remote, local, ev.Seg))
			}
		}
	}
	slices.SortStableFunc(pkts, func(a, b pcapPacket) int { return a.at.Compare(b.at) })

	var hdr [24]byte
	le := binary.LittleEndian
	le.PutUint32(hdr[0:], pcapMagic)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], pcapSnapLen)
	le.PutUint32(hdr[20:], pcapLinkRaw)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, p := range pkts {
		var rec [16]byte
		le.PutUint32(rec[0:], uint32(p.at.Unix()))
		le.PutUint32(rec[4:], uint32(p.at.Nanosecond()/1000))
		le.PutUint32(rec[8:], uint32(len(p.headers)))
		le.PutUint32(rec[12:], uint32(p.origLen))
		if _, err := w.Write(rec[:]); err != nil {
			return err
		}
		if _, err := w.Write(p.headers); err != nil {
			return err
		}
	}
	return nil
}

// parseEndpoint reads an "ip:port" of a TCB; a wildcard or anything else
// unreadable becomes 0.0.0.0 or port 0.
func parseEndpoint(s string) netip.AddrPort {
	host, port, _ := net.SplitHostPort(s)
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Unmap().Is4() {
		addr = netip.IPv4Unspecified()
	}
	p, _ := strconv.ParseUint(port, 10, 16)
	return netip.AddrPortFrom(addr.Unmap(), uint16(p))
}

func buildPacket(at time.Time, src, dst netip.AddrPort, seg *tcpext.SegEvent) pcapPacket {
	opts := tcpOptions(seg)
	tcpLen := tcpHeaderLen + len(opts)
	total := ipv4HeaderLen + tcpLen + max(seg.Len, 0)
	b := make([]byte, ipv4HeaderLen+tcpLen)

	be := binary.BigEndian
	ip := b[:ipv4HeaderLen]
	ip[0] = 0x45
	be.PutUint16(ip[2:], uint16(min(total, 0xffff)))
	be.PutUint16(ip[6:], 0x4000) // don't fragment
	ip[8] = defaultIPv4TTL
	ip[9] = ipProtoTCP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	be.PutUint16(ip[10:], ipv4Checksum(ip))

	tcp := b[ipv4HeaderLen:]
	be.PutUint16(tcp[0:], src.Port())
	be.PutUint16(tcp[2:], dst.Port())
	be.PutUint32(tcp[4:], seg.Seq)
	be.PutUint32(tcp[8:], seg.Ack)
	tcp[12] = byte(tcpLen/4) << 4
	for name := range strings.SplitSeq(seg.Flags, "|") {
		tcp[13] |= tcpFlagBits[name]
	}
	be.PutUint16(tcp[14:], seg.Window)
	copy(tcp[tcpHeaderLen:], opts)
	return pcapPacket{at: at, headers: b, origLen: total}
}

// tcpOptions encodes the options the recorder kept, padded to a multiple
// of four bytes. SACK blocks that do not fit in the 40 bytes are left out.
func tcpOptions(seg *tcpext.SegEvent) []byte {
	var o []byte
	be := binary.BigEndian
	if seg.MSS != 0 {
		o = be.AppendUint16(append(o, 2, 4), seg.MSS)
	}
	if seg.SACKPermitted {
		o = append(o, 1, 1, 4, 2)
	}
	if seg.HasTS {
		o = append(o, 1, 1, 8, 10)
		o = be.AppendUint32(be.AppendUint32(o, seg.TSVal), seg.TSEcr)
	}
	if seg.WScale >= 0 && hasFlag(seg.Flags, "SYN") {
		o = append(o, 1, 3, 3, byte(seg.WScale))
	}
	if n := min(len(seg.SACK), (maxTCPOptions-len(o)-4)/8); n > 0 {
		o = append(o, 1, 1, 5, byte(2+8*n))
		for _, blk := range seg.SACK[:n] {
			o = be.AppendUint32(be.AppendUint32(o, blk[0]), blk[1])
		}
	}
	for len(o)%4 != 0 {
		o = append(o, 0) // end of option list
	}
	return o
}

func hasFlag(flags, name string) bool {
	return slices.Contains(strings.Split(flags, "|"), name)
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// dumpTime is when a dump's file was last changed: its close, else now.
func dumpTime(d tcpext.TCBDump) time.Time {
	return cmp.Or(d.ClosedAt, time.Now())
}
