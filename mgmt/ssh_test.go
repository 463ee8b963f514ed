package mgmt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/synfin/synfin/tcpext"
)

// quiet is the log of servers whose log the test does not read.
var quiet = slog.New(slog.DiscardHandler)

// sshFixture is an SSHServer on a loopback port with one authorized key.
type sshFixture struct {
	srv    *SSHServer
	addr   string
	dir    string
	key    ssh.Signer // authorized
	delays *[]time.Duration
}

func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startSSH(t *testing.T, configure func(*SSHConfig)) *sshFixture {
	t.Helper()
	f := &sshFixture{dir: t.TempDir(), key: newKey(t), delays: new([]time.Duration)}
	ak := filepath.Join(f.dir, "authorized_keys")
	content := "# the test's key\n\nnot a key line\n" + string(ssh.MarshalAuthorizedKey(f.key.PublicKey()))
	if err := os.WriteFile(ak, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := SSHConfig{HostKey: filepath.Join(f.dir, "host_key"), AuthorizedKeys: ak, Log: quiet}
	if configure != nil {
		configure(&cfg)
	}
	sh := NewShell(sampleTCBs, WithDumps(sampleDumps))
	srv, err := NewSSHServer(sh, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	srv.limiter.sleep = func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		*f.delays = append(*f.delays, d)
	}
	f.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func (f *sshFixture) dial(auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", f.addr, &ssh.ClientConfig{
		User:            "admin",
		Auth:            auth,
		HostKeyCallback: ssh.FixedHostKey(f.srv.HostKey()),
		Timeout:         10 * time.Second,
	})
}

func (f *sshFixture) login(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := f.dial(ssh.PublicKeys(f.key))
	if err != nil {
		t.Fatalf("login with the authorized key: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// execStatus runs command over c and returns its output and exit status.
func execStatus(t *testing.T, c *ssh.Client, command string) (string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output(command)
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitStatus()
	}
	t.Fatalf("%s: %v", command, err)
	return "", 0
}

func TestSSHExec(t *testing.T) {
	f := startSSH(t, nil)
	c := f.login(t)
	out, status := execStatus(t, c, "show tcb --json")
	var tcbs []tcpext.TCBInfo
	if status != StatusOK || json.Unmarshal([]byte(out), &tcbs) != nil || len(tcbs) != 2 {
		t.Fatalf("show tcb --json: status %d\n%s", status, out)
	}
	if out, status := execStatus(t, c, "show tcb 99"); status != StatusError || !strings.Contains(out, "no TCB with id 99") {
		t.Errorf("show tcb 99: status %d, %q", status, out)
	}
	if out, status := execStatus(t, c, "frobnicate"); status != StatusUsage || !strings.Contains(out, "commands:") {
		t.Errorf("unknown command: status %d, %q", status, out)
	}
	// Binary output goes through untouched.
	out, status = execStatus(t, c, "tcb dump 7 --pcap")
	if status != StatusOK || len(readPcap(t, []byte(out))) != 6 {
		t.Errorf("tcb dump --pcap over exec: status %d, %d bytes", status, len(out))
	}
}

func TestSSHRefusesUnknownKeyAndPasswords(t *testing.T) {
	f := startSSH(t, nil)
	if _, err := f.dial(ssh.PublicKeys(newKey(t))); err == nil {
		t.Error("an unknown key logged in")
	}
	if _, err := f.dial(ssh.Password("")); err == nil {
		t.Error("an empty password logged in with no password configured")
	}
	if _, err := f.dial(ssh.Password("admin")); err == nil {
		t.Error("a password logged in with no password configured")
	}
	// The server offers public keys only.
	_, err := f.dial(ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
		return nil, errors.New("asked")
	}))
	if err == nil || !strings.Contains(err.Error(), "no supported methods remain") {
		t.Errorf("keyboard-interactive: %v", err)
	}
}

func TestSSHPassword(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f := startSSH(t, func(c *SSHConfig) { c.PasswordHash = string(hash) })
	if _, err := f.dial(ssh.Password("wrong")); err == nil {
		t.Error("a wrong password logged in")
	}
	c, err := f.dial(ssh.Password("correct horse"))
	if err != nil {
		t.Fatalf("the configured password: %v", err)
	}
	c.Close()

	if _, err := NewSSHServer(NewShell(sampleTCBs), SSHConfig{HostKey: filepath.Join(t.TempDir(), "k"), PasswordHash: "secret", Log: quiet}); err == nil {
		t.Error("a password hash that is not bcrypt was taken")
	}
}

