package mgmt

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestPowerCommands(t *testing.T) {
	var got []PowerAction
	sh := NewShell(fakeTCBs{}, WithPower(func(a PowerAction) error {
		got = append(got, a)
		return nil
	}))
	for _, tc := range []struct {
		line string
		want PowerAction
	}{{"reboot", Reboot}, {"poweroff", PowerOff}} {
		var out strings.Builder
		if st := sh.Run(context.Background(), tc.line, &out); st != StatusOK {
			t.Fatalf("%s: status %d, output %q", tc.line, st, out.String())
		}
		if !strings.Contains(out.String(), tc.want.String()+": going down") {
			t.Errorf("%s: output %q", tc.line, out.String())
		}
		if len(got) == 0 || got[len(got)-1] != tc.want {
			t.Errorf("%s: power function got %v, want %v last", tc.line, got, tc.want)
		}
	}

	var out strings.Builder
	if st := sh.Run(context.Background(), "reboot now", &out); st != StatusUsage || len(got) != 2 {
		t.Errorf("reboot with an argument: status %d, calls %v; want a usage error and no call", st, got)
	}
}

func TestPowerUnavailable(t *testing.T) {
	var out strings.Builder
	if st := NewShell(fakeTCBs{}).Run(context.Background(), "poweroff", &out); st != StatusError {
		t.Errorf("poweroff without WithPower: status %d, want %d", st, StatusError)
	}
	if !strings.Contains(out.String(), "not available") {
		t.Errorf("output %q does not say why", out.String())
	}

	sh := NewShell(fakeTCBs{}, WithPower(func(PowerAction) error { return errors.New("watchdog busy") }))
	out.Reset()
	if st := sh.Run(context.Background(), "reboot", &out); st != StatusError || !strings.Contains(out.String(), "reboot: watchdog busy") {
		t.Errorf("failing power function: status %d, output %q", st, out.String())
	}
}

func TestShowSystem(t *testing.T) {
	sh := NewShell(fakeTCBs{}, WithSystem(func() any {
		return map[string]any{"board": "qemu-virt", "memory": map[string]any{"rss_bytes": 12345}}
	}))
	var out strings.Builder
	if st := sh.Run(context.Background(), "show system", &out); st != StatusOK {
		t.Fatalf("status %d: %s", st, out.String())
	}
	for _, want := range []string{"board", "qemu-virt", "memory.rss_bytes", "12345"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("show system lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if st := sh.Run(context.Background(), "show system --json", &out); st != StatusOK || !strings.Contains(out.String(), `"rss_bytes": 12345`) && !strings.Contains(out.String(), `"rss_bytes":12345`) {
		t.Errorf("show system --json: status %d, %s", st, out.String())
	}
	out.Reset()
	if st := NewShell(fakeTCBs{}).Run(context.Background(), "show system", &out); st != StatusError {
		t.Errorf("show system without WithSystem: status %d", st)
	}
}
