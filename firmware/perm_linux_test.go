package main

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synfin/synfin/board"
)

func TestInitConfigFallback(t *testing.T) {
	prof, err := board.Lookup(board.QEMUVirt)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("board: auto\nnet: {address: 10.0.2.99/24}\nservices: {echo: {}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("net: {address: not-an-address}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, logged string
		addr               string
		echo               bool
	}{
		{"good", good, "config loaded", "10.0.2.99/24", true},
		{"missing", filepath.Join(dir, "none.yaml"), "NO CONFIG: using built-in defaults", "10.0.2.15/24", false},
		{"bad", bad, "BAD CONFIG: using built-in defaults", "10.0.2.15/24", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged strings.Builder
			cfg := loadInitConfig(slog.New(slog.NewTextHandler(&logged, nil)), prof, tc.path)
			if !strings.Contains(logged.String(), tc.logged) {
				t.Errorf("console says %q, want %q", logged.String(), tc.logged)
			}
			if tc.name == "bad" && !strings.Contains(logged.String(), "net.address") {
				t.Errorf("console does not name the bad key: %q", logged.String())
			}
			// The board's defaults hold, so the management shell and SSH
			// come up on the board's network.
			if cfg.Net.Address != netip.MustParsePrefix(tc.addr) || cfg.NIC.Interface != "eth0" || cfg.Mgmt.SSH.Port != 22 {
				t.Errorf("config: nic %+v net %+v ssh %+v", cfg.NIC, cfg.Net, cfg.Mgmt.SSH)
			}
			if cfg.Board != board.QEMUVirt {
				t.Errorf("board = %q, want the booted %q", cfg.Board, board.QEMUVirt)
			}
			if cfg.Services.Echo.Enabled() != tc.echo {
				t.Errorf("echo enabled = %v, want %v", cfg.Services.Echo.Enabled(), tc.echo)
			}
		})
	}
}

// TestBuiltinConfigEveryBoard guards the fallback itself: a board whose
// defaults did not validate would leave init without any config.
func TestBuiltinConfigEveryBoard(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, name := range board.Names() {
		prof, err := board.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := builtinConfig(log, prof)
		if cfg.Board != name || cfg.NIC.Interface != prof.Interface {
			t.Errorf("%s: built-in config has board %q, NIC %q", name, cfg.Board, cfg.NIC.Interface)
		}
	}
}
