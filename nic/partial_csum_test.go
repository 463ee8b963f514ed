//go:build linux

package nic

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tcpFrame builds an ethernet frame carrying an IPv4 TCP segment with
// payload and a correct checksum.
func tcpFrame(payload string) []byte {
	f := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+header.TCPMinimumSize+len(payload))
	header.Ethernet(f).Encode(&header.EthernetFields{Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	src, dst := tcpip.AddrFrom4([4]byte{198, 18, 0, 1}), tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(ip)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: src, DstAddr: dst,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(ip[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 7, SeqNum: 1, Flags: header.TCPFlagAck | header.TCPFlagPsh, DataOffset: header.TCPMinimumSize, WindowSize: 1000})
	copy(tcp[header.TCPMinimumSize:], payload)
	tcp.SetChecksum(0)
	tcp.SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)))))
	return f
}

func TestFixPartialChecksum(t *testing.T) {
	good := tcpFrame("some data")
	tcpOff := header.EthernetMinimumSize + header.IPv4MinimumSize

	// What a peer kernel with checksum offload sends: the pseudo-header
	// sum alone.
	partial := bytes.Clone(good)
	tcp := header.TCP(partial[tcpOff:])
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber,
		tcpip.AddrFrom4([4]byte{198, 18, 0, 1}), tcpip.AddrFrom4([4]byte{198, 18, 0, 2}), uint16(len(tcp))))
	fixPartialChecksum(partial)
	if !bytes.Equal(partial, good) {
		t.Errorf("partial checksum finished as %#04x, want %#04x", header.TCP(partial[tcpOff:]).Checksum(), header.TCP(good[tcpOff:]).Checksum())
	}

	// A complete checksum, and a wrong one, stay as they are.
	same := bytes.Clone(good)
	fixPartialChecksum(same)
	if !bytes.Equal(same, good) {
		t.Error("a correct checksum was changed")
	}
	bad := bytes.Clone(good)
	header.TCP(bad[tcpOff:]).SetChecksum(0x1234)
	fixPartialChecksum(bad)
	if header.TCP(bad[tcpOff:]).Checksum() != 0x1234 {
		t.Error("a wrong checksum that is no partial one was changed")
	}
	// Truncated frames and other protocols are left alone.
	fixPartialChecksum(good[:20])
	fixPartialChecksum(arpFrame("198.18.0.1", "198.18.0.2"))
}
