package main

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"

	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/nic/impair"
)

// nic.impair maps onto the wrapper: the rate from bits to bytes, the
// direction to the side impaired, the inbound seed one past the outbound.
func TestImpairLinkMapsTheConfig(t *testing.T) {
	c := config.Impair{
		Seed: 7, Loss: 0.01, Delay: 5 * time.Millisecond, Jitter: time.Millisecond,
		Duplicate: 0.02, Corrupt: 0.001, Rate: 100_000_000, QueueLimit: 50,
	}
	want := impair.Config{
		Seed: 7, Loss: 0.01, Delay: 5 * time.Millisecond, Jitter: time.Millisecond,
		Duplicate: 0.02, Corrupt: 0.001, Rate: 12_500_000, Burst: impair.DefaultBurst, QueueLimit: 50,
	}
	wantIn := want
	wantIn.Seed = 8
	for _, tc := range []struct {
		direction string
		out, in   impair.Config
	}{
		{"both", want, wantIn},
		{"out", want, impair.Config{}},
		{"in", impair.Config{}, wantIn},
	} {
		c.Direction = tc.direction
		e, err := impairLink(channel.New(1, 1500, ""), faketime.NewManualClock(), c)
		if err != nil {
			t.Fatal(err)
		}
		out, in := e.Configs()
		if out != tc.out || in != tc.in {
			t.Errorf("direction %s: out %+v, in %+v; want %+v and %+v", tc.direction, out, in, tc.out, tc.in)
		}
	}
}
