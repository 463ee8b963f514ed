package tcpext

import (
	"testing"
	"unsafe"
)

// An idle connection's memory is mostly its TCB, which the allocator
// rounds up to a size class: the TCB fits the 1280-byte class, less the
// 8-byte header the Go runtime puts before an object with pointers larger
// than 512 bytes. A field added past it costs every connection 128 bytes
// more (the next class); make room first, or move the field to state only
// some TCBs need (like listenQueue).
func TestTCBFitsItsSizeClass(t *testing.T) {
	const mallocHeader = 8
	if n := unsafe.Sizeof(endpoint{}); n > 1280-mallocHeader {
		t.Fatalf("endpoint is %d bytes, above the 1280-byte size class less its %d-byte malloc header", n, mallocHeader)
	}
	if n := unsafe.Sizeof(record{}); n > 80 {
		t.Fatalf("a flight record is %d bytes, above its budget of 80", n)
	}
}