func TestSSHFailedLoginsSlowDown(t *testing.T) {
	f := startSSH(t, nil)
	stranger := newKey(t)
	for range 6 {
		if _, err := f.dial(ssh.PublicKeys(stranger)); err == nil {
			t.Fatal("an unknown key logged in")
		}
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}
	if !slices.Equal(*f.delays, want) {
		t.Fatalf("delays after 6 failures %v, want none for the first 3, then %v", *f.delays, want)
	}
	// The right key still gets in, after the delay, and clears the record.
	// The server clears it once its side of the handshake is done, which
	// may be after the client's: a command run over the connection comes
	// after that.
	execStatus(t, f.login(t), "help")
	if _, err := f.dial(ssh.PublicKeys(stranger)); err == nil {
		t.Fatal("an unknown key logged in")
	}
	if got := *f.delays; len(got) != 4 || got[3] != 4*time.Second {
		t.Errorf("delays %v: the good login should have waited 4s, the failure after it not at all", got)
	}
}

func TestAuthLimiterCapsAndForgets(t *testing.T) {
	l := newAuthLimiter()
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	src := sourceOf(&net.TCPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 1})
	for range 40 {
		l.failed(src)
	}
	if d := l.delay(src); d != maxFailureDelay {
		t.Errorf("delay after 40 failures %v, want the cap %v", d, maxFailureDelay)
	}
	if d := l.delay(sourceOf(&net.TCPAddr{IP: net.IPv4(198, 18, 0, 3), Port: 1})); d != 0 {
		t.Errorf("another source waits %v", d)
	}
	now = now.Add(failureMemory + time.Second)
	if d := l.delay(src); d != 0 {
		t.Errorf("delay after a quiet spell %v, want 0", d)
	}
}

func TestSSHHostKeyPersists(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ssh_host_ed25519_key")
	a, err := NewSSHServer(NewShell(sampleTCBs), SSHConfig{HostKey: path, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, mode %v", err, fi.Mode())
	}
	if a.HostKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("host key type %s", a.HostKey().Type())
	}
	b, err := NewSSHServer(NewShell(sampleTCBs), SSHConfig{HostKey: path, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.HostKey().Marshal(), b.HostKey().Marshal()) {
		t.Error("the second start made a new host key")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind in the key's directory: %v", entries)
	}

	if _, err := NewSSHServer(NewShell(sampleTCBs), SSHConfig{HostKey: filepath.Join(dir, "missing", "key"), Log: quiet}); err == nil ||
		!strings.Contains(err.Error(), "missing") {
		t.Errorf("host key in a missing directory: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := NewSSHServer(NewShell(sampleTCBs), SSHConfig{HostKey: bad, Log: quiet}); err == nil {
		t.Error("a corrupt host key was taken")
	}
}

// syncBuffer collects a session's output as it arrives.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitOutput(t *testing.T, b *syncBuffer, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(b.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %d× %q in the session's output:\n%s", n, want, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSSHInteractiveShell(t *testing.T) {
	f := startSSH(t, nil)
	s, err := f.login(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 40, 120, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := s.StdinPipe()
	var out syncBuffer
	s.Stdout = &out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, &out, prompt, 1)
	io.WriteString(stdin, "show tcb\r")
	waitOutput(t, &out, prompt, 2)
	// Tab completes "sh" to "show " and "inter" to "interfaces ", and
	// history (up arrow) brings the last command back.
	io.WriteString(stdin, "sh\tinter\t\r")
	waitOutput(t, &out, prompt, 3)
	io.WriteString(stdin, "\x1b[A\r")
	waitOutput(t, &out, prompt, 4)
	io.WriteString(stdin, "bogus\r")
	waitOutput(t, &out, prompt, 5)
	io.WriteString(stdin, "exit\r")
	if err := s.Wait(); err != nil {
		t.Fatalf("shell ended with %v", err)
	}
	got := out.String()
	for _, want := range []string{"ESTABLISHED  198.18.0.2:7", "\r\n", `unknown command "bogus"`} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "no interfaces"); n != 2 {
		t.Errorf("show interfaces ran %d times, want 2 (typed with tab completion, then from history):\n%s", n, got)
	}
}

func TestSSHIdleTimeout(t *testing.T) {
	f := startSSH(t, func(c *SSHConfig) { c.IdleTimeout = 300 * time.Millisecond })
	c := f.login(t)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an idle connection stayed open")
	}
}

