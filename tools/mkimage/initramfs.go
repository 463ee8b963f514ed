package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/u-root/u-root/pkg/cpio"
)

// initramfs is the content of an initramfs: the firmware as /init, the
// directories init mounts on, the device nodes the kernel and Go's runtime
// need before devtmpfs is mounted, and the kernel modules.
type initramfs struct {
	records []cpio.Record
}

func newInitramfs(firmware []byte) *initramfs {
	r := &initramfs{}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "perm", "etc", "lib/modules"} {
		r.addDir(d)
	}
	// The kernel opens /dev/console as init's stdin, stdout and stderr;
	// Go's runtime opens /dev/null for any of them that is missing.
	r.add(cpio.CharDev("dev/console", 0o600, 5, 1))
	r.add(cpio.CharDev("dev/null", 0o666, 1, 3))
	r.add(cpio.StaticFile("init", string(firmware), 0o755))
	return r
}

func (r *initramfs) add(rec cpio.Record) {
	// Regular files with a shared inode number and more than one link
	// are hard links to the kernel's unpacker: give each its own.
	rec.Ino = uint64(len(r.records) + 1)
	rec.NLink = 1
	r.records = append(r.records, rec)
}

// addFile adds content as the regular file name (a path without leading
// slash), with its parent directories.
func (r *initramfs) addFile(name string, content []byte, perm uint64) {
	r.addDir(path.Dir(name))
	r.add(cpio.StaticFile(name, string(content), perm))
}

// addDir adds the directory name and its missing parents, parents first.
func (r *initramfs) addDir(name string) {
	if name == "." || name == "/" || r.has(name) {
		return
	}
	r.addDir(path.Dir(name))
	r.add(cpio.Directory(name, 0o755))
}

func (r *initramfs) has(name string) bool {
	for _, rec := range r.records {
		if rec.Name == name {
			return true
		}
	}
	return false
}

// write writes the archive, gzip-compressed, to path.
func (r *initramfs) write(p string) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := r.writeTo(f); err != nil {
		f.Close()
		return fmt.Errorf("initramfs %s: %w", p, err)
	}
	return f.Close()
}

func (r *initramfs) writeTo(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	cw := cpio.Newc.Writer(zw)
	// Parents first: the kernel's unpacker does not create directories.
	records := make([]cpio.Record, 0, len(r.records))
	for _, rec := range r.records {
		if rec.Mode&0o170000 == 0o040000 {
			records = append(records, rec)
		}
	}
	for _, rec := range r.records {
		if rec.Mode&0o170000 != 0o040000 {
			records = append(records, rec)
		}
	}
	if err := cpio.WriteRecords(cw, records); err != nil {
		return err
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return err
	}
	return zw.Close()
}
