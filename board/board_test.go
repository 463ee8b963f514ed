package board

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMatchModels(t *testing.T) {
	for _, tc := range []struct{ model, want string }{
		{"Raspberry Pi 3 Model B Rev 1.2", RPi3},
		{"Raspberry Pi 3 Model B Plus Rev 1.3", RPi3},
		{"Raspberry Pi 4 Model B Rev 1.5", RPi4},
		{"Raspberry Pi Compute Module 4 Rev 1.0", RPi4},
		{"Raspberry Pi 5 Model B Rev 1.0", RPi5},
		{"linux,dummy-virt", QEMUVirt},
	} {
		p, err := Match(tc.model)
		if err != nil {
			t.Errorf("Match(%q): %v", tc.model, err)
			continue
		}
		if p.Name != tc.want {
			t.Errorf("Match(%q) = %s, want %s", tc.model, p.Name, tc.want)
		}
	}
	if p, err := Match("Pine64 RockPro64"); err == nil {
		t.Errorf("Match of an unknown board = %s, want an error", p.Name)
	}
}

func writeDT(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	dt := filepath.Join(root, "proc/device-tree")
	if err := os.MkdirAll(dt, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dt, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		// The firmware reads the raw property: NUL-terminated.
		{"rpi4 model", map[string]string{"model": "Raspberry Pi 4 Model B Rev 1.4\x00"}, RPi4},
		// QEMU's virt machine has no model, only a compatible string.
		{"qemu compatible", map[string]string{"compatible": "linux,dummy-virt\x00"}, QEMUVirt},
		{"rpi5 compatible list", map[string]string{"compatible": "raspberrypi,5-model-b\x00brcm,bcm2712\x00", "model": "Raspberry Pi 5 Model B Rev 1.0\x00"}, RPi5},
		{"no device tree", nil, Host},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.files != nil {
				root = writeDT(t, tc.files)
			}
			p, err := Detect(root)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tc.want {
				t.Errorf("Detect = %s, want %s", p.Name, tc.want)
			}
		})
	}
	if _, err := Detect(writeDT(t, map[string]string{"model": "Some Other Board\x00"})); err == nil {
		t.Error("Detect of an unknown model succeeded, want an error")
	}
}

func TestResolve(t *testing.T) {
	root := writeDT(t, map[string]string{"model": "Raspberry Pi 3 Model B Rev 1.2\x00"})
	p, err := Resolve(Auto, root)
	if err != nil || p.Name != RPi3 {
		t.Fatalf("Resolve(auto) = %v, %v; want rpi3", p, err)
	}
	p, err = Resolve(QEMUVirt, root)
	if err != nil || p.Name != QEMUVirt {
		t.Fatalf("Resolve(qemu-virt) = %v, %v; want qemu-virt regardless of the device tree", p, err)
	}
	if _, err := Resolve("rpi9", root); err == nil {
		t.Error("Resolve of an unknown name succeeded")
	}
}

func TestProfilesComplete(t *testing.T) {
	for _, name := range Names() {
		p, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Interface == "" {
			t.Errorf("%s: no interface", name)
		}
		if name == Host {
			if len(p.Modules) > 0 || p.Perm != "" || p.Watchdog != "" {
				t.Errorf("host profile claims machine resources: %+v", p)
			}
			continue
		}
		if p.Console == "" || p.Perm == "" || !slices.Contains(p.Modules, "ext4") {
			t.Errorf("%s: a booting board needs a console and an ext4 /perm: %+v", name, p)
		}
		if got := p.Defaults["nic.interface"]; got != p.Interface {
			t.Errorf("%s: default nic.interface %q differs from the profile's %q", name, got, p.Interface)
		}
	}
}

func TestAllModules(t *testing.T) {
	mods, err := AllModules(RPi3, RPi4, RPi5)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"smsc95xx", "genet", "macb", "ext4"} {
		if !slices.Contains(mods, m) {
			t.Errorf("AllModules lacks %s: %v", m, mods)
		}
	}
	seen := map[string]bool{}
	for _, m := range mods {
		if seen[m] {
			t.Errorf("AllModules lists %s twice", m)
		}
		seen[m] = true
	}
	if _, err := AllModules("nope"); err == nil {
		t.Error("AllModules of an unknown profile succeeded")
	}
}

func TestModuleName(t *testing.T) {
	for file, want := range map[string]string{
		"kernel/drivers/leds/leds-gpio.ko.xz": "leds_gpio",
		"kernel/fs/ext4/ext4.ko":              "ext4",
		"kernel/lib/crc16.ko.zst":             "crc16",
		"sdhci-iproc":                         "sdhci_iproc",
	} {
		if got := ModuleName(file); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", file, got, want)
		}
	}
}
