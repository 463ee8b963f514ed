package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synfin/synfin/board"
	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/mgmt"
)

const (
	// hostname is the name the box gives itself.
	hostname = "synfin"
	// bootGrace is how long the firmware may be not ready, at boot or
	// after a failure, before the watchdog is let go and the box resets.
	bootGrace = 2 * time.Minute
	// shutdownTimeout bounds the orderly part of a power-off or reboot.
	shutdownTimeout = 5 * time.Second
	// restartDelayMax caps the back-off between restarts of the firmware.
	restartDelayMax = 10 * time.Second
	// configAttempts is how often the firmware may fail to come up on the
	// config from /perm before init falls back to the built-in defaults.
	configAttempts = 3
	// replyGrace is how long a power request waits for the command's
	// reply to leave.
	replyGrace = 300 * time.Millisecond
)

// mounts are the API file systems init provides, in order.
var mounts = []struct {
	target, fstype string
	flags          uintptr
	data           string
}{
	{"/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// runInit is main when the firmware is PID 1: it makes the machine
// usable, runs the firmware under supervision and powers the machine off or
// reboots it when asked. It never returns: PID 1 exiting panics the kernel.
func runInit() {
	started := time.Now()
	// The kernel opened /dev/console as stdin, stdout and stderr.
	console := os.Stderr
	log := slog.New(slog.NewTextHandler(crlfWriter{console}, nil))
	slog.SetDefault(log)
	log.Info("synfin init starting", "version", buildVersion())

	for _, m := range mounts {
		if err := mountAPI(m.target, m.fstype, m.flags, m.data); err != nil {
			log.Error("mount", "target", m.target, "err", err)
		}
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		log.Error("set hostname", "err", err)
	}
	// Ctrl-Alt-Del then becomes SIGINT to init instead of an instant reset.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		log.Warn("ctrl-alt-del to init", "err", err)
	}

	prof := initBoard(log)
	loadModules(log, prof.Modules)
	perm := mountPerm(log, prof.Perm)
	cfg := loadInitConfig(log, prof, permConfig)

	in := &initSystem{log: log, prof: prof, cfg: cfg, perm: perm, started: started, power: make(chan mgmt.PowerAction, 1)}
	in.run(console)
}

// initBoard picks the board profile: the one the kernel command line names
// (synfin.board=NAME), else the one the device tree describes. The config
// cannot say: it lives on /perm, which the profile's modules make reachable.
func initBoard(log *slog.Logger) *board.Profile {
	name := board.Auto
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, w := range strings.Fields(string(b)) {
			if v, ok := strings.CutPrefix(w, "synfin.board="); ok {
				name = v
			}
		}
	}
	prof, err := board.Resolve(name, "/")
	if err != nil {
		log.Error("no board profile; running as qemu-virt", "err", err)
		prof, _ = board.Lookup(board.QEMUVirt)
	}
	log.Info("board", "profile", prof.Name)
	return prof
}

func mountAPI(target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	err := unix.Mount(fstype, target, fstype, flags, data)
	if errors.Is(err, unix.EBUSY) {
		return nil // already mounted, e.g. /dev by the kernel
	}
	return err
}

// initSystem is the running init: the supervised firmware, its health, and
// the power requests.
type initSystem struct {
	log  *slog.Logger
	prof *board.Profile
	cfg  *config.Config
	// perm says what /perm is: the device mounted, or tmpfs.
	perm    string
	started time.Time
	health  health
	power   chan mgmt.PowerAction
}

func (in *initSystem) run(console *os.File) {
	// Orphans and signals keep coming while the machine goes down.
	reapOrphans(context.Background(), in.log)
	in.handleSignals(context.Background())

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { in.keepWatch(ctx) })
	wg.Go(func() { in.supervise(ctx, console) })
	go consoleShell(ctx, in.cfg.Mgmt.Socket, console, in.log)

	action := <-in.power
	in.log.Info("going down", "action", action)
	// The reboot or poweroff command's reply is still on its way to the
	// caller; stopping the firmware at once would cut it off.
	time.Sleep(replyGrace)
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
		in.log.Warn("shutdown timed out; going down anyway")
	}
	powerDown(in.log, action)
}

