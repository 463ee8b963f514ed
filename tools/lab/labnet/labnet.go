//go:build linux

// Package labnet builds the synfin test lab on the local machine: two
// network namespaces joined by a veth pair, the firmware running in one of
// them and Linux's own stack in the other.
//
//	synfin-dut:  veth-dut   (no kernel address: the firmware, 198.18.0.2, owns it)
//	synfin-peer: veth-peer  198.18.0.1/24
//
// The names are fixed, so there is one lab per machine at a time; Up waits
// for a lab another process holds through Up until that one calls Down.
// Everything here runs the ip command of iproute2 and needs root.
package labnet

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The lab's fixed names, addresses and files.
const (
	DUTNamespace  = "synfin-dut"
	PeerNamespace = "synfin-peer"
	DUTInterface  = "veth-dut"
	PeerInterface = "veth-peer"
	DUTAddress    = "198.18.0.2"
	PeerAddress   = "198.18.0.1"
	PrefixLen     = 24

	// RunDir holds the lab's run-time files; Down removes it.
	RunDir     = "/run/synfin-lab"
	ConfigFile = RunDir + "/config.yaml"
	LogFile    = RunDir + "/firmware.log"
	PIDFile    = RunDir + "/firmware.pid"
	MgmtSocket = RunDir + "/mgmt.sock"

	// lockFile serialises labs across processes (go test runs packages in
	// parallel). It lives outside RunDir, which Down removes.
	lockFile = "/run/synfin-lab.lock"
)

const (
	defaultMSL          = 30 * time.Second
	defaultReadyTimeout = 20 * time.Second
	stopGrace           = 5 * time.Second
	logTailLines        = 40
)

// Options configure Up.
type Options struct {
	// FirmwarePath is the firmware binary to start in the DUT namespace;
	// empty builds the topology only.
	FirmwarePath string
	// ConfigPath is the firmware's config file. Empty writes the default
	// lab config to ConfigFile. A config of one's own must put the
	// management socket at MgmtSocket, where Up and Shell look for it.
	ConfigPath string
	// MSL is tcp.msl in the default config; 0 means 30s.
	MSL time.Duration
	// ReadyTimeout bounds the wait for a started firmware to answer; 0
	// means 20s.
	ReadyTimeout time.Duration
	// Env is added to the firmware's environment (which is this
	// process's otherwise). As every config key can be set by a SYNFIN_*
	// variable, this adjusts the config: "SYNFIN_TCP_KEEPALIVE_IDLE=1s".
	Env []string
}

// Lab is a running lab, built by Up.
type Lab struct {
	firmwarePath string
	lock         *os.File
	// firmwareExited is closed once the started firmware has exited; nil
	// when no firmware was started.
	firmwareExited chan struct{}
}

// Up tears down whatever an earlier lab left, builds the topology, writes
// the default config unless opts.ConfigPath is set and, if
// opts.FirmwarePath is set, starts the firmware and waits until it answers:
// its management socket exists and it answers ping from the peer. If the
// firmware does not come up, Up stops it, removes the namespaces and
// returns an error with the tail of its log; the log stays in LogFile.
func Up(opts Options) (*Lab, error) {
	l, opts, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if l.lock, err = acquireLock(); err != nil {
		return nil, err
	}
	if err := l.upLocked(opts); err != nil {
		l.lock.Close()
		return nil, err
	}
	return l, nil
}

// prepare checks opts, fills in their defaults and finds the firmware.
func prepare(opts Options) (*Lab, Options, error) {
	if opts.MSL < 0 || opts.ReadyTimeout < 0 {
		return nil, opts, errors.New("labnet: MSL and ReadyTimeout must not be negative")
	}
	if opts.MSL == 0 {
		opts.MSL = defaultMSL
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = defaultReadyTimeout
	}
	l := &Lab{}
	if opts.FirmwarePath != "" {
		path, err := exec.LookPath(opts.FirmwarePath)
		if err == nil {
			// ip netns exec looks a bare name up in PATH; pin what we found.
			path, err = filepath.Abs(path)
		}
		if err != nil {
			return nil, opts, fmt.Errorf("labnet: firmware: %w", err)
		}
		l.firmwarePath = path
		if _, err := exec.LookPath("ping"); err != nil {
			return nil, opts, fmt.Errorf("labnet: ping is needed to see the firmware answer: %w", err)
		}
	}
	return l, opts, nil
}

// upLocked builds the lab while holding the lab lock. If that fails it
// stops what it started and removes the namespaces, but keeps RunDir: the
// firmware's log is in it.
func (l *Lab) upLocked(opts Options) error {
	if err := l.up(opts); err != nil {
		return errors.Join(err, stopAll(), deleteNamespaces())
	}
	return nil
}

