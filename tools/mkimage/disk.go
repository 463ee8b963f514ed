package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	sectorSize = 512
	// partitionAlign is where partitions start and what their sizes are
	// rounded to: 4 MiB suits SD cards' erase blocks.
	partitionAlign = 4 << 20
	// MBR partition types.
	typeFAT32LBA = 0x0c
	typeLinux    = 0x83
)

// partition is one MBR partition of an image, with the file system image
// that fills it.
type partition struct {
	typ   byte
	start int64 // bytes, aligned
	size  int64 // bytes, aligned
	image string
	boot  bool
}

// mbr returns a DOS partition table (the first sector) for parts.
func mbr(parts []partition, diskID uint32) ([]byte, error) {
	if len(parts) > 4 {
		return nil, fmt.Errorf("mbr: %d partitions, at most 4", len(parts))
	}
	b := make([]byte, sectorSize)
	binary.LittleEndian.PutUint32(b[440:], diskID)
	for i, p := range parts {
		if p.start%sectorSize != 0 || p.size%sectorSize != 0 {
			return nil, fmt.Errorf("mbr: partition %d not sector aligned", i+1)
		}
		e := b[446+16*i : 446+16*(i+1)]
		if p.boot {
			e[0] = 0x80
		}
		// CHS fields unused: LBA only, as every modern reader does.
		copy(e[1:4], []byte{0xfe, 0xff, 0xff})
		e[4] = p.typ
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], uint32(p.start/sectorSize))
		binary.LittleEndian.PutUint32(e[12:], uint32(p.size/sectorSize))
	}
	b[510], b[511] = 0x55, 0xaa
	return b, nil
}

// writeDisk writes a disk image at path: the partition table, then each
// partition's file system image at its offset. Gaps stay sparse.
func writeDisk(path string, parts []partition, diskID uint32) error {
	table, err := mbr(parts, diskID)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(table); err != nil {
		return err
	}
	end := int64(partitionAlign)
	for _, p := range parts {
		if err := copyAt(f, p.image, p.start, p.size); err != nil {
			return err
		}
		end = max(end, p.start+p.size)
	}
	if err := f.Truncate(end); err != nil {
		return err
	}
	return f.Close()
}

func copyAt(dst *os.File, src string, off, limit int64) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Stat()
	if err != nil {
		return err
	}
	if st.Size() > limit {
		return fmt.Errorf("%s: %d bytes do not fit the partition's %d", src, st.Size(), limit)
	}
	// Blocks of zeros are skipped, so the image stays as sparse as the
	// file systems in it.
	buf := make([]byte, 1<<16)
	for pos := off; ; {
		n, err := io.ReadFull(s, buf)
		if n > 0 {
			if !allZero(buf[:n]) {
				if _, werr := dst.WriteAt(buf[:n], pos); werr != nil {
					return fmt.Errorf("copy %s into the image: %w", src, werr)
				}
			}
			pos += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("copy %s into the image: %w", src, err)
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// makeFAT32 writes a FAT32 file system image of size bytes at path holding
// the files under dir, with mtools: no loop mount, no root. hidden is the
// partition's first sector, which FAT records.
func makeFAT32(path, dir, label string, size, hidden int64) error {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(path, size); err != nil {
		return err
	}
	if err := run("mformat", "-i", path, "-F", "-H", strconv.FormatInt(hidden, 10), "-v", label, "::"); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	args := []string{"-i", path, "-s", "-p", "-Q"}
	for _, e := range entries {
		args = append(args, filepath.Join(dir, e.Name()))
	}
	return run("mcopy", append(args, "::")...)
}

// makeExt4 writes an ext4 file system image of size bytes at path holding
// the files under dir (mke2fs -d: no loop mount, no root).
func makeExt4(path, dir, label string, size int64) error {
	os.Remove(path)
	return run("mkfs.ext4", "-q", "-F", "-L", label, "-E", "root_owner=0:0", "-d", dir, path, strconv.FormatInt(size/1024, 10)+"k")
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return nil
}
