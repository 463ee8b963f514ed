package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestMBR(t *testing.T) {
	parts := []partition{
		{typ: typeFAT32LBA, start: 4 << 20, size: 256 << 20, boot: true},
		{typ: typeLinux, start: 260 << 20, size: 64 << 20},
	}
	b, err := mbr(parts, 0x12345678)
	if err != nil {
		t.Fatal(err)
	}
	if b[510] != 0x55 || b[511] != 0xaa {
		t.Fatal("no boot signature")
	}
	if id := binary.LittleEndian.Uint32(b[440:]); id != 0x12345678 {
		t.Errorf("disk id %#x", id)
	}
	for i, want := range []struct {
		boot       byte
		typ        byte
		lba, count uint32
	}{{0x80, 0x0c, 8192, 524288}, {0, 0x83, 532480, 131072}} {
		e := b[446+16*i:]
		got := struct {
			boot       byte
			typ        byte
			lba, count uint32
		}{e[0], e[4], binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])}
		if got != want {
			t.Errorf("partition %d = %+v, want %+v", i+1, got, want)
		}
	}
	if _, err := mbr([]partition{{start: 100, size: 512}}, 0); err == nil {
		t.Error("an unaligned partition was accepted")
	}
	if _, err := mbr(make([]partition, 5), 0); err == nil {
		t.Error("five primary partitions were accepted")
	}
}

// TestDiskReadBySfdisk writes a small disk image and has sfdisk read its
// partition table back.
func TestDiskReadBySfdisk(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed (make image-deps)")
	}
	dir := t.TempDir()
	fs1 := filepath.Join(dir, "p1")
	if err := os.WriteFile(fs1, bytes.Repeat([]byte{0xa5}, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	parts := []partition{{typ: typeFAT32LBA, start: partitionAlign, size: partitionAlign, image: fs1, boot: true}}
	if err := writeDisk(img, parts, 1); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sfdisk", "--dump", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "start=        8192, size=        8192, type=c, bootable") {
		t.Errorf("sfdisk --dump:\n%s", out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2*partitionAlign || b[partitionAlign] != 0xa5 || b[partitionAlign+4095] != 0xa5 {
		t.Errorf("partition content not at its offset (image %d bytes)", len(b))
	}
	parts[0].size = 2048
	if err := writeDisk(img, parts, 1); err == nil {
		t.Error("a file system larger than its partition was accepted")
	}
}

func TestInitramfs(t *testing.T) {
	ir := newInitramfs([]byte("\x7fELF firmware"))
	ir.addFile("lib/modules/6.1/kernel/net/a.ko.xz", []byte("module"), 0o644)
	ir.addFile("lib/modules/6.1/modules.dep", []byte("kernel/net/a.ko.xz:\n"), 0o644)
	var buf bytes.Buffer
	if err := ir.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := readInitramfs(&buf)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]cpio.Record{}
	inodes := map[uint64]string{}
	for _, r := range recs {
		if r.Mode&0o170000 != 0o040000 {
			if parent := filepath.Dir(r.Name); parent != "." {
				if _, ok := seen[parent]; !ok {
					t.Errorf("%s comes before its directory %s", r.Name, parent)
				}
			}
		}
		if other, dup := inodes[r.Ino]; dup {
			t.Errorf("%s shares inode %d with %s", r.Name, r.Ino, other)
		}
		inodes[r.Ino] = r.Name
		seen[r.Name] = r
	}
	init, ok := seen["init"]
	if !ok || init.Mode != 0o100755 {
		t.Errorf("init: %+v, want a regular file with mode 0755", init.Info)
	}
	con := seen["dev/console"]
	if con.Mode&0o170000 != 0o020000 || con.Rmajor != 5 || con.Rminor != 1 {
		t.Errorf("dev/console: %+v, want the character device 5,1", con.Info)
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "perm", "lib/modules/6.1/kernel/net"} {
		if _, ok := seen[d]; !ok {
			t.Errorf("no directory %s", d)
		}
	}
}

// readInitramfs reads back an archive writeTo wrote.
func readInitramfs(r io.Reader) ([]cpio.Record, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	return cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
}