func (l *Lab) up(opts Options) error {
	if err := Down(); err != nil {
		return fmt.Errorf("labnet: clearing an earlier lab: %w", err)
	}
	if err := createTopology(); err != nil {
		return err
	}
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("labnet: %w", err)
	}
	configPath := opts.ConfigPath
	if configPath == "" {
		configPath = ConfigFile
		if err := os.WriteFile(configPath, []byte(DefaultConfig(opts.MSL)), 0o644); err != nil {
			return fmt.Errorf("labnet: write default config: %w", err)
		}
	}
	if l.firmwarePath == "" {
		return nil
	}
	if err := l.startFirmware(configPath, opts.Env); err != nil {
		return err
	}
	if err := l.waitReady(opts.ReadyTimeout); err != nil {
		return fmt.Errorf("labnet: %w\n--- %s (last lines) ---\n%s", err, LogFile, tail(l.FirmwareLog(), logTailLines))
	}
	return nil
}

// acquireLock takes the machine-wide lab lock, waiting for a lab another
// process holds.
func acquireLock() (*os.File, error) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("labnet: lab lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("labnet: lab lock %s: %w", lockFile, err)
	}
	return f, nil
}

func createTopology() error {
	steps := [][]string{
		{"netns", "add", DUTNamespace},
		{"netns", "add", PeerNamespace},
		{"link", "add", DUTInterface, "netns", DUTNamespace, "type", "veth", "peer", "name", PeerInterface, "netns", PeerNamespace},
		{"-n", DUTNamespace, "link", "set", "lo", "up"},
		{"-n", PeerNamespace, "link", "set", "lo", "up"},
		{"-n", PeerNamespace, "addr", "add", PeerAddress + "/" + strconv.Itoa(PrefixLen), "dev", PeerInterface},
		{"-n", PeerNamespace, "link", "set", PeerInterface, "up"},
	}
	for _, args := range steps {
		if err := ip(args...); err != nil {
			return fmt.Errorf("labnet: build topology: %w", err)
		}
	}
	return nil
}

// ip runs the ip command, returning its output in the error if it fails.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// startFirmware starts the firmware in the DUT namespace, in a session of
// its own so that it outlives the lab command that started it, with env
// added to its environment.
func (l *Lab) startFirmware(configPath string, env []string) error {
	logf, err := os.OpenFile(LogFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("labnet: firmware log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", DUTNamespace, l.firmwarePath, "--config", configPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("labnet: start firmware: %w", err)
	}
	// ip netns exec replaces itself with the firmware: the pid is the
	// firmware's.
	if err := os.WriteFile(PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("labnet: %w", err)
	}
	l.firmwareExited = make(chan struct{})
	go func() {
		// Reap the firmware when it exits, so that it does not linger as a
		// zombie while this process runs.
		_ = cmd.Wait()
		close(l.firmwareExited)
	}()
	return nil
}

// waitReady waits until the firmware's management socket exists and the
// firmware answers ping from the peer.
func (l *Lab) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-l.firmwareExited:
			return errors.New("firmware exited during start-up")
		default:
		}
		if l.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("firmware not ready after %v (want %s to exist and %s to answer ping)", timeout, MgmtSocket, DUTAddress)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (l *Lab) ready() bool {
	if _, err := os.Stat(MgmtSocket); err != nil {
		return false
	}
	return l.PeerCommand("ping", "-c1", "-W1", DUTAddress).Run() == nil
}

// Down stops the firmware, tears the lab down and releases it to other
// processes. Calls after the first do nothing: the lab may by then be
// another process's.
func (l *Lab) Down() error {
	if l.lock == nil {
		return nil
	}
	err := Down()
	l.lock.Close()
	l.lock = nil
	return err
}

// Down tears down whatever a lab left on this machine, whoever built it:
// it stops every process in the lab's namespaces (the firmware first among
// them: SIGTERM, then SIGKILL after 5 s), deletes the namespaces, which
// deletes the veth pair, and removes RunDir. With nothing there it does
// nothing and succeeds.
func Down() error {
	return errors.Join(stopAll(), deleteNamespaces(), os.RemoveAll(RunDir))
}

// stopAll stops every process in the lab's namespaces: SIGTERM, then
// SIGKILL to those still there after stopGrace. A namespace lives on while
// a process is in it, and so does its end of the veth.
func stopAll() error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		pids, err := namespacePIDs()
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, pid := range pids {
			// It may have exited since it was listed.
			_ = syscall.Kill(pid, sig)
		}
		for deadline := time.Now().Add(stopGrace); time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			if pids, err = namespacePIDs(); err != nil || len(pids) == 0 {
				return err
			}
		}
	}
	pids, err := namespacePIDs()
	if err == nil && len(pids) > 0 {
		err = fmt.Errorf("labnet: processes %v survive SIGKILL", pids)
	}
	return err
}

