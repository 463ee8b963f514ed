//go:build linux

package nic

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	testSrc = tcpip.AddrFrom4([4]byte{198, 18, 1, 1})
	testDst = tcpip.AddrFrom4([4]byte{198, 18, 1, 2})
)

const (
	udpStart  = header.EthernetMinimumSize + header.IPv4MinimumSize
	udpCsumAt = 6 // offset of the checksum in the UDP header
)

// partialUDPFrame builds an ethernet/IPv4/UDP frame as a Linux sender with
// transmit checksum offload hands it over: the UDP checksum field holds
// only the pseudo-header sum.
func partialUDPFrame(payload []byte) []byte {
	udpLen := header.UDPMinimumSize + len(payload)
	frame := make([]byte, udpStart+udpLen)
	header.Ethernet(frame).Encode(&header.EthernetFields{
		SrcAddr: "\x02\x00\x00\x00\x00\x01",
		DstAddr: "\x02\x00\x00\x00\x00\x02",
		Type:    header.IPv4ProtocolNumber,
	})
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(header.IPv4MinimumSize + udpLen),
		TTL:         64,
		Protocol:    uint8(header.UDPProtocolNumber),
		SrcAddr:     testSrc,
		DstAddr:     testDst,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(frame[udpStart:])
	udp.Encode(&header.UDPFields{
		SrcPort:  40000,
		DstPort:  7,
		Length:   uint16(udpLen),
		Checksum: header.PseudoHeaderChecksum(header.UDPProtocolNumber, testSrc, testDst, uint16(udpLen)),
	})
	copy(udp.Payload(), payload)
	return frame
}

// vnetDatagram prefixes frame with a virtio-net header as the kernel writes
// it.
func vnetDatagram(flags, gsoType uint8, csumStart, csumOffset uint16, frame []byte) []byte {
	hdr := make([]byte, vnetHdrLen)
	hdr[0], hdr[1] = flags, gsoType
	binary.NativeEndian.PutUint16(hdr[6:], csumStart)
	binary.NativeEndian.PutUint16(hdr[8:], csumOffset)
	return append(hdr, frame...)
}

func udpChecksumValid(frame []byte) bool {
	udp := header.UDP(frame[udpStart:])
	return udp.IsChecksumValid(testSrc, testDst, checksum.Checksum(udp.Payload(), 0))
}

func TestPrepareFrameCompletesPartialChecksum(t *testing.T) {
	for _, payload := range [][]byte{[]byte("hello, synfin"), []byte("odd"), {}} {
		frame := partialUDPFrame(payload)
		if udpChecksumValid(frame) {
			t.Fatalf("payload %q: test frame already has a valid checksum", payload)
		}
		d := vnetDatagram(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, unix.VIRTIO_NET_HDR_GSO_NONE, udpStart, udpCsumAt, frame)
		got, ok := prepareFrame(d, false)
		if !ok {
			t.Fatalf("payload %q: frame refused", payload)
		}
		if !udpChecksumValid(got) {
			t.Errorf("payload %q: checksum %#04x not valid after completion", payload, header.UDP(got[udpStart:]).Checksum())
		}
	}
}

func TestPrepareFrameLeavesFinishedFrameAlone(t *testing.T) {
	frame := partialUDPFrame([]byte("data"))
	want := bytes.Clone(frame)
	got, ok := prepareFrame(vnetDatagram(unix.VIRTIO_NET_HDR_F_DATA_VALID, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 0, frame), false)
	if !ok || !bytes.Equal(got, want) {
		t.Errorf("prepareFrame changed or refused a frame without NEEDS_CSUM: ok=%v", ok)
	}
}

func TestPrepareFrameRefuses(t *testing.T) {
	frame := partialUDPFrame([]byte("data"))
	tests := []struct {
		name      string
		datagram  []byte
		truncated bool
	}{
		{"truncated", vnetDatagram(0, 0, 0, 0, frame), true},
		{"shorter than the header", make([]byte, vnetHdrLen-1), false},
		{"UDP super-frame", vnetDatagram(0, unix.VIRTIO_NET_HDR_GSO_UDP_L4, 0, 0, frame), false},
		{"checksum start past the end", vnetDatagram(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, uint16(len(frame)), 0, frame), false},
		{"checksum field past the end", vnetDatagram(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, udpStart, uint16(len(frame)-udpStart-1), frame), false},
	}
	for _, tt := range tests {
		if _, ok := prepareFrame(tt.datagram, tt.truncated); ok {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestPrepareFrameAcceptsTCPSuperFrame(t *testing.T) {
	frame := partialUDPFrame(make([]byte, 3000)) // the content does not matter here
	for _, gso := range []uint8{
		unix.VIRTIO_NET_HDR_GSO_TCPV4,
		unix.VIRTIO_NET_HDR_GSO_TCPV6,
		unix.VIRTIO_NET_HDR_GSO_TCPV4 | unix.VIRTIO_NET_HDR_GSO_ECN,
	} {
		if _, ok := prepareFrame(vnetDatagram(0, gso, 0, 0, frame), false); !ok {
			t.Errorf("gso_type %#x refused", gso)
		}
	}
}
