package tcpext_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// gate holds up the goroutine writing to the link, after the first packet
// it writes once armed, until released.
type gate struct {
	armed   atomic.Bool
	held    chan struct{}
	release chan struct{}
}

func (g *gate) WriteNotify() {
	if g.armed.CompareAndSwap(true, false) {
		g.held <- struct{}{}
		<-g.release
	}
}

// Segments leave in the order they were built, even when two goroutines
// send for one connection: while the application's goroutine is still
// writing its segments to the link, a segment another goroutine builds
// waits behind them instead of overtaking them.
func TestSegmentsLeaveInOrder(t *testing.T) {
	d := newDUT(t, testOptions())
	g := &gate{held: make(chan struct{}), release: make(chan struct{})}
	d.link.AddNotify(g)
	ep, _, iss := d.connect(5000)
	ep.SocketOptions().SetDelayOption(false)

	g.armed.Store(true)
	wrote := make(chan error, 1)
	go func() {
		if _, err := ep.Write(bytes.NewReader(make([]byte, 2000)), tcpip.WriteOptions{}); err != nil {
			wrote <- fmt.Errorf("%s", err)
			return
		}
		wrote <- nil
	}()
	<-g.held // the first segment is out; the second waits to be written
	if _, err := ep.Write(bytes.NewReader(make([]byte, 100)), tcpip.WriteOptions{}); err != nil {
		t.Fatalf("second write: %v", err)
	}
	close(g.release)
	if err := <-wrote; err != nil {
		t.Fatalf("first write: %v", err)
	}
	next := iss + 1
	for _, want := range []int{1400, 600, 100} {
		s := d.next()
		if uint32(s.Seq) != next || len(s.Payload) != want {
			t.Fatalf("got %s, want seq %d with %d bytes", describe(s), next, want)
		}
		next += uint32(want)
	}
}
