//go:build linux

package nic

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const (
	// txQueueLimit is the most packets waiting for the sender; writers
	// block beyond it, which holds the stack back instead of losing
	// frames.
	txQueueLimit = 1024
	// txBatch is the most messages one sendmmsg call carries.
	txBatch = 64
	// txIovecs bounds the iovecs of one sendmmsg call.
	txIovecs = 2048
	// maxTxHeaders is the longest ethernet, IPv4 and TCP header a
	// coalesced frame starts with.
	maxTxHeaders = header.EthernetMinimumSize + header.IPv4MinimumSize + header.TCPHeaderMaximumSize
	// maxSuperPacket bounds the IP packet of a coalesced frame: its total
	// length is a 16-bit field.
	maxSuperPacket = 1<<16 - 1
)

// txSender sends the frames the stack writes from a goroutine of its own,
// so that the stack's writes return at once and the frames written while a
// send is under way go out together in one sendmmsg. Consecutive TCP
// segments of one connection (as a bulk transfer writes them) go out as
// one TSO super-frame: a frame of the segments' headers and all their
// payload, with a virtio-net header that asks the kernel to cut it at the
// segment size (gso_type TCPV4) and finish the checksum. A veth hands such
// a frame to its peer whole, as Linux's own TCP does; a NIC with TSO cuts
// it in hardware; elsewhere the kernel cuts it in software.
type txSender struct {
	conn syscall.RawConn

	mu       sync.Mutex
	notEmpty sync.Cond
	notFull  sync.Cond
	queue    []*stack.PacketBuffer
	closed   bool
	stopped  sync.WaitGroup

	// The sender goroutine's own.
	batch    []*stack.PacketBuffer
	msgs     [txBatch]unix.Mmsghdr
	msgPkts  [txBatch]int
	msgBytes [txBatch]uint64
	iovecs   [txIovecs]unix.Iovec
	hdrs     [txBatch][vnetHdrLen + maxTxHeaders]byte

	frames, bytes, drops, coalesced atomic.Uint64
}

func (s *txSender) start(conn syscall.RawConn) {
	s.conn = conn
	s.notEmpty.L, s.notFull.L = &s.mu, &s.mu
	s.stopped.Add(1)
	go s.run()
}

// enqueue queues pkts for sending, waiting while the queue is full.
func (s *txSender) enqueue(pkts []*stack.PacketBuffer) (int, tcpip.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, pkt := range pkts {
		for len(s.queue) >= txQueueLimit && !s.closed {
			s.notFull.Wait()
		}
		if s.closed {
			return i, &tcpip.ErrClosedForSend{}
		}
		s.queue = append(s.queue, pkt.IncRef())
		if len(s.queue) == 1 {
			s.notEmpty.Signal()
		}
	}
	return len(pkts), nil
}

// stop makes the sender drop what is queued and return; call it after
// closing the socket, so that a send waiting for room fails at once.
func (s *txSender) stop() {
	s.mu.Lock()
	s.closed = true
	s.notEmpty.Broadcast()
	s.notFull.Broadcast()
	s.mu.Unlock()
	s.stopped.Wait()
}

func (s *txSender) run() {
	defer s.stopped.Done()
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.notEmpty.Wait()
		}
		closed := s.closed
		s.batch, s.queue = s.queue, s.batch[:0]
		s.notFull.Broadcast()
		s.mu.Unlock()
		if closed {
			s.drops.Add(uint64(len(s.batch)))
		} else {
			s.send(s.batch)
		}
		for i, pkt := range s.batch {
			pkt.DecRef()
			s.batch[i] = nil
		}
		s.batch = s.batch[:0]
		if closed {
			return
		}
	}
}

// send sends pkts in sendmmsg calls of up to txBatch messages.
func (s *txSender) send(pkts []*stack.PacketBuffer) {
	for len(pkts) > 0 {
		nmsg, iov, used := 0, 0, 0
		for used < len(pkts) && nmsg < txBatch {
			n := s.build(nmsg, pkts[used:], &iov)
			if n == 0 {
				break
			}
			used += n
			nmsg++
		}
		if nmsg == 0 {
			// One packet in more pieces than all the iovecs: it
			// cannot be sent this way.
			s.drops.Add(1)
			used = 1
		}
		s.sendmmsg(nmsg)
		clear(s.iovecs[:iov])
		pkts = pkts[used:]
	}
}

