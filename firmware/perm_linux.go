package main

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synfin/synfin/board"
	"github.com/synfin/synfin/firmware/config"
)

const (
	// permDir holds what survives a reboot: the config, the SSH host key
	// and the authorized keys.
	permDir = "/perm"
	// permConfig is the config file on /perm.
	permConfig = permDir + "/synfin.yaml"
	// permDeviceWait bounds the wait for the /perm block device, which
	// appears once its driver has probed.
	permDeviceWait = 10 * time.Second
)

// mountPerm mounts the board's /perm file system (ext4; a device, or
// LABEL=name). Without one, or if it
// cannot be mounted, /perm is a tmpfs: the box still comes up, but forgets
// on reboot what it writes there, and the console says so. It returns what
// /perm is: the device, or "tmpfs".
func mountPerm(log *slog.Logger, spec string) string {
	if err := os.MkdirAll(permDir, 0o700); err != nil {
		log.Error("perm", "err", err)
		return "none"
	}
	err := errors.New("the board has no /perm device")
	var dev string
	if spec != "" {
		if dev, err = resolvePerm(spec, "/sys/class/block", "/dev", permDeviceWait); err == nil {
			err = unix.Mount(dev, permDir, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}
	}
	if err == nil {
		log.Info("perm mounted", "device", dev, "path", permDir)
		return dev
	}
	log.Warn("PERM NOT MOUNTED: config and keys will not survive a reboot", "perm", spec, "err", err)
	if err := unix.Mount("tmpfs", permDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		log.Error("perm tmpfs", "err", err)
		return "none"
	}
	return "tmpfs"
}

// loadInitConfig loads the config file at path (/perm/synfin.yaml) over the
// board's defaults. A missing or bad file gives the built-in defaults,
// which still bring the management shell up; the console says which it was.
func loadInitConfig(log *slog.Logger, prof *board.Profile, path string) *config.Config {
	cfg, err := config.LoadDefaults(path, boardDefaults(prof))
	switch {
	case err == nil:
		log.Info("config loaded", "path", path)
		if cfg.Board != prof.Name && cfg.Board != board.Auto {
			log.Warn("config names another board; the booted one's profile is in use",
				"config", cfg.Board, "booted", prof.Name)
		}
		cfg.Board = prof.Name
		return cfg
	case errors.Is(err, os.ErrNotExist):
		log.Warn("NO CONFIG: using built-in defaults", "path", path)
	default:
		log.Error("BAD CONFIG: using built-in defaults", "path", path, "err", err)
	}
	return builtinConfig(log, prof)
}

// boardDefaults are the config defaults on prof's board.
func boardDefaults(prof *board.Profile) map[string]string {
	defaults := map[string]string{"board": prof.Name}
	for k, v := range prof.Defaults {
		defaults[k] = v
	}
	return defaults
}

// builtinConfig is the config without a file: the defaults, with the
// board's own.
func builtinConfig(log *slog.Logger, prof *board.Profile) *config.Config {
	cfg, err := config.LoadDefaults("", boardDefaults(prof))
	if err != nil {
		// Only the environment (kernel command line words like
		// SYNFIN_X=y) can make the defaults fail; drop it.
		log.Error("bad SYNFIN_* settings on the kernel command line; ignoring them", "err", err)
		for _, kv := range os.Environ() {
			if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, config.EnvPrefix+"_") {
				os.Unsetenv(name)
			}
		}
		if cfg, err = config.LoadDefaults("", boardDefaults(prof)); err != nil {
			// The board's own defaults are wrong: a programming error.
			panic(err)
		}
	}
	return cfg
}