func TestSFTPServesDumpsReadOnly(t *testing.T) {
	f := startSSH(t, nil)
	c, err := sftp.NewClient(f.login(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	entries, err := c.ReadDir("/tcb")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if e.Size() == 0 {
			t.Errorf("%s has size 0", e.Name())
		}
	}
	if want := []string{"all.json", "all.pcap", "7.json", "7.pcap", "42.json", "42.pcap"}; !slicesEqual(names, want) {
		t.Errorf("/tcb lists %q, want %q", names, want)
	}
	r, err := c.Open("/tcb/7.json")
	if err != nil {
		t.Fatal(err)
	}
	var d tcpext.TCBDump
	if err := json.NewDecoder(r).Decode(&d); err != nil || d.TCB.ID != 7 || !d.Closed {
		t.Errorf("/tcb/7.json: %v, %+v", err, d.TCB)
	}
	r.Close()
	fi, err := c.Stat("/tcb/7.pcap")
	if err != nil || fi.Mode().Perm() != 0o444 || fi.IsDir() {
		t.Errorf("stat /tcb/7.pcap: %v %v", err, fi)
	}
	if _, err := c.Stat("/tcb/99.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a missing dump: %v", err)
	}
	if _, err := c.Create("/tcb/new"); err == nil {
		t.Error("created a file")
	}
	if err := c.Remove("/tcb/7.json"); err == nil {
		t.Error("removed a dump")
	}
	if err := c.Mkdir("/x"); err == nil {
		t.Error("made a directory")
	}
}

func TestSSHBoundsHandshakes(t *testing.T) {
	f := startSSH(t, nil)
	banner := func(c net.Conn) (string, error) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 64)
		n, err := c.Read(b)
		return string(b[:n]), err
	}
	var silent []net.Conn
	for range maxHandshakes {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if b, err := banner(c); err != nil || !strings.HasPrefix(b, "SSH-2.0-synfin") {
			t.Fatalf("banner %q, %v", b, err)
		}
		silent = append(silent, c)
	}
	extra, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if b, err := banner(extra); !errors.Is(err, io.EOF) {
		t.Errorf("connection %d past the bound of handshakes got %q, %v; want it closed", maxHandshakes+1, b, err)
	}
	silent[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := banner(c)
		c.Close()
		if strings.HasPrefix(b, "SSH-2.0-synfin") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a handshake slot freed by a client that left was not given to a new one")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSSHExecWithPtyGetsCRLF(t *testing.T) {
	f := startSSH(t, nil)
	s, err := f.login(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 40, 120, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out, err := s.Output("show tcb")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(out), "\r\n"); lines != 3 || strings.Count(string(out), "\n") != 3 {
		t.Errorf("with a pty, want the table's 3 lines ended by CRLF:\n%q", out)
	}
}

func TestSSHAuthorizedKeysReadAtEveryLogin(t *testing.T) {
	f := startSSH(t, nil)
	late := newKey(t)
	if _, err := f.dial(ssh.PublicKeys(late)); err == nil {
		t.Fatal("a key not yet authorized logged in")
	}
	ak := filepath.Join(f.dir, "authorized_keys")
	b, err := os.ReadFile(ak)
	if err != nil {
		t.Fatal(err)
	}
	// A limit the server cannot enforce keeps the key out.
	fenced := newKey(t)
	lines := "from=\"198.18.0.9\" " + string(ssh.MarshalAuthorizedKey(fenced.PublicKey())) +
		"restrict,no-pty " + string(ssh.MarshalAuthorizedKey(late.PublicKey()))
	if err := os.WriteFile(ak, append(b, lines...), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := f.dial(ssh.PublicKeys(late))
	if err != nil {
		t.Fatalf("a key added to authorized_keys (with harmless options) while running: %v", err)
	}
	c.Close()
	if _, err := f.dial(ssh.PublicKeys(fenced)); err == nil {
		t.Error("a key limited by from= logged in from anywhere")
	}
	os.Remove(ak)
	if _, err := f.dial(ssh.PublicKeys(f.key)); err == nil {
		t.Error("a key logged in after authorized_keys was removed")
	}
}

func TestSSHShellWithoutTerminalRunsAScript(t *testing.T) {
	f := startSSH(t, nil)
	c := f.login(t)
	script := func(lines string) (string, error) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Stdin = strings.NewReader(lines)
		var out syncBuffer
		s.Stdout = &out
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		err = s.Wait()
		return out.String(), err
	}
	out, err := script("show tcb --state listen\n\nshow tcb --port 7 --state established\n")
	if err != nil {
		t.Fatalf("script: %v", err)
	}
	if strings.Contains(out, prompt) || strings.Contains(out, "\r") || strings.Count(out, "ID  STATE") != 2 {
		t.Errorf("a script's output, without prompt, echo or CR:\n%q", out)
	}
	_, err = script("show tcb\nshow tcb 99\n")
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != StatusError {
		t.Errorf("a script whose last command failed ended with %v, want status %d", err, StatusError)
	}
}

func TestSSHTerminalOfUnknownSize(t *testing.T) {
	f := startSSH(t, nil)
	s, err := f.login(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	// ssh -tt from a script asks for a terminal of size 0x0.
	if err := s.RequestPty("xterm", 0, 0, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	s.Stdin = strings.NewReader("show tcb --state listen\rexit\r")
	var out syncBuffer
	s.Stdout = &out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, prompt+"show tcb --state listen") || !strings.Contains(got, "LISTEN") {
		t.Errorf("a terminal of unknown size should not wrap every character:\n%q", got)
	}
}
