package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/synfin/synfin/board"
)

// buildQEMU writes into o.out what qemu-system-aarch64 -M virt boots:
// vmlinuz, initramfs.cpio.gz, perm.img (the virtio disk holding /perm) and
// cmdline (the kernel command line).
func buildQEMU(o options, stderr io.Writer) error {
	k, err := fetchDebian(o, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	prof, err := board.Lookup(board.QEMUVirt)
	if err != nil {
		return err
	}
	if err := copyFile(k.vmlinuz, filepath.Join(o.out, "vmlinuz")); err != nil {
		return err
	}
	if err := kernelInitramfs(o, k, prof.Modules, filepath.Join(o.out, "initramfs.cpio.gz"), stderr); err != nil {
		return err
	}
	if err := buildPerm(o, filepath.Join(o.out, "perm.img")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.out, "cmdline"), []byte(cmdline(prof)+"\n"), 0o644)
}

// cmdline is the kernel command line for a board: its serial console last,
// so that it becomes /dev/console, where init logs and offers its shell.
// panic=5 reboots the box should init ever die.
func cmdline(prof *board.Profile) string {
	return "console=" + strings.TrimPrefix(prof.Console, "/dev/") + ",115200 panic=5 quiet"
}

// rpiBootSize and the layout of the SD-card image: the boot partition
// (FAT32) at 4 MiB, /perm (ext4) after it.
const rpiBootSize = 256 << 20

// rpiDTBs are the device trees the image carries: the BCM2837 (Pi 3), the
// BCM2711 (Pi 4, 400, CM4) and the BCM2712 (Pi 5) boards.
var rpiDTBs = []string{"broadcom/bcm2837-rpi-*.dtb", "broadcom/bcm2711-rpi-*.dtb", "broadcom/bcm2712-rpi-*.dtb"}

// buildRPi writes o.out/synfin-rpi.img: an SD-card image for the Pi 3, 4
// and 5 with the boot firmware, config.txt, cmdline.txt, the kernel, the
// device trees and the initramfs on a FAT32 partition, and /perm.
func buildRPi(o options, stderr io.Writer) error {
	k, err := fetchDebian(o, stderr)
	if err != nil {
		return err
	}
	bootDir := filepath.Join(o.out, "boot")
	if err := os.RemoveAll(bootDir); err != nil {
		return err
	}
	if err := os.MkdirAll(bootDir, 0o755); err != nil {
		return err
	}

	// The GPU's boot files: bootcode.bin (Pi 3), start*.elf and fixup*.dat
	// (Pi 3 and 4; the Pi 5 boots from its EEPROM).
	firmware, _ := filepath.Glob(filepath.Join(k.raspiDir, "*"))
	for _, f := range firmware {
		if st, err := os.Stat(f); err != nil || st.IsDir() {
			continue
		}
		if err := copyFile(f, filepath.Join(bootDir, filepath.Base(f))); err != nil {
			return err
		}
	}
	var ndtb int
	for _, pat := range rpiDTBs {
		dtbs, _ := filepath.Glob(filepath.Join(k.dtbDir, pat))
		if len(dtbs) == 0 {
			return fmt.Errorf("kernel %s has no device tree %s", k.version, pat)
		}
		for _, d := range dtbs {
			if err := copyFile(d, filepath.Join(bootDir, filepath.Base(d))); err != nil {
				return err
			}
			ndtb++
		}
	}
	if err := copyFile(k.vmlinuz, filepath.Join(bootDir, "vmlinuz")); err != nil {
		return err
	}
	mods, err := board.AllModules(board.RPi3, board.RPi4, board.RPi5)
	if err != nil {
		return err
	}
	if err := kernelInitramfs(o, k, mods, filepath.Join(bootDir, "initrd.img"), stderr); err != nil {
		return err
	}
	if err := writeRPiConfig(bootDir); err != nil {
		return err
	}

	bootImg := filepath.Join(o.out, "boot.vfat")
	if err := makeFAT32(bootImg, bootDir, "SYNFIN", rpiBootSize, partitionAlign/sectorSize); err != nil {
		return err
	}
	permImg := filepath.Join(o.out, "perm.img")
	if err := buildPerm(o, permImg); err != nil {
		return err
	}
	permSize := (o.permSize + partitionAlign - 1) / partitionAlign * partitionAlign
	parts := []partition{
		{typ: typeFAT32LBA, start: partitionAlign, size: rpiBootSize, image: bootImg, boot: true},
		{typ: typeLinux, start: partitionAlign + rpiBootSize, size: permSize, image: permImg},
	}
	img := filepath.Join(o.out, "synfin-rpi.img")
	if err := writeDisk(img, parts, 0x5f5f5f5f); err != nil {
		return err
	}
	os.Remove(bootImg)
	os.Remove(permImg)
	fmt.Fprintf(stderr, "mkimage: %s: kernel %s, %d device trees\n", img, k.version, ndtb)
	return nil
}

// rpiConfig is config.txt: 64-bit, Debian's (upstream) kernel with its
// device-tree names, the initramfs loaded after the kernel, and the serial
// console; the Pi 5's console is elsewhere, so it reads its own cmdline.
const rpiConfig = `# synfin: Raspberry Pi 3, 4 and 5, 64-bit, Debian's kernel
arm_64bit=1
upstream_kernel=1
enable_uart=1
kernel=vmlinuz
initramfs initrd.img followkernel

[pi5]
cmdline=cmdline-pi5.txt

[all]
`

func writeRPiConfig(bootDir string) error {
	pi4, err := board.Lookup(board.RPi4)
	if err != nil {
		return err
	}
	pi5, err := board.Lookup(board.RPi5)
	if err != nil {
		return err
	}
	for name, content := range map[string]string{
		"config.txt": rpiConfig,
		// The Pi 3 and 4 share their console, the mini UART.
		"cmdline.txt":     cmdline(pi4) + "\n",
		"cmdline-pi5.txt": cmdline(pi5) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(bootDir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
