package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// debianKernel is Debian's arm64 kernel package (and the Raspberry Pi boot
// firmware package), unpacked.
type debianKernel struct {
	version    string // uname -r, e.g. 6.12.57+deb13-arm64
	vmlinuz    string
	modulesDir string // /usr/lib/modules/VERSION
	dtbDir     string // the device trees
	raspiDir   string // raspi-firmware's boot files
}

// fetchDebian downloads, once, the kernel and raspi-firmware packages into
// o.cache and unpacks them there.
func fetchDebian(o options, stderr io.Writer) (*debianKernel, error) {
	debs := filepath.Join(o.cache, "debs", o.suite)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	kernelDeb, _ := filepath.Glob(filepath.Join(debs, "linux-image-*-arm64_*_arm64.deb"))
	raspiDeb, _ := filepath.Glob(filepath.Join(debs, "raspi-firmware_*.deb"))
	if len(kernelDeb) != 1 || len(raspiDeb) != 1 {
		// apt resolves relative Dir:: paths against its own folders.
		dir, err := filepath.Abs(filepath.Join(o.cache, "apt", o.suite))
		if err != nil {
			return nil, err
		}
		a := &apt{dir: dir, mirror: o.mirror, suite: o.suite}
		fmt.Fprintf(stderr, "mkimage: fetching Debian %s arm64 packages from %s\n", o.suite, o.mirror)
		if err := a.prepare(); err != nil {
			return nil, err
		}
		if err := a.update(); err != nil {
			return nil, err
		}
		kernelPkg, err := a.dependency("linux-image-arm64", "linux-image-")
		if err != nil {
			return nil, err
		}
		for _, old := range append(kernelDeb, raspiDeb...) {
			os.Remove(old)
		}
		if err := a.download(debs, kernelPkg, "raspi-firmware"); err != nil {
			return nil, err
		}
		kernelDeb, _ = filepath.Glob(filepath.Join(debs, "linux-image-*-arm64_*_arm64.deb"))
		raspiDeb, _ = filepath.Glob(filepath.Join(debs, "raspi-firmware_*.deb"))
		if len(kernelDeb) != 1 || len(raspiDeb) != 1 {
			return nil, fmt.Errorf("after download: kernel packages %v, raspi-firmware packages %v", kernelDeb, raspiDeb)
		}
	}

	root := filepath.Join(o.cache, "root", o.suite)
	stamp := filepath.Join(root, ".unpacked")
	want := filepath.Base(kernelDeb[0]) + "\n" + filepath.Base(raspiDeb[0]) + "\n"
	if got, err := os.ReadFile(stamp); err != nil || string(got) != want {
		if err := os.RemoveAll(root); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
		for _, deb := range []string{kernelDeb[0], raspiDeb[0]} {
			if err := run("dpkg-deb", "-x", deb, root); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
			return nil, err
		}
	}

	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return nil, fmt.Errorf("%s: want one kernel in boot/, found %v", kernelDeb[0], kernels)
	}
	version := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	k := &debianKernel{
		version:    version,
		vmlinuz:    kernels[0],
		modulesDir: filepath.Join(root, "usr/lib/modules", version),
		dtbDir:     filepath.Join(root, "usr/lib/linux-image-"+version),
		raspiDir:   filepath.Join(root, "usr/lib/raspi-firmware"),
	}
	for _, d := range []string{k.modulesDir, k.dtbDir, k.raspiDir} {
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("unpacked packages: %w", err)
		}
	}
	return k, nil
}
