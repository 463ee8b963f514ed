package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The QEMU boot test needs a built image (make image-qemu); make
// test-images sets these.
const (
	envQEMUImage = "SYNFIN_QEMU_IMAGE" // the folder mkimage qemu wrote
	envRPiImage  = "SYNFIN_RPI_IMAGE"  // the SD-card image mkimage rpi wrote
)

const (
	bootTimeout     = 3 * time.Minute
	poweroffTimeout = 30 * time.Second
)

// console collects a QEMU serial console and tells when a line shows up.
type console struct {
	mu    sync.Mutex
	text  strings.Builder
	lines chan string
}

func (c *console) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		c.mu.Lock()
		c.text.WriteString(sc.Text() + "\n")
		c.mu.Unlock()
		select {
		case c.lines <- sc.Text():
		default:
		}
	}
	close(c.lines)
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.text.String()
}

// waitFor waits for a console line containing s.
func (c *console) waitFor(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("console closed before %q:\n%s", s, c)
			}
			if strings.Contains(line, s) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q on the console within %v:\n%s", s, timeout, c)
		}
	}
}

// freePort returns preferred if it is free on 127.0.0.1, else any free port.
func freePort(t *testing.T, preferred int) int {
	t.Helper()
	for _, p := range []int{preferred, 0} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (make image-deps installs it): %v", tool, err)
		}
	}
}

// guest is a booted QEMU image.
type guest struct {
	con               *console
	stdin             io.Writer
	exited            chan error
	key               string
	sshPort, echoPort int
	start             time.Time
}

// bootQEMU boots the QEMU image with a fresh /perm holding the config file
// config and a new SSH key, and waits for the ready line.
func bootQEMU(t *testing.T, config string) *guest {
	t.Helper()
	dir := os.Getenv(envQEMUImage)
	if dir == "" {
		t.Skipf("%s not set: run make test-images (builds and boots the image)", envQEMUImage)
	}
	needTools(t, "qemu-system-aarch64", "ssh", "ssh-keygen", "mkfs.ext4")
	tmp := t.TempDir()
	g := &guest{key: filepath.Join(tmp, "id_ed25519"), exited: make(chan error, 1)}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "synfin-boot-test", "-f", g.key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	perm := filepath.Join(tmp, "perm.img")
	o := options{config: config, authorizedKeys: g.key + ".pub", permSize: 64 << 20}
	if err := buildPerm(o, perm); err != nil {
		t.Fatal(err)
	}

	g.sshPort, g.echoPort = freePort(t, 2222), freePort(t, 2207)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout+poweroffTimeout+2*time.Minute)
	t.Cleanup(cancel)
	qemu := exec.CommandContext(ctx, "../../images/qemu/run.sh", dir)
	qemu.Env = append(os.Environ(), "PERM="+perm, fmt.Sprintf("SSH_PORT=%d", g.sshPort), fmt.Sprintf("ECHO_PORT=%d", g.echoPort))
	stdin, err := qemu.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	g.stdin = stdin
	pr, pw := io.Pipe()
	qemu.Stdout, qemu.Stderr = pw, pw
	g.con = &console{lines: make(chan string, 1024)}
	go g.con.read(pr)
	g.start = time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		err := qemu.Wait()
		pw.Close()
		close(done)
		g.exited <- err
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			qemu.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("console:\n%s", g.con)
		}
	})
	g.con.waitFor(t, "synfin: ready", bootTimeout)
	return g
}

// ssh runs a shell command over SSH, retrying while the server is not up
// yet.
func (g *guest) ssh(t *testing.T, command string) string {
	t.Helper()
	args := []string{"-p", fmt.Sprint(g.sshPort), "-i", g.key, "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
		"-o", "LogLevel=ERROR", "synfin@127.0.0.1", command}
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := exec.Command("ssh", args...).CombinedOutput()
		if err == nil {
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh %s: %v\n%s", command, err, out)
		}
		time.Sleep(time.Second)
	}
}

