package tcpext_test

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/synfin/synfin/tcpext"
)

// tuneConn accepts a connection whose peer scales its window by 7, and
// returns the endpoint, our ISS and a function that sends n in-order
// segments of 1000 bytes and reads them, returning the last ACK's window
// in bytes.
func tuneConn(t *testing.T, d *dut) (tcpip.Endpoint, func(n int) int) {
	t.Helper()
	c, iss := d.acceptWithOptions(tcpext.SegmentOptions{WindowScale: 7}, tcpext.SegmentOptions{WindowScale: -1})
	seq := uint32(101)
	payload := bytes.Repeat([]byte("r"), 1000)
	return c, func(n int) int {
		t.Helper()
		for range n {
			d.inject(seg{srcPort: 40000, dstPort: 7, seq: seq, ack: iss + 1, flags: ack, window: 65535, payload: payload})
			seq += 1000
			if got, err := read(t, c); err != nil || len(got) != 1000 {
				t.Fatalf("read %d bytes, %v", len(got), err)
			}
		}
		window := -1
		for {
			s, ok := d.poll()
			if !ok {
				return window
			}
			window = int(s.Window) << d.proto.TCBs()[1].RcvWScale
		}
	}
}

// Receive-buffer auto-tuning: once a round trip has passed, the buffer
// grows to twice what the application read in it, and the window offered
// grows with it.
func TestReceiveBufferAutoTuning(t *testing.T) {
	d := newDUT(t, testOptions())
	_, traffic := tuneConn(t, d)
	if w := traffic(700); w > 1<<20 {
		t.Fatalf("window %d before any tuning, want at most the 1 MiB buffer", w)
	}
	d.clock.Advance(time.Millisecond) // the RTT is 0 on the manual clock: the floor applies
	traffic(2)
	tcb := d.proto.TCBs()[1]
	// The first read past the round trip closes the measurement: 701
	// segments were read in it.
	if tcb.RecvBuffer != 2*701000 {
		t.Fatalf("recv_buffer %d after reading 701000 bytes in a round trip, want %d", tcb.RecvBuffer, 2*701000)
	}
	if w := traffic(2); w <= 1<<20 {
		t.Fatalf("window %d after tuning, want above the initial 1 MiB", w)
	}
}

// SO_RCVBUF fixes the buffer: no tuning, and the window stays within it.
func TestReceiveBufferFixedBySORCVBUF(t *testing.T) {
	d := newDUT(t, testOptions())
	c, traffic := tuneConn(t, d)
	c.SocketOptions().SetReceiveBufferSize(64<<10, true)
	traffic(700)
	d.clock.Advance(time.Millisecond)
	traffic(2)
	if w := traffic(2); w > 64<<10 {
		t.Fatalf("window %d with SO_RCVBUF 64 KiB", w)
	}
	if tcb := d.proto.TCBs()[1]; tcb.RecvBuffer != 64<<10 {
		t.Fatalf("recv_buffer %d, want the 64 KiB set", tcb.RecvBuffer)
	}
}

// Send-buffer auto-tuning: the buffer follows twice the congestion window.
func TestSendBufferFollowsCwnd(t *testing.T) {
	d := newDUT(t, testOptions())
	c, iss := d.acceptWithOptions(tcpext.SegmentOptions{WindowScale: 7}, tcpext.SegmentOptions{WindowScale: -1})
	// The handshake's ACK offered a window of 1: open it.
	d.inject(seg{srcPort: 40000, dstPort: 7, seq: 101, ack: iss + 1, flags: ack, window: 65535})
	write(t, c, bytes.Repeat([]byte("s"), 1<<20))
	acked := iss + 1
	for range 2000 {
		s, ok := d.poll()
		if !ok {
			break
		}
		end := uint32(s.Seq) + uint32(len(s.Payload))
		if end-acked >= 2*1448 {
			acked = end
			d.inject(seg{srcPort: 40000, dstPort: 7, seq: 101, ack: acked, flags: ack, window: 65535})
		}
	}
	tcb := d.proto.TCBs()[1]
	if tcb.Cwnd <= 1<<19 || tcb.SendBuffer != 2*int(tcb.Cwnd) {
		t.Fatalf("cwnd %d send_buffer %d: want cwnd past 512 KiB and the buffer at twice it", tcb.Cwnd, tcb.SendBuffer)
	}
}