// build prepares message m from the packets at the front of pkts: one
// frame, or a super-frame of several coalesced TCP segments. It returns how
// many packets the message carries, 0 if the iovecs from *iov on do not
// suffice.
func (s *txSender) build(m int, pkts []*stack.PacketBuffer, iov *int) int {
	k, mss, ipLen := coalescible(pkts)
	need := 1
	if k == 1 {
		need += views(pkts[0], 0)
	} else {
		for _, pkt := range pkts[:k] {
			need += views(pkt, pkt.HeaderSize())
		}
	}
	if *iov+need > len(s.iovecs) {
		return 0
	}
	start := *iov
	var bytes uint64
	if k == 1 {
		s.iovecs[*iov].Base = &zeroVnetHdr[0]
		s.iovecs[*iov].SetLen(vnetHdrLen)
		*iov++
		*iov = s.addViews(*iov, pkts[0], 0)
		bytes = uint64(pkts[0].Size())
	} else {
		h := s.superHeader(m, pkts[:k], mss, ipLen)
		s.iovecs[*iov].Base = &h[0]
		s.iovecs[*iov].SetLen(len(h))
		*iov++
		for _, pkt := range pkts[:k] {
			*iov = s.addViews(*iov, pkt, pkt.HeaderSize())
			bytes += uint64(pkt.Size())
		}
		s.coalesced.Add(uint64(k))
	}
	s.msgs[m].Hdr.Iov = &s.iovecs[start]
	s.msgs[m].Hdr.SetIovlen(*iov - start)
	s.msgPkts[m], s.msgBytes[m] = k, bytes
	return k
}

// views counts the non-empty slices of pkt past its first skip bytes.
func views(pkt *stack.PacketBuffer, skip int) int {
	n := 0
	vl, off := pkt.AsViewList()
	off += skip
	for v := vl.Front(); v != nil; v = v.Next() {
		l := v.Size()
		if off >= l {
			off -= l
			continue
		}
		off = 0
		n++
	}
	return n
}

// addViews points the iovecs from i on at pkt past its first skip bytes
// and returns the next free iovec.
func (s *txSender) addViews(i int, pkt *stack.PacketBuffer, skip int) int {
	vl, off := pkt.AsViewList()
	off += skip
	for v := vl.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		b, off = b[off:], 0
		s.iovecs[i].Base = &b[0]
		s.iovecs[i].SetLen(len(b))
		i++
	}
	return i
}

// coalescible returns how many packets from the front of pkts can go out
// as one super-frame (1 if only the first), their segment size and the
// super-frame's IP packet length. They must be pure ACK (or ACK and PSH)
// segments of one connection with the same headers apart from sequence
// number and PSH, consecutive in sequence, all but the last of the first
// one's size.
func coalescible(pkts []*stack.PacketBuffer) (k, mss, ipLen int) {
	first := pkts[0]
	eth, ip, tcp, ok := tcpHeaders(first)
	if !ok || len(pkts) == 1 {
		return 1, 0, 0
	}
	mss = first.Data().Size()
	ipLen = len(ip) + len(tcp) + mss
	if mss == 0 {
		return 1, 0, 0
	}
	seq := tcp.SequenceNumber() + uint32(mss)
	last := mss
	k = 1
	for _, pkt := range pkts[1:] {
		e, i, t, ok := tcpHeaders(pkt)
		n := pkt.Data().Size()
		if !ok || last != mss || n == 0 || n > mss || ipLen+n > maxSuperPacket ||
			t.SequenceNumber() != seq || !bytes.Equal(e, eth) || len(t) != len(tcp) ||
			!bytes.Equal(i[12:20], ip[12:20]) || !bytes.Equal(t[:4], tcp[:4]) ||
			!bytes.Equal(t[8:12], tcp[8:12]) || !bytes.Equal(t[14:16], tcp[14:16]) ||
			!bytes.Equal(t[header.TCPMinimumSize:], tcp[header.TCPMinimumSize:]) {
			break
		}
		ipLen += n
		seq += uint32(n)
		last = n
		k++
	}
	return k, mss, ipLen
}

