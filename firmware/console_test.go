package main

import (
	"strings"
	"testing"
)

func TestCRLFWriter(t *testing.T) {
	var b strings.Builder
	w := crlfWriter{&b}
	n, err := w.Write([]byte("level=INFO msg=one\nsynfin: ready\n"))
	if err != nil || n != 33 {
		t.Fatalf("Write = %d, %v; want the caller's 33 bytes", n, err)
	}
	if got := b.String(); got != "level=INFO msg=one\r\nsynfin: ready\r\n" {
		t.Errorf("wrote %q", got)
	}
}
