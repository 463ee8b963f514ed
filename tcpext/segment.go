package tcpext

import (
	"encoding/binary"
	"errors"
	"fmt"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Segment is a decoded TCP header (RFC 9293 section 3.1) and its payload.
type Segment struct {
	SrcPort, DstPort uint16
	Seq, Ack         seqnum.Value
	Flags            header.TCPFlags
	Window           uint16
	Urgent           uint16
	Options          SegmentOptions
	Payload          []byte
	// sent is the length of an outgoing segment's payload, which comes
	// from the send buffer rather than Payload (output.go).
	sent int
	// view, if set, is the received packet's view that holds Payload;
	// scratch, if set, is pooled memory that holds a copy of the payload
	// split across the views of the packet split (input.go). All are
	// valid only while the segment is handled.
	view    *buffer.View
	scratch *[]byte
	split   *stack.PacketBuffer
}

// payloadLen is the length of the segment's payload, received or sent.
func (s *Segment) payloadLen() int { return len(s.Payload) + s.sent }

// Errors returned by ParseSegment for malformed headers.
var (
	ErrShortHeader     = errors.New("tcp header shorter than 20 bytes")
	ErrDataOffsetSmall = errors.New("tcp data offset below 5 words")
	ErrDataOffsetLarge = errors.New("tcp data offset past the end of the segment")
)

// ParseSegment decodes a whole TCP segment (header, options and payload).
// Malformed input is reported as an error, never a panic; the payload
// aliases b.
func ParseSegment(b []byte) (Segment, error) {
	if len(b) < header.TCPMinimumSize {
		return Segment{}, fmt.Errorf("%w: %d bytes", ErrShortHeader, len(b))
	}
	off := int(b[12]>>4) * 4
	switch {
	case off < header.TCPMinimumSize:
		return Segment{}, fmt.Errorf("%w: %d", ErrDataOffsetSmall, off/4)
	case off > len(b):
		return Segment{}, fmt.Errorf("%w: %d bytes of header in %d", ErrDataOffsetLarge, off, len(b))
	}
	s, err := parseHeader(b[:off])
	s.Payload = b[off:]
	return s, err
}

// parseHeader decodes a header whose length is exactly its data offset.
func parseHeader(h []byte) (Segment, error) {
	s := Segment{
		SrcPort: binary.BigEndian.Uint16(h[0:]),
		DstPort: binary.BigEndian.Uint16(h[2:]),
		Seq:     seqnum.Value(binary.BigEndian.Uint32(h[4:])),
		Ack:     seqnum.Value(binary.BigEndian.Uint32(h[8:])),
		Flags:   header.TCPFlags(h[13]),
		Window:  binary.BigEndian.Uint16(h[14:]),
		Urgent:  binary.BigEndian.Uint16(h[18:]),
	}
	var err error
	s.Options, err = ParseOptions(h[header.TCPMinimumSize:])
	return s, err
}

// HeaderLen is the encoded header size including options.
func (s *Segment) HeaderLen() int {
	return header.TCPMinimumSize + s.Options.Len()
}

// EncodeHeader writes the header into b, which must hold s.HeaderLen()
// bytes. The checksum field is left zero.
func (s *Segment) EncodeHeader(b []byte) {
	binary.BigEndian.PutUint16(b[0:], s.SrcPort)
	binary.BigEndian.PutUint16(b[2:], s.DstPort)
	binary.BigEndian.PutUint32(b[4:], uint32(s.Seq))
	binary.BigEndian.PutUint32(b[8:], uint32(s.Ack))
	n := s.Options.Encode(b[header.TCPMinimumSize:])
	b[12] = byte((header.TCPMinimumSize+n)/4) << 4
	b[13] = byte(s.Flags)
	binary.BigEndian.PutUint16(b[14:], s.Window)
	b[16], b[17] = 0, 0
	binary.BigEndian.PutUint16(b[18:], s.Urgent)
}

// seqLen is the sequence space the segment occupies: its payload plus one
// each for SYN and FIN (RFC 9293 section 3.4).
func (s *Segment) seqLen() seqnum.Size {
	n := seqnum.Size(s.payloadLen())
	if s.Flags&header.TCPFlagSyn != 0 {
		n++
	}
	if s.Flags&header.TCPFlagFin != 0 {
		n++
	}
	return n
}

func (s *Segment) has(f header.TCPFlags) bool { return s.Flags&f != 0 }
