package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synfin/synfin/mgmt"
)

func TestSignalsAskForPower(t *testing.T) {
	in := &initSystem{log: slog.New(slog.NewTextHandler(io.Discard, nil)), power: make(chan mgmt.PowerAction, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in.handleSignals(ctx)
	for _, tc := range []struct {
		sig  unix.Signal
		want mgmt.PowerAction
	}{{unix.SIGTERM, mgmt.PowerOff}, {unix.SIGINT, mgmt.Reboot}} {
		if err := unix.Kill(os.Getpid(), tc.sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-in.power:
			if got != tc.want {
				t.Errorf("%v asked for %v, want %v", tc.sig, got, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: no power request", tc.sig)
		}
	}
}

func TestRequestPowerOnce(t *testing.T) {
	in := &initSystem{power: make(chan mgmt.PowerAction, 1)}
	if err := in.requestPower(mgmt.Reboot); err != nil {
		t.Fatal(err)
	}
	if err := in.requestPower(mgmt.PowerOff); err == nil {
		t.Error("a second power request while going down was accepted")
	}
}

func TestReapOrphans(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reapOrphans(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// A child nobody waits for, as an orphan handed to init would be.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	stat := "/proc/" + strconv.Itoa(pid) + "/stat"
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(stat)
		if errors.Is(err, os.ErrNotExist) {
			return // reaped: no zombie left
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(stat)
			t.Fatalf("child %d not reaped: %s", pid, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
