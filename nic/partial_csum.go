//go:build linux

package nic

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// fixPartialChecksum finishes the TCP or UDP checksum of an IPv4 frame that
// a local peer kernel sent with transmit checksum offload, when nothing
// marked it so. AF_XDP hands over bare frames: a veth peer's frame
// arrives with only the pseudo-header sum in its checksum field (the
// kernel's CHECKSUM_PARTIAL), and the mark that says so stays behind in the
// socket buffer the XDP path dropped.
//
// The test is cheap in the common case: a field that does not hold exactly
// the pseudo-header sum is left for the stack to verify. One that does is
// completed only if the full checksum does not already verify, so a frame
// whose correct checksum happens to equal its pseudo-header sum is kept as
// it is.
func fixPartialChecksum(frame []byte) {
	if len(frame) < header.EthernetMinimumSize+header.IPv4MinimumSize ||
		binary.BigEndian.Uint16(frame[12:]) != uint16(header.IPv4ProtocolNumber) {
		return
	}
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	if !ip.IsValid(len(ip)) || ip.FragmentOffset() != 0 || ip.More() {
		return
	}
	hlen := int(ip.HeaderLength())
	l4 := []byte(ip)[hlen:ip.TotalLength()]
	var field int
	switch ip.TransportProtocol() {
	case header.TCPProtocolNumber:
		field = header.TCPChecksumOffset
	case header.UDPProtocolNumber:
		field = 6
	default:
		return
	}
	if len(l4) < field+2 {
		return
	}
	pseudo := header.PseudoHeaderChecksum(ip.TransportProtocol(), ip.SourceAddress(), ip.DestinationAddress(), uint16(len(l4)))
	if binary.BigEndian.Uint16(l4[field:]) != pseudo || checksum.Checksum(l4, 0) == 0xffff {
		return
	}
	start := header.EthernetMinimumSize + hlen
	completeChecksum(frame, start, field)
}
