package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// fakeModule returns a minimal relocatable ELF (as a kernel module is)
// whose .modinfo section holds the NUL-separated entries.
func fakeModule(modinfo ...string) []byte {
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := uint64(ehsize)
	strOff := infoOff + uint64(len(info))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7

	le := binary.LittleEndian
	b := make([]byte, shOff+3*shentsize)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le.PutUint16(b[16:], 1)   // ET_REL
	le.PutUint16(b[18:], 183) // EM_AARCH64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[40:], shOff)
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[58:], shentsize)
	le.PutUint16(b[60:], 3) // sections: null, .modinfo, .shstrtab
	le.PutUint16(b[62:], 2)
	copy(b[infoOff:], info)
	copy(b[strOff:], shstr)
	section := func(i int, name, typ uint32, off, size uint64) {
		sh := b[shOff+uint64(i)*shentsize:]
		le.PutUint32(sh[0:], name)
		le.PutUint32(sh[4:], typ)
		le.PutUint64(sh[24:], off)
		le.PutUint64(sh[32:], size)
		le.PutUint64(sh[48:], 1)
	}
	section(1, 1, 1, infoOff, uint64(len(info)))  // .modinfo, PROGBITS
	section(2, 10, 3, strOff, uint64(len(shstr))) // .shstrtab, STRTAB
	return b
}

func writeXZ(t *testing.T, path string, content []byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestModuleClosure(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"kernel/drivers/net", "kernel/net/core"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// virtio_net needs net_failover and failover; net_failover needs
	// failover; failover needs nothing. One is uncompressed, as older
	// kernels ship them.
	writeXZ(t, filepath.Join(dir, "kernel/drivers/net/virtio_net.ko.xz"), fakeModule("license=GPL", "depends=net_failover,failover", "name=virtio_net"))
	writeXZ(t, filepath.Join(dir, "kernel/drivers/net/net_failover.ko.xz"), fakeModule("depends=failover", "name=net_failover"))
	if err := os.WriteFile(filepath.Join(dir, "kernel/net/core/failover.ko"), fakeModule("depends=", "name=failover"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_pci.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	km, err := indexModules(dir)
	if err != nil {
		t.Fatal(err)
	}
	order, deps, missing, err := km.closure([]string{"virtio-net", "virtio_pci", "i6300esb"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"failover", "net_failover", "virtio_net"}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v (dependencies first, built-in left out)", order, want)
	}
	if !slices.Equal(missing, []string{"i6300esb"}) {
		t.Errorf("missing = %v, want [i6300esb]", missing)
	}
	dep := string(km.modulesDep(order, deps))
	want := "kernel/net/core/failover.ko:\n" +
		"kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko\n" +
		"kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko\n"
	if dep != want {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", dep, want)
	}
}

func TestModuleDependsRefusesNonELF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.ko")
	if err := os.WriteFile(path, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := moduleDepends(path); err == nil {
		t.Error("a file that is no ELF gave dependencies")
	}
}
