package nic

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pcap file format constants (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
const (
	pcapMagicNanos  = 0xa1b23c4d // timestamps in nanoseconds
	pcapSnapLen     = 1 << 18    // larger than any super-frame
	pcapLinkTypeEth = 1
	pcapRecordHdr   = 16
)

// CaptureFilter selects the frames a capture keeps: IPv4 packets from or to
// Host (ARP too, if it names Host), and TCP or UDP segments from or to Port.
// The zero filter keeps everything.
type CaptureFilter struct {
	Host netip.Addr
	Port uint16
}

// ParseCaptureFilter reads "HOST", "PORT" or "HOST:PORT" (an IPv4 address
// and a TCP/UDP port); the empty string keeps everything.
func ParseCaptureFilter(s string) (CaptureFilter, error) {
	var f CaptureFilter
	if s == "" {
		return f, nil
	}
	host, port, hasPort := strings.Cut(s, ":")
	if !hasPort && !strings.Contains(s, ".") {
		host, port, hasPort = "", s, true
	}
	if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return f, fmt.Errorf("capture filter %q: %q is not an IPv4 address", s, host)
		}
		f.Host = a
	}
	if hasPort {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return f, fmt.Errorf("capture filter %q: %q is not a port", s, port)
		}
		f.Port = uint16(p)
	}
	return f, nil
}

// String gives the filter back in the form ParseCaptureFilter reads.
func (f CaptureFilter) String() string {
	switch {
	case f.Host.IsValid() && f.Port != 0:
		return netip.AddrPortFrom(f.Host, f.Port).String()
	case f.Host.IsValid():
		return f.Host.String()
	case f.Port != 0:
		return strconv.Itoa(int(f.Port))
	}
	return ""
}

// match reports whether the ethernet frame passes the filter. It needs only
// the headers, which lie in the frame's first bytes.
func (f CaptureFilter) match(frame []byte) bool {
	if !f.Host.IsValid() && f.Port == 0 {
		return true
	}
	if len(frame) < 14 {
		return false
	}
	ethType, l3 := binary.BigEndian.Uint16(frame[12:]), frame[14:]
	if ethType == 0x8100 && len(l3) >= 4 {
		ethType, l3 = binary.BigEndian.Uint16(l3[2:]), l3[4:]
	}
	switch ethType {
	case 0x0806: // ARP: sender IP at 14, target IP at 24
		if f.Port != 0 || len(l3) < 28 {
			return false
		}
		h := f.Host.As4()
		return [4]byte(l3[14:18]) == h || [4]byte(l3[24:28]) == h
	case 0x0800:
	default:
		return false
	}
	if len(l3) < 20 {
		return false
	}
	if f.Host.IsValid() {
		h := f.Host.As4()
		if [4]byte(l3[12:16]) != h && [4]byte(l3[16:20]) != h {
			return false
		}
	}
	if f.Port == 0 {
		return true
	}
	ihl := int(l3[0]&0x0f) * 4
	proto := l3[9]
	fragOffset := binary.BigEndian.Uint16(l3[6:]) & 0x1fff
	if (proto != 6 && proto != 17) || fragOffset != 0 || len(l3) < ihl+4 {
		return false
	}
	src, dst := binary.BigEndian.Uint16(l3[ihl:]), binary.BigEndian.Uint16(l3[ihl+2:])
	return src == f.Port || dst == f.Port
}

// capture writes the frames that pass its filter to a pcap file. It is safe
// for concurrent use: receive and transmit write to it from different
// goroutines.
type capture struct {
	filter  CaptureFilter
	path    string
	started time.Time

	mu      sync.Mutex
	file    *os.File
	w       *bufio.Writer
	hdr     [pcapRecordHdr]byte
	scratch []byte // a transmitted frame made contiguous
	closed  bool
	frames  uint64
	bytes   uint64
	errors  uint64
}

// newCapture creates (or truncates) the pcap file at path and writes its
// header.
func newCapture(path string, filter CaptureFilter) (*capture, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	c := &capture{filter: filter, path: path, started: time.Now(), file: f, w: bufio.NewWriterSize(f, 1<<16)}
	var h [24]byte
	binary.NativeEndian.PutUint32(h[0:], pcapMagicNanos)
	binary.NativeEndian.PutUint16(h[4:], 2)
	binary.NativeEndian.PutUint16(h[6:], 4)
	binary.NativeEndian.PutUint32(h[16:], pcapSnapLen)
	binary.NativeEndian.PutUint32(h[20:], pcapLinkTypeEth)
	if _, err := c.w.Write(h[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: %w", err)
	}
	return c, nil
}

// frame records one frame given in parts (a transmitted packet's headers
// and payload lie in separate slices).
func (c *capture) frame(parts [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	frame := parts[0]
	if len(parts) > 1 {
		c.scratch = c.scratch[:0]
		for _, p := range parts {
			c.scratch = append(c.scratch, p...)
		}
		frame = c.scratch
	}
	if !c.filter.match(frame) {
		return
	}
	now := time.Now()
	incl := min(len(frame), pcapSnapLen)
	binary.NativeEndian.PutUint32(c.hdr[0:], uint32(now.Unix()))
	binary.NativeEndian.PutUint32(c.hdr[4:], uint32(now.Nanosecond()))
	binary.NativeEndian.PutUint32(c.hdr[8:], uint32(incl))
	binary.NativeEndian.PutUint32(c.hdr[12:], uint32(len(frame)))
	if _, err := c.w.Write(c.hdr[:]); err != nil {
		c.errors++
		return
	}
	if _, err := c.w.Write(frame[:incl]); err != nil {
		c.errors++
		return
	}
	c.frames++
	c.bytes += uint64(len(frame))
}

func (c *capture) stats() CaptureStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CaptureStats{
		File:    c.path,
		Filter:  c.filter.String(),
		Frames:  c.frames,
		Bytes:   c.bytes,
		Errors:  c.errors,
		Started: c.started.UTC().Format(time.RFC3339),
	}
}

// close flushes and closes the file; frames arriving afterwards are
// ignored.
func (c *capture) close() (CaptureStats, error) {
	st := c.stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return st, nil
	}
	c.closed = true
	err := errors.Join(c.w.Flush(), c.file.Close())
	if err != nil {
		return st, fmt.Errorf("capture %s: %w", c.path, err)
	}
	return st, nil
}
