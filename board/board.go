// Package board holds the board profiles the firmware runs on: which network
// interface it takes over, which kernel modules it loads when it is PID 1,
// where its console, status LED, hardware watchdog and persistent /perm
// storage are, and how the board is recognised from the device tree.
//
// The profiles are data only; the firmware does the work they describe.
package board

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Names of the profiles, as the config key "board" spells them. Auto is not
// a profile: it asks for detection from the device tree.
const (
	Host     = "host"
	QEMUVirt = "qemu-virt"
	RPi3     = "rpi3"
	RPi4     = "rpi4"
	RPi5     = "rpi5"
	Auto     = "auto"
)

// Profile describes one board.
type Profile struct {
	// Name is the profile's name, e.g. "rpi4".
	Name string
	// Interface is the network interface the firmware takes over.
	Interface string
	// Modules are the kernel modules to load at boot, by module name
	// (dashes and underscores are the same); their dependencies come along.
	// A module the kernel has built in, or that is missing, is skipped.
	Modules []string
	// Console is the serial console device, e.g. /dev/ttyAMA0.
	Console string
	// LED is the status LED's name under /sys/class/leds; empty for none.
	LED string
	// Watchdog is the hardware watchdog device; empty for none.
	Watchdog string
	// Perm names the ext4 /perm file system: a block device, or
	// LABEL=name for whichever device carries that file-system label (SD
	// cards are not numbered alike on every board and kernel). Empty for
	// none, in which case /perm lives in memory.
	Perm string
	// Defaults are config values that differ from the config's own
	// defaults on this board, by config key. The config file and the
	// environment still override them.
	Defaults map[string]string

	// models are substrings of /proc/device-tree/model (or, for boards
	// whose device tree has no model, of its compatible strings) that
	// identify the board.
	models []string
}

// PermLabel is the file-system label of /perm in the boot images.
const PermLabel = "LABEL=perm"

// The modules every booting board needs for /perm: ext4, and the crc32c
// it asks the crypto API for when mounting (a soft dependency, which
// modules.dep does not list).
var permModules = []string{"crc32c_generic", "ext4"}

var profiles = []*Profile{
	{
		// The firmware as a process on a Linux host or in a netns lab: it
		// owns nothing of the machine.
		Name:      Host,
		Interface: "veth-dut",
	},
	{
		Name:      QEMUVirt,
		Interface: "eth0",
		// virtio-pci, the PL011 UART and AF_PACKET are built into
		// Debian's arm64 kernel; the NIC, the disk and the watchdog are not.
		Modules:  slices.Concat([]string{"virtio_net", "virtio_blk", "i6300esb"}, permModules),
		Console:  "/dev/ttyAMA0",
		Watchdog: "/dev/watchdog",
		Perm:     PermLabel,
		Defaults: map[string]string{
			// QEMU's user-mode network: the guest is 10.0.2.15 behind
			// a NAT router at 10.0.2.2.
			"nic.interface": "eth0",
			"net.address":   "10.0.2.15/24",
			"net.gateway":   "10.0.2.2",
		},
		models: []string{"linux,dummy-virt", "QEMU"},
	},
	{
		Name:      RPi3,
		Interface: "eth0",
		// The 3B's LAN9514 (smsc95xx) and the 3B+'s LAN7515 (lan78xx)
		// hang off the DWC2 USB controller; the SD card is on the SDHOST
		// controller.
		Modules:  slices.Concat([]string{"dwc2", "smsc95xx", "lan78xx", "bcm2835", "bcm2835_wdt", "leds_gpio"}, permModules),
		Console:  "/dev/ttyS1",
		LED:      "ACT",
		Watchdog: "/dev/watchdog",
		Perm:     PermLabel,
		Defaults: map[string]string{"nic.interface": "eth0"},
		models:   []string{"Raspberry Pi 3", "Raspberry Pi Compute Module 3", "Raspberry Pi Zero 2"},
	},
	{
		Name:      RPi4,
		Interface: "eth0",
		// GENET is the on-chip ethernet, with its MDIO bus and PHY
		// driver (neither a symbol dependency); the SD card sits on
		// EMMC2 (sdhci-iproc).
		Modules:  slices.Concat([]string{"genet", "mdio_bcm_unimac", "broadcom", "sdhci_iproc", "bcm2835_wdt", "leds_gpio"}, permModules),
		Console:  "/dev/ttyS1",
		LED:      "ACT",
		Watchdog: "/dev/watchdog",
		Perm:     PermLabel,
		Defaults: map[string]string{"nic.interface": "eth0"},
		models:   []string{"Raspberry Pi 4", "Raspberry Pi 400", "Raspberry Pi Compute Module 4"},
	},
	{
		Name:      RPi5,
		Interface: "eth0",
		// The ethernet MAC (Cadence GEM, macb) sits behind the RP1
		// south bridge; the SD card is on the BCM2712's SDHCI.
		Modules:  slices.Concat([]string{"macb", "sdhci_brcmstb", "bcm2835_wdt", "leds_gpio"}, permModules),
		Console:  "/dev/ttyAMA10",
		LED:      "ACT",
		Watchdog: "/dev/watchdog",
		Perm:     PermLabel,
		Defaults: map[string]string{"nic.interface": "eth0"},
		models:   []string{"Raspberry Pi 5", "Raspberry Pi Compute Module 5"},
	},
}

// Names returns the names of every profile.
func Names() []string {
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.Name
	}
	return names
}

// Lookup returns the profile called name.
func Lookup(name string) (*Profile, error) {
	for _, p := range profiles {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("board: unknown profile %q (want one of %s)", name, strings.Join(Names(), ", "))
}

// Match returns the profile whose board the device tree's model (or
// compatible strings) describe.
func Match(model string) (*Profile, error) {
	for _, p := range profiles {
		for _, m := range p.models {
			if strings.Contains(model, m) {
				return p, nil
			}
		}
	}
	return nil, fmt.Errorf("board: no profile for model %q", model)
}

// Detect reads the device tree under root (normally "/") and returns the
// matching profile. Without a device tree it returns the host profile.
func Detect(root string) (*Profile, error) {
	dt := filepath.Join(root, "proc/device-tree")
	var desc []string
	for _, f := range []string{"model", "compatible"} {
		b, err := os.ReadFile(filepath.Join(dt, f))
		if err != nil {
			continue
		}
		// Device-tree strings are NUL-terminated, lists NUL-separated.
		desc = append(desc, strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")...)
	}
	if len(desc) == 0 {
		return Lookup(Host)
	}
	return Match(strings.Join(desc, "\n"))
}

// Resolve returns the profile for a config's board value: the named profile,
// or for Auto the one Detect finds under root.
func Resolve(name, root string) (*Profile, error) {
	if name == Auto {
		return Detect(root)
	}
	return Lookup(name)
}

// AllModules returns the union of the modules of the named profiles, in
// order of first appearance: what an image for several boards must carry.
func AllModules(names ...string) ([]string, error) {
	var mods []string
	for _, n := range names {
		p, err := Lookup(n)
		if err != nil {
			return nil, err
		}
		for _, m := range p.Modules {
			if !slices.Contains(mods, m) {
				mods = append(mods, m)
			}
		}
	}
	return mods, nil
}
