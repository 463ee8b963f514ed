//go:build linux

package nic

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// vnetHdrLen is the size of struct virtio_net_hdr, which the kernel puts in
// front of every frame on a PACKET_VNET_HDR socket:
//
//	u8 flags; u8 gso_type; u16 hdr_len; u16 gso_size; u16 csum_start; u16 csum_offset
//
// The u16 fields are in the host's byte order (legacy virtio).
const vnetHdrLen = 10

// zeroVnetHdr prefixes every frame we send: no checksum to finish, no
// segmentation.
var zeroVnetHdr [vnetHdrLen]byte

// prepareFrame takes one datagram read from a PACKET_VNET_HDR socket (the
// virtio-net header and the frame) and returns the frame, ready for a stack
// that verifies every checksum. ok is false for a datagram that must be
// dropped.
//
// A frame the peer kernel sent with transmit checksum offload (a veth peer
// always does, and GRO leaves merged frames so) carries in its TCP or UDP
// checksum field only the pseudo-header sum; the header flags it
// NEEDS_CSUM and says where the checksum starts and lies, and we finish it
// as the kernel itself would (skb_checksum_help). That needs no knowledge of
// the protocol above IP.
//
// A TCP super-frame (gso_type TCPV4 or TCPV6: a TSO segment handed over a
// veth unsplit, or GRO's merge of received ones) is one valid TCP segment
// larger than the MTU, and goes up whole. A UDP super-frame would be read
// as one datagram where the sender wrote several, so it is refused.
func prepareFrame(datagram []byte, truncated bool) (frame []byte, ok bool) {
	if truncated || len(datagram) < vnetHdrLen {
		return nil, false
	}
	hdr, frame := datagram[:vnetHdrLen], datagram[vnetHdrLen:]
	switch hdr[1] &^ unix.VIRTIO_NET_HDR_GSO_ECN {
	case unix.VIRTIO_NET_HDR_GSO_NONE, unix.VIRTIO_NET_HDR_GSO_TCPV4, unix.VIRTIO_NET_HDR_GSO_TCPV6:
	default:
		return nil, false
	}
	if hdr[0]&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
		start := int(binary.NativeEndian.Uint16(hdr[6:]))
		offset := int(binary.NativeEndian.Uint16(hdr[8:]))
		if !completeChecksum(frame, start, offset) {
			return nil, false
		}
	}
	return frame, true
}

// completeChecksum finishes a partial checksum: the one's complement of the
// one's-complement sum of frame[start:], which includes the pseudo-header
// sum already in the field, goes into the field at start+offset. It reports
// false if the field lies outside the frame.
func completeChecksum(frame []byte, start, offset int) bool {
	field := start + offset
	if start >= len(frame) || field+2 > len(frame) {
		return false
	}
	sum := ^checksum.Checksum(frame[start:], 0)
	if sum == 0 {
		// UDP reads a zero checksum as "none"; the kernel sends the
		// equivalent 0xffff instead (CSUM_MANGLED_0), and so do we.
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(frame[field:], sum)
	return true
}