// poweroff types poweroff on the serial console and waits for QEMU to end.
func (g *guest) poweroff(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(g.stdin, "poweroff\n"); err != nil {
		t.Fatal(err)
	}
	g.waitDown(t, "poweroff")
}

// waitDown waits for QEMU to end cleanly after the power action: run.sh
// has QEMU exit rather than reset on a reboot.
func (g *guest) waitDown(t *testing.T, action string) {
	t.Helper()
	select {
	case err := <-g.exited:
		if err != nil {
			t.Fatalf("qemu exited with %v after %s", err, action)
		}
	case <-time.After(poweroffTimeout):
		t.Fatalf("qemu still running %v after %s", poweroffTimeout, action)
	}
	if !strings.Contains(g.con.String(), "synfin: "+action) {
		t.Errorf("console does not show the orderly %s", action)
	}
}

// TestQEMUBoot boots the QEMU image with a /perm holding a test key, waits
// for the ready line, logs in with ssh and finds its own connection in
// "show tcb", talks to the echo service through a second host forward, and
// powers the guest off from the serial console.
func TestQEMUBoot(t *testing.T) {
	g := bootQEMU(t, "../../images/qemu/synfin.yaml")
	ready := time.Since(g.start)
	for _, want := range []string{"perm mounted", "config loaded", "hardware watchdog armed"} {
		if !strings.Contains(g.con.String(), want) {
			t.Errorf("console lacks %q", want)
		}
	}

	// Logged in over SSH, the TCB table holds this very connection.
	out := g.ssh(t, "show tcb")
	sshReady := time.Since(g.start)
	var own bool
	for _, line := range strings.Split(out, "\n") {
		own = own || (strings.Contains(line, "ESTABLISHED") && strings.Contains(line, "10.0.2.15:22 ") && strings.Contains(line, "10.0.2.2:"))
	}
	if !own {
		t.Errorf("show tcb over ssh does not list the ssh connection as ESTABLISHED:\n%s", out)
	}

	// The echo service, through the second host forward.
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", g.echoPort), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprintf("synfin boot test %d\n", time.Now().UnixNano())
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || got != msg {
		t.Errorf("echo answered %q, %v; want %q", got, err, msg)
	}

	var sys struct {
		Board  string `json:"board"`
		Perm   string `json:"perm"`
		Memory struct {
			RSSBytes uint64 `json:"rss_bytes"`
		} `json:"memory"`
	}
	if err := json.Unmarshal([]byte(g.ssh(t, "show system --json")), &sys); err != nil {
		t.Fatalf("show system --json: %v", err)
	}
	if sys.Board != "qemu-virt" || sys.Perm != "/dev/vda" || sys.Memory.RSSBytes == 0 {
		t.Errorf("show system: %+v, want board qemu-virt, /perm on /dev/vda, an RSS", sys)
	}
	t.Logf("TCG boot: ready line after %v, ssh show tcb answered after %v; firmware RSS %.1f MiB",
		ready.Round(time.Millisecond), sshReady.Round(time.Millisecond), float64(sys.Memory.RSSBytes)/(1<<20))

	g.poweroff(t)
}