// namespacePIDs lists the processes in the lab's namespaces, other than
// this one.
func namespacePIDs() ([]int, error) {
	var pids []int
	for _, ns := range []string{DUTNamespace, PeerNamespace} {
		if !namespaceExists(ns) {
			continue
		}
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			return nil, fmt.Errorf("labnet: ip netns pids %s: %w", ns, err)
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

func namespaceExists(ns string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", ns))
	return err == nil
}

func deleteNamespaces() error {
	var errs []error
	for _, ns := range []string{DUTNamespace, PeerNamespace} {
		if namespaceExists(ns) {
			errs = append(errs, ip("netns", "del", ns))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("labnet: %w", err)
	}
	return nil
}

// PeerCommand returns a command that runs name with args in the peer
// namespace, where Linux's own stack is.
func (l *Lab) PeerCommand(name string, args ...string) *exec.Cmd {
	return NamespaceCommand(PeerNamespace, name, args...)
}

// DUTCommand returns a command that runs name with args in the DUT
// namespace, beside the firmware.
func (l *Lab) DUTCommand(name string, args ...string) *exec.Cmd {
	return NamespaceCommand(DUTNamespace, name, args...)
}

// NamespaceCommand returns a command that runs name with args in the
// network namespace ns.
func NamespaceCommand(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// InNamespace runs fn with its thread in the network namespace ns, so that
// the sockets fn creates belong to that namespace's stack; they stay there
// after fn returns and can be used from anywhere. fn runs on a goroutine of
// its own, locked to its thread, and must not start goroutines that create
// sockets.
func InNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Not unlocked on failure: the runtime then retires the thread,
		// stuck in the wrong namespace, with the goroutine.
		runtime.LockOSThread()
		errc <- inNamespace(ns, fn)
	}()
	return <-errc
}

func inNamespace(ns string, fn func() error) error {
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("labnet: current namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("labnet: namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("labnet: enter namespace %s: %w", ns, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("labnet: leave namespace %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Namespace resolves a namespace given as "dut", "peer" or a full name.
func Namespace(name string) (string, error) {
	switch name {
	case "dut", DUTNamespace:
		return DUTNamespace, nil
	case "peer", PeerNamespace:
		return PeerNamespace, nil
	}
	return "", fmt.Errorf("labnet: unknown namespace %q (want dut or peer)", name)
}

// Shell runs one management shell command through the firmware's local
// socket and returns its output. The error carries the output too when the
// command fails.
func (l *Lab) Shell(command string) (string, error) {
	if l.firmwarePath == "" {
		return "", errors.New("labnet: shell: the lab runs no firmware")
	}
	out, err := exec.Command(l.firmwarePath, "shell", "--socket", MgmtSocket, "-c", command).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("labnet: shell -c %q: %w: %s", command, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// FirmwareLog returns what the firmware has written to its stdout and
// stderr so far, or "" if there is no log.
func (l *Lab) FirmwareLog() string {
	b, err := os.ReadFile(LogFile)
	if err != nil {
		return ""
	}
	return string(b)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Status describes what of a lab is on the machine.
type Status struct {
	// Namespaces maps each lab namespace to whether it exists.
	Namespaces map[string]bool
	// FirmwarePID is the pid in PIDFile, 0 if there is none.
	FirmwarePID int
	// FirmwareRunning tells whether that process is still in the DUT
	// namespace.
	FirmwareRunning bool
	// MgmtSocket tells whether the management socket exists.
	MgmtSocket bool
}

// Inspect reports what of a lab is on the machine.
func Inspect() (Status, error) {
	st := Status{Namespaces: map[string]bool{
		DUTNamespace:  namespaceExists(DUTNamespace),
		PeerNamespace: namespaceExists(PeerNamespace),
	}}
	_, err := os.Stat(MgmtSocket)
	st.MgmtSocket = err == nil
	b, err := os.ReadFile(PIDFile)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("labnet: %w", err)
	}
	if st.FirmwarePID, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return st, fmt.Errorf("labnet: %s: %w", PIDFile, err)
	}
	pids, err := namespacePIDs()
	if err != nil {
		return st, err
	}
	for _, pid := range pids {
		st.FirmwareRunning = st.FirmwareRunning || pid == st.FirmwarePID
	}
	return st, nil
}

// DefaultConfig returns the firmware config the lab writes when given none:
// the firmware on veth-dut as 198.18.0.2/24 with all four classic services
// and its management socket at MgmtSocket.
func DefaultConfig(msl time.Duration) string {
	return fmt.Sprintf(`board: host
nic:
  interface: %s
  driver: afpacket
  mtu: 1500
net:
  address: %s/%d
  gateway: %s
tcp:
  congestion_control: newreno
  msl: %s
  fin_wait2_timeout: 60s
  quiet_time: 0s
  keepalive: {idle: 2h, interval: 75s, count: 9}
services:
  echo: {port: 7}
  discard: {port: 9}
  daytime: {port: 13}
  chargen: {port: 19}
mgmt:
  socket: %s
`, DUTInterface, DUTAddress, PrefixLen, PeerAddress, msl, MgmtSocket)
}