// requestPower queues a power action; the shell's reboot and poweroff use it.
func (in *initSystem) requestPower(a mgmt.PowerAction) error {
	select {
	case in.power <- a:
		return nil
	default:
		return errors.New("already going down")
	}
}

// handleSignals turns SIGTERM into a power-off and SIGINT (Ctrl-Alt-Del)
// into a reboot, as init systems do, from when it returns until ctx is
// done.
func (in *initSystem) handleSignals(ctx context.Context) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, unix.SIGTERM, unix.SIGINT)
	go func() {
		defer signal.Stop(ch)
		for {
			var sig os.Signal
			select {
			case <-ctx.Done():
				return
			case sig = <-ch:
			}
			action := mgmt.PowerOff
			if sig == unix.SIGINT {
				action = mgmt.Reboot
			}
			in.log.Info("signal", "signal", sig, "action", action)
			_ = in.requestPower(action)
		}
	}()
}

// supervise runs the firmware until ctx is done, restarting it with back-off
// when it fails or panics.
func (in *initSystem) supervise(ctx context.Context, console io.Writer) {
	ready := readyWriter{w: crlfWriter{console}}
	delay := time.Second
	cfg, failed := in.cfg, 0
	for ctx.Err() == nil {
		started := time.Now()
		becameReady := false
		ready.ready = func() { becameReady = true; in.health.set(true) }
		err := runRecovered(func() error {
			return runFirmware(ctx, cfg, in.log, ready, mgmt.WithPower(in.requestPower), mgmt.WithSystem(in.systemInfo))
		})
		in.health.set(false)
		if ctx.Err() != nil {
			return
		}
		// A firmware that ran for a good while failed afresh, not again.
		if time.Since(started) > restartDelayMax {
			delay = time.Second
		}
		if failed = failed + 1; becameReady {
			failed = 0
		}
		// A config can parse and still keep the firmware from coming up
		// (a NIC that is not there, say); the defaults at least bring
		// the management shell up.
		if failed == configAttempts && cfg == in.cfg {
			in.log.Error("CONFIG DOES NOT START: using built-in defaults", "attempts", failed, "err", err)
			cfg = builtinConfig(in.log, in.prof)
		}
		in.log.Error("firmware stopped; restarting", "err", err, "in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		delay = min(2*delay, restartDelayMax)
	}
}

// readyWriter passes the firmware's ready line on and reports it.
type readyWriter struct {
	w     io.Writer
	ready func()
}

func (r readyWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	r.ready()
	return n, err
}

// reapOrphans waits for every child that ends, from when it returns until
// ctx is done: as PID 1 the firmware inherits every orphaned process, and
// unreaped they stay zombies.
func reapOrphans(ctx context.Context, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
				log.Debug("reaped", "pid", pid, "status", ws.ExitStatus())
			}
		}
	}()
}

// powerDown flushes and unmounts /perm and powers off or reboots. If the
// kernel refuses, it logs and sleeps forever: init must not exit.
func powerDown(log *slog.Logger, action mgmt.PowerAction) {
	unix.Sync()
	if err := unix.Unmount(permDir, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		log.Warn("unmount /perm", "err", err)
	}
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if action == mgmt.Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	log.Info("synfin: " + action.String())
	err := unix.Reboot(cmd)
	log.Error("reboot system call failed; halting", "err", err)
	for {
		time.Sleep(time.Hour)
	}
}

// buildVersion is the firmware's module version and VCS revision, if the
// build recorded them.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return bi.Main.Version
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// waitForPath waits, bounded, for a device node the kernel creates once a
// driver has probed.
func waitForPath(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(path)
		if err == nil || !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// modulesDir is where the kernel's modules and modules.dep live.
func modulesDir() string {
	return filepath.Join("/lib/modules", kernelRelease())
}
