//go:build linux

package nic

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const (
	// rxBlockSize is one TPACKET_V3 block. A block must hold the largest
	// frame whole: a veth peer's TCP hands over TSO super-segments and GRO
	// merges received ones, each up to a 64 KiB IP packet, and the kernel
	// truncates what does not fit.
	rxBlockSize = 1 << 17
	// rxBlocks is the number of blocks in the receive ring (8 MiB).
	rxBlocks = 64
	// rxBlockTimeout is how long (ms) the kernel waits for a block to fill
	// before handing it over anyway: TPACKET_V3 wakes the reader per
	// block, not per frame, so this bounds the latency a lone frame sees.
	// The kernel rounds it up to a timer tick (4 ms at HZ=250).
	rxBlockTimeout = 1

	// rxFrameSize is nominal: TPACKET_V3 packs frames of any size into a
	// block, but the kernel still wants the ring described in frames.
	rxFrameSize = 2048
)

// vlanTagLen is the size of an 802.1Q tag the kernel may leave in a frame.
const vlanTagLen = 4

// Offsets in struct tpacket_block_desc (its tpacket_hdr_v1) and struct
// tpacket3_hdr (linux/if_packet.h).
const (
	blockStatusOff   = 8
	blockNumPktsOff  = 12
	blockFirstPktOff = 16

	pktNextOff    = 0
	pktSnapLenOff = 12
	pktLenOff     = 16
	pktMacOff     = 24
	// pktSllOff is where the kernel puts a sockaddr_ll after the header:
	// TPACKET_ALIGN(sizeof(struct tpacket3_hdr)); its sll_pkttype is at
	// offset 10.
	pktSllOff = 48
)

// afpacket is a port on an AF_PACKET socket with a TPACKET_V3 receive ring
// and sendmmsg batches for transmit. Frames carry a virtio-net header
// (PACKET_VNET_HDR) in both directions.
type afpacket struct {
	file *os.File        // the socket, registered with Go's poller
	conn syscall.RawConn // file's raw access
	ring []byte          // the mmap'd receive ring

	tx txSender

	rxFrames, rxBytes, rxKernelDrops atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// openAFPacket opens a socket on the interface with index ifindex, with its
// receive ring mapped.
func openAFPacket(ifindex int) (*afpacket, error) {
	// Protocol 0 receives nothing until bind, so no frame of another
	// interface slips in before the socket is bound to ours.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	ring, err := configureSocket(fd, ifindex)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	file := os.NewFile(uintptr(fd), fmt.Sprintf("afpacket:%d", ifindex))
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		unix.Munmap(ring)
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	p := &afpacket{file: file, conn: conn, ring: ring}
	p.tx.start(conn)
	return p, nil
}

// configureSocket sets the socket up, maps its receive ring and binds it.
func configureSocket(fd, ifindex int) ([]byte, error) {
	// The virtio-net header is how the kernel says that a frame's TCP or
	// UDP checksum is unfinished and where it lies; see completeChecksum.
	// It must be set before the ring exists.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return nil, fmt.Errorf("set PACKET_VNET_HDR: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("set TPACKET_V3: %w", err)
	}
	// Our own transmissions would otherwise come back to us. Kernels older
	// than 4.20 lack the option; run filters those frames anyway.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	req := unix.TpacketReq3{
		Block_size:     rxBlockSize,
		Block_nr:       rxBlocks,
		Frame_size:     rxFrameSize,
		Retire_blk_tov: rxBlockTimeout,
	}
	req.Frame_nr = req.Block_size / req.Frame_size * req.Block_nr
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("set PACKET_RX_RING (TPACKET_V3): %w", err)
	}
	ring, err := unix.Mmap(fd, 0, rxBlockSize*rxBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap receive ring: %w", err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Munmap(ring)
		return nil, fmt.Errorf("bind AF_PACKET socket: %w", err)
	}
	return ring, nil
}

// htons converts a 16-bit value to network byte order, as sockaddr_ll wants
// its protocol.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// blockStatus is the status word of block i, which the kernel and we hand
// back and forth.
func (p *afpacket) blockStatus(i int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&p.ring[i*rxBlockSize+blockStatusOff]))
}

// run walks the ring block by block until the socket is closed.
func (p *afpacket) run(rx func([]byte), drop, batchEnd func()) {
	defer p.unmap()
	for i := 0; ; i = (i + 1) % rxBlocks {
		status := p.blockStatus(i)
		err := p.conn.Read(func(uintptr) bool {
			return status.Load()&unix.TP_STATUS_USER != 0
		})
		if err != nil {
			// The poller fails only once the socket is closed.
			return
		}
		p.readBlock(p.ring[i*rxBlockSize:(i+1)*rxBlockSize], rx, drop)
		status.Store(unix.TP_STATUS_KERNEL)
		batchEnd()
	}
}

// readBlock hands every frame of one block over.
func (p *afpacket) readBlock(block []byte, rx func([]byte), drop func()) {
	n := binary.NativeEndian.Uint32(block[blockNumPktsOff:])
	off := binary.NativeEndian.Uint32(block[blockFirstPktOff:])
	for range n {
		if int(off)+pktSllOff+12 > len(block) {
			return
		}
		h := block[off:]
		next := binary.NativeEndian.Uint32(h[pktNextOff:])
		snap := int(binary.NativeEndian.Uint32(h[pktSnapLenOff:]))
		wire := int(binary.NativeEndian.Uint32(h[pktLenOff:]))
		mac := int(binary.NativeEndian.Uint16(h[pktMacOff:]))
		outgoing := h[pktSllOff+10] == unix.PACKET_OUTGOING
		switch {
		case outgoing:
		case mac < vnetHdrLen || mac+snap > len(h):
			drop()
		default:
			// The virtio-net header lies just before the frame.
			frame, ok := prepareFrame(h[mac-vnetHdrLen:mac+snap], snap < wire)
			p.rxFrames.Add(1)
			p.rxBytes.Add(uint64(wire))
			if !ok {
				drop()
			} else {
				rx(frame)
			}
		}
		if next == 0 {
			return
		}
		off += next
	}
}

// write queues pkts for the sender.
func (p *afpacket) write(pkts []*stack.PacketBuffer) (int, tcpip.Error) {
	return p.tx.enqueue(pkts)
}

// rings returns the counters, first collecting the kernel's count of frames
// it dropped for want of room in the ring.
func (p *afpacket) rings() []RingStats {
	// Reading PACKET_STATISTICS resets it, so add it up as we go. Once the
	// socket is closed Control fails and the last count stands.
	_ = p.conn.Control(func(fd uintptr) {
		if st, err := unix.GetsockoptTpacketStatsV3(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			p.rxKernelDrops.Add(uint64(st.Drops))
		}
	})
	return []RingStats{
		{Name: "rx", Direction: "rx", Frames: p.rxFrames.Load(), Bytes: p.rxBytes.Load(), Drops: p.rxKernelDrops.Load()},
		{Name: "tx", Direction: "tx", Frames: p.tx.frames.Load(), Bytes: p.tx.bytes.Load(), Drops: p.tx.drops.Load(), Coalesced: p.tx.coalesced.Load()},
	}
}

// close closes the socket, which wakes the reader and fails the sender's
// sends, and stops the sender; the reader unmaps the ring once it is done.
func (p *afpacket) close() error {
	p.closeOnce.Do(func() {
		p.closeErr = p.file.Close()
		p.tx.stop()
	})
	return p.closeErr
}

// unmap releases the receive ring once the reader is done with it.
func (p *afpacket) unmap() {
	if p.ring != nil {
		unix.Munmap(p.ring)
		p.ring = nil
	}
}
