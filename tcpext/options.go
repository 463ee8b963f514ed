package tcpext

import (
	"encoding/binary"
	"fmt"
)

// TCP option kinds (IANA "TCP Option Kind Numbers").
const (
	optEOL           = 0
	optNOP           = 1
	optMSS           = 2 // RFC 9293 section 3.2
	optWindowScale   = 3 // RFC 7323 section 2
	optSACKPermitted = 4 // RFC 2018 section 2
	optSACK          = 5 // RFC 2018 section 3
	optTimestamps    = 8 // RFC 7323 section 3
)

// maxSACKBlocks is how many SACK blocks fit in 40 option bytes.
const maxSACKBlocks = 4

// maxOptionsLen is the most option space a TCP header has (data offset 15).
const maxOptionsLen = 40

// SACKBlock is one SACK block, [Start, End) in sequence space.
type SACKBlock struct {
	Start, End uint32
}

// SegmentOptions are the TCP options of one segment that tcpext understands.
// Unknown kinds are skipped by their length (RFC 9293 section 3.2).
type SegmentOptions struct {
	MSS           uint16 // 0 when absent
	WindowScale   int8   // -1 when absent
	SACKPermitted bool
	Timestamps    bool
	TSVal, TSEcr  uint32
	SACK          [maxSACKBlocks]SACKBlock
	NumSACK       int
}

// OptionError describes malformed option bytes.
type OptionError struct {
	Offset int
	Kind   byte
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("tcp option kind %d at offset %d: %s", e.Kind, e.Offset, e.Reason)
}

// ParseOptions decodes the option bytes of a TCP header. Malformed input —
// a truncated option, a length of 0 or 1, a length past the end, or a known
// option with the wrong length — is an error, never a panic.
func ParseOptions(b []byte) (SegmentOptions, error) {
	o := SegmentOptions{WindowScale: -1}
	for i := 0; i < len(b); {
		kind := b[i]
		switch kind {
		case optEOL:
			return o, nil
		case optNOP:
			i++
			continue
		}
		if i+1 >= len(b) {
			return o, &OptionError{i, kind, "truncated: no length byte"}
		}
		l := int(b[i+1])
		if l < 2 {
			return o, &OptionError{i, kind, fmt.Sprintf("length %d is less than 2", l)}
		}
		if i+l > len(b) {
			return o, &OptionError{i, kind, fmt.Sprintf("length %d runs past the header end", l)}
		}
		body := b[i+2 : i+l]
		switch kind {
		case optMSS:
			if l != 4 {
				return o, &OptionError{i, kind, fmt.Sprintf("MSS length %d, want 4", l)}
			}
			o.MSS = binary.BigEndian.Uint16(body)
		case optWindowScale:
			if l != 3 {
				return o, &OptionError{i, kind, fmt.Sprintf("window scale length %d, want 3", l)}
			}
			// RFC 7323 section 2.3: a shift above 14 is used as 14.
			o.WindowScale = int8(min(body[0], 14))
		case optSACKPermitted:
			if l != 2 {
				return o, &OptionError{i, kind, fmt.Sprintf("SACK-permitted length %d, want 2", l)}
			}
			o.SACKPermitted = true
		case optTimestamps:
			if l != 10 {
				return o, &OptionError{i, kind, fmt.Sprintf("timestamps length %d, want 10", l)}
			}
			o.Timestamps = true
			o.TSVal = binary.BigEndian.Uint32(body)
			o.TSEcr = binary.BigEndian.Uint32(body[4:])
		case optSACK:
			if (l-2)%8 != 0 || l == 2 {
				return o, &OptionError{i, kind, fmt.Sprintf("SACK length %d is not 2+8n", l)}
			}
			o.NumSACK = 0
			for j := 0; j+8 <= len(body) && o.NumSACK < maxSACKBlocks; j += 8 {
				o.SACK[o.NumSACK] = SACKBlock{
					Start: binary.BigEndian.Uint32(body[j:]),
					End:   binary.BigEndian.Uint32(body[j+4:]),
				}
				o.NumSACK++
			}
		}
		i += l
	}
	return o, nil
}

// Len returns the encoded size of o, padded to a multiple of 4.
func (o *SegmentOptions) Len() int {
	n := 0
	if o.MSS != 0 {
		n += 4
	}
	if o.WindowScale >= 0 {
		n += 4 // NOP + 3
	}
	switch {
	case o.SACKPermitted && o.Timestamps:
		n += 12 // SACK-permitted + timestamps share the alignment
	case o.Timestamps:
		n += 12 // NOP NOP + 10
	case o.SACKPermitted:
		n += 4 // NOP NOP + 2
	}
	if o.NumSACK > 0 {
		n += 4 + 8*o.NumSACK // NOP NOP + 2 + 8n
	}
	return n
}

// Encode writes o into b, which must hold o.Len() bytes, laid out 4-byte
// aligned with NOPs the way Linux does (RFC 7323 appendix A).
func (o *SegmentOptions) Encode(b []byte) int {
	i := 0
	if o.MSS != 0 {
		b[0], b[1] = optMSS, 4
		binary.BigEndian.PutUint16(b[2:], o.MSS)
		i = 4
	}
	switch {
	case o.SACKPermitted && o.Timestamps:
		b[i], b[i+1] = optSACKPermitted, 2
		i += 2
		i += putTimestamps(b[i:], o.TSVal, o.TSEcr)
	case o.Timestamps:
		b[i], b[i+1] = optNOP, optNOP
		i += 2
		i += putTimestamps(b[i:], o.TSVal, o.TSEcr)
	case o.SACKPermitted:
		b[i], b[i+1], b[i+2], b[i+3] = optNOP, optNOP, optSACKPermitted, 2
		i += 4
	}
	if o.WindowScale >= 0 {
		b[i], b[i+1], b[i+2], b[i+3] = optNOP, optWindowScale, 3, byte(o.WindowScale)
		i += 4
	}
	if o.NumSACK > 0 {
		b[i], b[i+1], b[i+2], b[i+3] = optNOP, optNOP, optSACK, byte(2+8*o.NumSACK)
		i += 4
		for _, s := range o.SACK[:o.NumSACK] {
			binary.BigEndian.PutUint32(b[i:], s.Start)
			binary.BigEndian.PutUint32(b[i+4:], s.End)
			i += 8
		}
	}
	return i
}

func putTimestamps(b []byte, val, ecr uint32) int {
	b[0], b[1] = optTimestamps, 10
	binary.BigEndian.PutUint32(b[2:], val)
	binary.BigEndian.PutUint32(b[6:], ecr)
	return 10
}