// TestQEMUBootBadConfig boots with a config that does not parse: the
// console says so, and the built-in defaults still bring up SSH and the
// shell on the board's network; reboot over SSH then ends the guest.
func TestQEMUBootBadConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("net: {address: 10.0.2.300/24}\ntcp: {msl: forever}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := bootQEMU(t, bad)
	for _, want := range []string{"BAD CONFIG: using built-in defaults", "net.address", "tcp.msl"} {
		if !strings.Contains(g.con.String(), want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if out := g.ssh(t, "show config"); !strings.Contains(out, "10.0.2.15/24") {
		t.Errorf("show config does not show the board's default address:\n%s", out)
	}
	// reboot over SSH: its reply arrives before the box goes down.
	if out := g.ssh(t, "reboot"); !strings.Contains(out, "reboot: going down now") {
		t.Errorf("reboot over ssh answered %q", out)
	}
	g.waitDown(t, "reboot")
}

// TestQEMUBootConfigDoesNotStart boots with a config that parses but
// names a NIC the machine lacks: init restarts the firmware, then falls back
// to the built-in defaults, and SSH comes up.
func TestQEMUBootConfigDoesNotStart(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "eth9.yaml")
	if err := os.WriteFile(cfg, []byte("nic: {interface: eth9}\nnet: {address: 10.0.2.15/24, gateway: 10.0.2.2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := bootQEMU(t, cfg)
	for _, want := range []string{"config loaded", "firmware stopped; restarting", "CONFIG DOES NOT START: using built-in defaults"} {
		if !strings.Contains(g.con.String(), want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if out := g.ssh(t, "show interfaces"); !strings.Contains(out, "eth0") {
		t.Errorf("show interfaces does not show the board's NIC:\n%s", out)
	}
	g.poweroff(t)
}

// TestRPiImage checks the SD-card image: its partition table (sfdisk), the
// boot files on the FAT32 partition (mtools) and the config on /perm.
func TestRPiImage(t *testing.T) {
	img := os.Getenv(envRPiImage)
	if img == "" {
		t.Skipf("%s not set: run make test-images (builds the image)", envRPiImage)
	}
	needTools(t, "sfdisk", "mdir", "mtype", "debugfs")
	out, err := exec.Command("sfdisk", "--dump", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v\n%s", err, out)
	}
	dump := string(out)
	for _, want := range []string{
		"label: dos",
		"start=        8192, size=      524288, type=c, bootable",
		"start=      532480, size=      131072, type=83",
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("partition table lacks %q:\n%s", want, dump)
		}
	}

	boot := img + "@@4M"
	out, err = exec.Command("mdir", "-i", boot, "-b", "::").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v\n%s", err, out)
	}
	files := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		files[strings.TrimPrefix(f, "::/")] = true
	}
	for _, want := range []string{
		"bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat",
		"config.txt", "cmdline.txt", "cmdline-pi5.txt", "vmlinuz", "initrd.img",
		"bcm2837-rpi-3-b.dtb", "bcm2837-rpi-3-b-plus.dtb", "bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb",
	} {
		if !files[want] {
			t.Errorf("boot partition lacks %s (has %v)", want, files)
		}
	}
	mtype := func(name string) string {
		out, err := exec.Command("mtype", "-i", boot, "::"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("mtype %s: %v\n%s", name, err, out)
		}
		return string(out)
	}
	config := mtype("config.txt")
	for _, want := range []string{"arm_64bit=1", "kernel=vmlinuz", "initramfs initrd.img followkernel", "upstream_kernel=1", "[pi5]\ncmdline=cmdline-pi5.txt"} {
		if !strings.Contains(config, want) {
			t.Errorf("config.txt lacks %q:\n%s", want, config)
		}
	}
	if c := mtype("cmdline.txt"); !strings.Contains(c, "console=ttyS1,115200") {
		t.Errorf("cmdline.txt %q: not the mini UART console of the Pi 3 and 4", c)
	}
	if c := mtype("cmdline-pi5.txt"); !strings.Contains(c, "console=ttyAMA10,115200") {
		t.Errorf("cmdline-pi5.txt %q: not the Pi 5's debug UART", c)
	}

	// /perm: cut the partition out and read its config with debugfs.
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	perm := filepath.Join(t.TempDir(), "perm.img")
	pf, err := os.Create(perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(pf, io.NewSectionReader(f, 532480*sectorSize, 131072*sectorSize)); err != nil {
		t.Fatal(err)
	}
	pf.Close()
	out, err = exec.Command("debugfs", "-R", "cat /synfin.yaml", perm).Output()
	if err != nil || !strings.Contains(string(out), "board: auto") {
		t.Errorf("/perm's synfin.yaml: %v\n%s", err, out)
	}
}
