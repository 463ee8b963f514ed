package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeExt4 writes a file that starts like an ext4 file system labelled
// label.
func fakeExt4(t *testing.T, path, label string) {
	t.Helper()
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint16(b[superblockOffset+ext4MagicOffset:], ext4Magic)
	copy(b[superblockOffset+ext4LabelOffset:], label)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFindPermByLabel(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys/class/block"), filepath.Join(root, "dev")
	for _, d := range []string{sys, dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// mmcblk0 is the whole card (an MBR, no file system), p1 the FAT
	// boot partition, p2 /perm.
	for name, label := range map[string]string{"mmcblk0p2": "perm", "sda1": "other"} {
		fakeExt4(t, filepath.Join(dev, name), label)
	}
	for _, name := range []string{"mmcblk0", "mmcblk0p1"} {
		if err := os.WriteFile(filepath.Join(dev, name), make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"mmcblk0", "mmcblk0p1", "mmcblk0p2", "sda1", "loop0"} {
		if err := os.Mkdir(filepath.Join(sys, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	got, err := resolvePerm("LABEL=perm", sys, dev, time.Second)
	if err != nil || got != filepath.Join(dev, "mmcblk0p2") {
		t.Errorf("resolvePerm(LABEL=perm) = %q, %v; want mmcblk0p2", got, err)
	}
	start := time.Now()
	if got, err := resolvePerm("LABEL=nothing", sys, dev, 300*time.Millisecond); err == nil {
		t.Errorf("found %q for a label no device has", got)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("gave up before the timeout: a slow driver would be missed")
	}
	if got, err := resolvePerm(filepath.Join(dev, "sda1"), sys, dev, time.Second); err != nil || got != filepath.Join(dev, "sda1") {
		t.Errorf("resolvePerm(device) = %q, %v", got, err)
	}
}
