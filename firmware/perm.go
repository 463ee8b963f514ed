package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ext4 superblock: at byte 1024 of the device; magic at 0x38, the volume
// label (16 bytes, NUL-padded) at 0x78.
const (
	superblockOffset = 1024
	ext4MagicOffset  = 0x38
	ext4LabelOffset  = 0x78
	ext4Magic        = 0xef53
)

// ext4Label returns the label of the ext2/3/4 file system on r, and
// whether r holds one.
func ext4Label(r io.ReaderAt) (string, bool) {
	sb := make([]byte, ext4LabelOffset+16)
	if _, err := r.ReadAt(sb, superblockOffset); err != nil {
		return "", false
	}
	if binary.LittleEndian.Uint16(sb[ext4MagicOffset:]) != ext4Magic {
		return "", false
	}
	label, _, _ := bytes.Cut(sb[ext4LabelOffset:], []byte{0})
	return string(label), true
}

// findByLabel returns the block device (under devDir, as listed in
// sysBlock, normally /dev and /sys/class/block) holding an ext4 file
// system labelled label.
func findByLabel(sysBlock, devDir, label string) (string, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		dev := filepath.Join(devDir, e.Name())
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		l, ok := ext4Label(f)
		f.Close()
		if ok && l == label {
			return dev, nil
		}
	}
	return "", fmt.Errorf("no ext4 file system labelled %q", label)
}

// resolvePerm turns the board's /perm spec (a device, or LABEL=name) into
// a device, waiting up to timeout for the driver to make it appear.
func resolvePerm(spec, sysBlock, devDir string, timeout time.Duration) (string, error) {
	label, byLabel := strings.CutPrefix(spec, "LABEL=")
	if !byLabel {
		return spec, waitForPath(spec, timeout)
	}
	deadline := time.Now().Add(timeout)
	for {
		dev, err := findByLabel(sysBlock, devDir, label)
		if err == nil || time.Now().After(deadline) {
			return dev, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
