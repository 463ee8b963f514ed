//go:build linux

package nic

import (
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

var (
	segSrc = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
	segDst = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
)

// segment builds a packet as the stack hands it to the link: ethernet,
// IPv4 and TCP headers (with a timestamp option) in front of the payload.
func segment(t *testing.T, seq uint32, flags header.TCPFlags, dstPort uint16, payload int) *stack.PacketBuffer {
	t.Helper()
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.EthernetMinimumSize + header.IPv4MinimumSize + 32,
		Payload:            buffer.MakeWithData(make([]byte, payload)),
	})
	t.Cleanup(pkt.DecRef)
	tcp := header.TCP(pkt.TransportHeader().Push(32))
	tcp.Encode(&header.TCPFields{SrcPort: 19, DstPort: dstPort, SeqNum: seq, AckNum: 7, DataOffset: 32, Flags: flags, WindowSize: 500})
	copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(header.IPv4MinimumSize + 32 + payload), TTL: 64, Protocol: 6, SrcAddr: segSrc, DstAddr: segDst, ID: 100})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize)).Encode(&header.EthernetFields{
		SrcAddr: "\x02\x00\x00\x00\x00\x02", DstAddr: "\x02\x00\x00\x00\x00\x01", Type: header.IPv4ProtocolNumber})
	return pkt
}

func TestCoalescible(t *testing.T) {
	const mss = 1000
	ack, psh := header.TCPFlagAck, header.TCPFlagAck|header.TCPFlagPsh
	for _, tc := range []struct {
		name string
		pkts func() []*stack.PacketBuffer
		want int
	}{
		{"run of full segments and a short last", func() []*stack.PacketBuffer {
			return []*stack.PacketBuffer{segment(t, 1, ack, 4000, mss), segment(t, 1001, psh, 4000, mss), segment(t, 2001, ack, 4000, 300), segment(t, 2301, ack, 4000, mss)}
		}, 3},
		{"gap in sequence", func() []*stack.PacketBuffer {
			return []*stack.PacketBuffer{segment(t, 1, ack, 4000, mss), segment(t, 2001, ack, 4000, mss)}
		}, 1},
		{"other connection", func() []*stack.PacketBuffer {
			return []*stack.PacketBuffer{segment(t, 1, ack, 4000, mss), segment(t, 1001, ack, 4001, mss)}
		}, 1},
		{"FIN ends the run", func() []*stack.PacketBuffer {
			return []*stack.PacketBuffer{segment(t, 1, ack, 4000, mss), segment(t, 1001, ack|header.TCPFlagFin, 4000, mss)}
		}, 1},
		{"pure ACK first", func() []*stack.PacketBuffer {
			return []*stack.PacketBuffer{segment(t, 1, ack, 4000, 0), segment(t, 1, ack, 4000, mss)}
		}, 1},
		{"larger than an IP packet", func() []*stack.PacketBuffer {
			var pkts []*stack.PacketBuffer
			for i := range 70 {
				pkts = append(pkts, segment(t, uint32(1+i*mss), ack, 4000, mss))
			}
			return pkts
		}, 65},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if k, _, _ := coalescible(tc.pkts()); k != tc.want {
				t.Errorf("coalescible = %d, want %d", k, tc.want)
			}
		})
	}
}

func TestSuperHeader(t *testing.T) {
	const mss = 1000
	pkts := []*stack.PacketBuffer{
		segment(t, 1, header.TCPFlagAck, 4000, mss),
		segment(t, 1001, header.TCPFlagAck|header.TCPFlagPsh, 4000, 200),
	}
	k, gso, ipLen := coalescible(pkts)
	if k != 2 || gso != mss || ipLen != 20+32+1200 {
		t.Fatalf("coalescible = %d, %d, %d", k, gso, ipLen)
	}
	var s txSender
	h := s.superHeader(0, pkts, gso, ipLen)
	vnet, frame := h[:vnetHdrLen], h[vnetHdrLen:]
	if len(frame) != 14+20+32 {
		t.Fatalf("headers of %d bytes", len(frame))
	}
	if vnet[0] != 1 || vnet[1] != 1 || binary.NativeEndian.Uint16(vnet[2:]) != 66 || binary.NativeEndian.Uint16(vnet[4:]) != mss ||
		binary.NativeEndian.Uint16(vnet[6:]) != 34 || binary.NativeEndian.Uint16(vnet[8:]) != 16 {
		t.Errorf("virtio-net header %x", vnet)
	}
	ip := header.IPv4(frame[14:34])
	if ip.TotalLength() != uint16(ipLen) || !ip.IsChecksumValid() || ip.ID() != 100 {
		t.Errorf("IP header %x: length %d, checksum valid %v", ip, ip.TotalLength(), ip.IsChecksumValid())
	}
	tcp := header.TCP(frame[34:])
	if tcp.Flags() != header.TCPFlagAck|header.TCPFlagPsh || tcp.SequenceNumber() != 1 {
		t.Errorf("TCP flags %v seq %d", tcp.Flags(), tcp.SequenceNumber())
	}
	if want := header.PseudoHeaderChecksum(header.TCPProtocolNumber, segSrc, segDst, 32+1200); tcp.Checksum() != want {
		t.Errorf("TCP checksum field %#04x, want the pseudo-header sum %#04x", tcp.Checksum(), want)
	}
}