// tcpHeaders returns a packet's ethernet, IPv4 and TCP headers if it is a
// segment that can be part of a super-frame: IPv4 without options, not a
// fragment, TCP with ACK and at most PSH besides.
func tcpHeaders(pkt *stack.PacketBuffer) (eth []byte, ip header.IPv4, tcp header.TCP, ok bool) {
	if pkt.NetworkProtocolNumber != header.IPv4ProtocolNumber || pkt.TransportProtocolNumber != header.TCPProtocolNumber {
		return nil, nil, nil, false
	}
	eth = pkt.LinkHeader().Slice()
	ip = header.IPv4(pkt.NetworkHeader().Slice())
	tcp = header.TCP(pkt.TransportHeader().Slice())
	if len(eth) != header.EthernetMinimumSize || len(ip) != header.IPv4MinimumSize || len(tcp) < header.TCPMinimumSize ||
		ip.More() || ip.FragmentOffset() != 0 {
		return nil, nil, nil, false
	}
	if f := tcp.Flags(); f&header.TCPFlagAck == 0 || f&^(header.TCPFlagAck|header.TCPFlagPsh) != 0 {
		return nil, nil, nil, false
	}
	return eth, ip, tcp, true
}

// superHeader writes into message m's header buffer the virtio-net header
// and the headers of a super-frame of pkts: the first packet's, with the
// IP length of the whole, PSH if any segment had it, and in the TCP
// checksum field the pseudo-header sum the kernel finishes per segment.
func (s *txSender) superHeader(m int, pkts []*stack.PacketBuffer, mss, ipLen int) []byte {
	eth, ip, tcp, _ := tcpHeaders(pkts[0])
	hlen := len(eth) + len(ip) + len(tcp)
	h := s.hdrs[m][:vnetHdrLen+hlen]
	vnet, hdr := h[:vnetHdrLen], h[vnetHdrLen:]
	copy(hdr, eth)
	copy(hdr[len(eth):], ip)
	copy(hdr[len(eth)+len(ip):], tcp)

	nip := header.IPv4(hdr[len(eth) : len(eth)+len(ip)])
	nip.SetTotalLength(uint16(ipLen))
	nip.SetChecksum(0)
	nip.SetChecksum(^nip.CalculateChecksum())
	ntcp := header.TCP(hdr[len(eth)+len(ip):])
	for _, pkt := range pkts[1:] {
		_, _, t, _ := tcpHeaders(pkt)
		ntcp.SetFlags(uint8(ntcp.Flags() | t.Flags()))
	}
	ntcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, nip.SourceAddress(), nip.DestinationAddress(), uint16(ipLen-len(ip))))

	vnet[0] = unix.VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnet[1] = unix.VIRTIO_NET_HDR_GSO_TCPV4
	binary.NativeEndian.PutUint16(vnet[2:], uint16(hlen))
	binary.NativeEndian.PutUint16(vnet[4:], uint16(mss))
	binary.NativeEndian.PutUint16(vnet[6:], uint16(len(eth)+len(ip)))
	binary.NativeEndian.PutUint16(vnet[8:], header.TCPChecksumOffset)
	return h
}

// sendmmsg sends the first n prepared messages, waiting while the socket's
// send buffer is full. A message the kernel refuses is counted and
// skipped, as a NIC drops a frame it cannot send.
func (s *txSender) sendmmsg(n int) {
	i := 0
	err := s.conn.Write(func(fd uintptr) bool {
		for i < n {
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[i])), uintptr(n-i), 0, 0, 0)
			switch errno {
			case 0:
				for j := i; j < i+int(r); j++ {
					s.frames.Add(uint64(s.msgPkts[j]))
					s.bytes.Add(s.msgBytes[j])
				}
				i += int(r)
			case unix.EAGAIN:
				return false
			default:
				s.drops.Add(uint64(s.msgPkts[i]))
				i++
			}
		}
		return true
	})
	if err != nil {
		// The socket is closed.
		for j := i; j < n; j++ {
			s.drops.Add(uint64(s.msgPkts[j]))
		}
	}
}
