package mgmt

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/synfin/synfin/internal/connserve"
)

// handshakeTimeout bounds an SSH handshake including authentication, so a
// client that connects and says nothing does not hold a goroutine forever.
// It leaves room for the failed-login delays of authLimiter.
const handshakeTimeout = time.Minute

// maxAuthTries is how many authentication attempts one SSH connection gets,
// as OpenSSH's MaxAuthTries.
const maxAuthTries = 6

// maxHandshakes bounds the connections still in their handshake, as
// OpenSSH's MaxStartups: failed logins wait (authLimiter), and a flood of
// connections must not pile up goroutines while they do. Connections past
// the bound are closed at once.
const maxHandshakes = 16

// SSHConfig configures an SSHServer.
type SSHConfig struct {
	// HostKey is the path of the server's ed25519 host key (OpenSSH
	// format). It is generated when the file does not exist; its directory
	// must.
	HostKey string
	// AuthorizedKeys is the path of an OpenSSH authorized_keys file. It is
	// read at every login, so edits take effect at once; a missing file
	// lets no key in.
	AuthorizedKeys string
	// PasswordHash is a bcrypt hash of the password that logs in; empty
	// refuses password logins altogether.
	PasswordHash string
	// IdleTimeout closes a connection that has carried nothing for this
	// long; 0 never does.
	IdleTimeout time.Duration
	// Log is where the server logs logins and failures; nil means
	// slog.Default().
	Log *slog.Logger
}

// SSHServer serves a Shell over SSH: an interactive shell with line
// editing, exec requests ("ssh box show tcb") and a read-only SFTP
// subsystem serving the TCB dumps. Any user name is accepted: the box has
// one administrator, told apart by key.
type SSHServer struct {
	shell   *Shell
	cfg     SSHConfig
	log     *slog.Logger
	hostKey ssh.Signer
	limiter *authLimiter
	// handshakes holds a token per connection in its handshake.
	handshakes chan struct{}
}

// NewSSHServer returns an SSH server for shell, loading the host key from
// cfg.HostKey or creating it there on first use.
func NewSSHServer(shell *Shell, cfg SSHConfig) (*SSHServer, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if cfg.PasswordHash != "" {
		if _, err := bcrypt.Cost([]byte(cfg.PasswordHash)); err != nil {
			return nil, fmt.Errorf("ssh: password hash: %w", err)
		}
	}
	key, created, err := loadOrCreateHostKey(cfg.HostKey)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("ssh: generated host key", "path", cfg.HostKey, "fingerprint", ssh.FingerprintSHA256(key.PublicKey()))
	}
	if _, err := os.Stat(cfg.AuthorizedKeys); err != nil {
		log.Warn("ssh: no authorized keys: public-key logins will fail until the file exists", "path", cfg.AuthorizedKeys, "err", err)
	}
	return &SSHServer{
		shell:      shell,
		cfg:        cfg,
		log:        log,
		hostKey:    key,
		limiter:    newAuthLimiter(),
		handshakes: make(chan struct{}, maxHandshakes),
	}, nil
}

// HostKey returns the server's public host key.
func (s *SSHServer) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// loadOrCreateHostKey reads the private key at path, or generates an ed25519
// key and stores it there. The new key is written to a temporary file and
// linked into place, so a crash never leaves half a key behind and two
// starts racing agree on one key.
func loadOrCreateHostKey(path string) (key ssh.Signer, created bool, err error) {
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			key, err := ssh.ParsePrivateKey(b)
			if err != nil {
				return nil, false, fmt.Errorf("ssh: host key %s: %w", path, err)
			}
			return key, created, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("ssh: host key: %w", err)
		}
		if err := writeNewHostKey(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, false, fmt.Errorf("ssh: create host key %s: %w", path, err)
		}
		created = true
	}
	return nil, false, fmt.Errorf("ssh: host key %s vanished after it was created", path)
}

func writeNewHostKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "synfin host key")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".hostkey-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := errors.Join(pem.Encode(tmp, block), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	// CreateTemp made the file 0600. A link fails if another start got
	// there first; a file system without links (FAT) gets a rename.
	err = os.Link(tmp.Name(), path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		err = os.Rename(tmp.Name(), path)
	}
	return err
}

func (s *SSHServer) serverConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		MaxAuthTries:      maxAuthTries,
		PublicKeyCallback: s.checkPublicKey,
		ServerVersion:     "SSH-2.0-synfin",
	}
	if s.cfg.PasswordHash != "" {
		cfg.PasswordCallback = s.checkPassword
	}
	cfg.AddHostKey(s.hostKey)
	return cfg
}

func (s *SSHServer) checkPublicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	src := sourceOf(meta.RemoteAddr())
	s.limiter.wait(src)
	keys, skipped, err := readAuthorizedKeys(s.cfg.AuthorizedKeys)
	if err != nil {
		s.log.Warn("ssh: reading authorized keys", "err", err)
	}
	if skipped > 0 {
		s.log.Warn("ssh: authorized keys with options this server cannot enforce are ignored", "path", s.cfg.AuthorizedKeys, "keys", skipped)
	}
	want := string(key.Marshal())
	for _, k := range keys {
		if string(k.Marshal()) == want {
			return &ssh.Permissions{Extensions: map[string]string{"key": ssh.FingerprintSHA256(key)}}, nil
		}
	}
	s.limiter.failed(src)
	s.log.Info("ssh: login refused: unknown key", "user", meta.User(), "remote", meta.RemoteAddr().String(),
		"key", ssh.FingerprintSHA256(key))
	return nil, errors.New("unknown public key")
}

func (s *SSHServer) checkPassword(meta ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
	src := sourceOf(meta.RemoteAddr())
	s.limiter.wait(src)
	if bcrypt.CompareHashAndPassword([]byte(s.cfg.PasswordHash), password) == nil {
		return &ssh.Permissions{Extensions: map[string]string{"key": "password"}}, nil
	}
	s.limiter.failed(src)
	s.log.Info("ssh: login refused: wrong password", "user", meta.User(), "remote", meta.RemoteAddr().String())
	return nil, errors.New("wrong password")
}

// harmlessKeyOptions are the authorized_keys options the server honours by
// what it is: it forwards nothing and runs no user rc, and a session is a
// shell anyway.
var harmlessKeyOptions = map[string]bool{
	"restrict": true, "no-agent-forwarding": true, "no-port-forwarding": true,
	"no-X11-forwarding": true, "no-user-rc": true, "no-pty": true,
}

// readAuthorizedKeys parses an authorized_keys file. Like sshd, it skips
// lines that hold no key it knows. A key with an option that would limit
// it in a way this server cannot enforce (from=, command=, expiry-time=,
// ...) is left out too, so the limit fails closed; skipped tells how many.
func readAuthorizedKeys(path string) (keys []ssh.PublicKey, skipped int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	for len(b) > 0 {
		// The error only says that the rest holds no key.
		key, _, options, rest, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			break
		}
		b = rest
		ok := true
		for _, o := range options {
			ok = ok && harmlessKeyOptions[o]
		}
		if !ok {
			skipped++
			continue
		}
		keys = append(keys, key)
	}
	return keys, skipped, nil
}

// sourceOf is the address failed logins are counted against.
func sourceOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Serve accepts SSH connections on ln until ctx is done, then closes ln and
// every connection and waits for their sessions to end. Commands run with
// a context that ends with their connection or ctx.
func (s *SSHServer) Serve(ctx context.Context, ln net.Listener) error {
	config := s.serverConfig()
	err := connserve.Serve(ctx, ln, s.log.With("server", "ssh"), func(c net.Conn) {
		if s.cfg.IdleTimeout > 0 {
			c = newIdleConn(c, s.cfg.IdleTimeout, s.log)
		}
		s.serveConn(ctx, c, config)
	})
	if err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	return nil
}

// serveConn runs one SSH connection: the handshake, then its channels.
func (s *SSHServer) serveConn(ctx context.Context, c net.Conn, config *ssh.ServerConfig) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("ssh: connection handler panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	select {
	case s.handshakes <- struct{}{}:
	default:
		s.log.Warn("ssh: too many connections in their handshake; closing a new one", "remote", c.RemoteAddr().String())
		return
	}
	hs := time.AfterFunc(handshakeTimeout, func() { c.Close() })
	conn, chans, reqs, err := ssh.NewServerConn(c, config)
	<-s.handshakes
	if !hs.Stop() {
		s.log.Info("ssh: handshake timed out", "remote", c.RemoteAddr().String())
		return
	}
	if err != nil {
		s.log.Debug("ssh: handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	defer conn.Close()
	s.limiter.succeeded(sourceOf(conn.RemoteAddr()))
	log := s.log.With("user", conn.User(), "remote", conn.RemoteAddr().String())
	log.Info("ssh: login", "auth", conn.Permissions.Extensions["key"])

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go ssh.DiscardRequests(reqs)
	var sessions sync.WaitGroup
	defer sessions.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			log.Debug("ssh: accepting a channel", "err", err)
			continue
		}
		sessions.Go(func() { s.session(ctx, ch, chReqs, log) })
	}
	log.Info("ssh: logout")
}

// Payloads of the session requests of RFC 4254 section 6.
type (
	ptyRequest struct {
		Term          string
		Columns, Rows uint32
		Width, Height uint32
		Modes         string
	}
	windowChange struct {
		Columns, Rows uint32
		Width, Height uint32
	}
	execRequest       struct{ Command string }
	subsystemRequest  struct{ Name string }
	exitStatusRequest struct{ Status uint32 }
)

// session serves one session channel: its requests, and the one shell,
// exec or subsystem it runs.
func (s *SSHServer) session(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, log *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		pty     *ptyRequest
		tty     *term.Terminal
		started bool
		running sync.WaitGroup
	)
	defer func() {
		// The requests end when the channel is closed: by the client,
		// or by us once the command has ended.
		cancel()
		running.Wait()
	}()
	// start runs body as the session's one program, then reports its
	// status and closes the channel. It only records body: the program
	// starts once the request that asked for it has been answered, or a
	// quick command could close the channel before the answer and the
	// client would see EOF instead of the command's output.
	var program func() int
	start := func(body func() int) {
		started = true
		program = body
	}
	run := func(body func() int) {
		running.Go(func() {
			status := StatusError
			defer func() {
				if r := recover(); r != nil {
					log.Error("ssh: session panicked", "panic", r, "stack", string(debug.Stack()))
				}
				if _, err := ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusRequest{uint32(status)})); err != nil {
					log.Debug("ssh: sending exit status", "err", err)
				}
				ch.Close()
			}()
			status = body()
		})
	}
	for req := range reqs {
		ok := false
		switch req.Type {
		case "pty-req":
			var p ptyRequest
			if ssh.Unmarshal(req.Payload, &p) == nil && !started {
				pty, ok = &p, true
			}
		case "window-change":
			var wc windowChange
			if ssh.Unmarshal(req.Payload, &wc) == nil {
				if pty != nil {
					pty.Columns, pty.Rows = wc.Columns, wc.Rows
				}
				if tty != nil {
					setSize(tty, wc.Columns, wc.Rows)
				}
				ok = true
			}
		case "env":
			// Accepted and ignored, so clients sending LANG do not warn.
			ok = true
		case "shell":
			if started {
				break
			}
			ok = true
			if pty == nil {
				log.Info("ssh: shell without a terminal")
				start(func() int { return s.plainShell(ctx, ch) })
				break
			}
			tty = term.NewTerminal(ch, prompt)
			setSize(tty, pty.Columns, pty.Rows)
			log.Info("ssh: interactive shell")
			start(func() int {
				if err := s.shell.Interactive(ctx, tty); err != nil {
					log.Debug("ssh: shell ended", "err", err)
				}
				return StatusOK
			})
		case "exec":
			var e execRequest
			if started || ssh.Unmarshal(req.Payload, &e) != nil {
				break
			}
			ok = true
			log.Info("ssh: exec", "command", e.Command)
			crlf := pty != nil
			start(func() int { return s.exec(ctx, ch, e.Command, crlf) })
		case "subsystem":
			var sub subsystemRequest
			if started || ssh.Unmarshal(req.Payload, &sub) != nil || sub.Name != "sftp" {
				break
			}
			ok = true
			log.Info("ssh: sftp session")
			start(func() int {
				if err := s.shell.ServeSFTP(ch); err != nil {
					log.Debug("ssh: sftp ended", "err", err)
					return StatusError
				}
				return StatusOK
			})
		}
		if req.WantReply {
			req.Reply(ok, nil)
		}
		if program != nil {
			run(program)
			program = nil
		}
	}
}

// setSize tells t the client's terminal size. A client that does not know
// it (ssh -tt from a script) says 0, which would wrap every character;
// then the terminal keeps its default of 80x24.
func setSize(t *term.Terminal, cols, rows uint32) {
	if cols > 0 && rows > 0 {
		t.SetSize(int(cols), int(rows))
	}
}

// plainShell runs the lines of a shell session without a terminal
// ("ssh BOX < commands") as sh runs a script: no prompt, no echo, output
// as it is, and the exit status of the last command.
func (s *SSHServer) plainShell(ctx context.Context, ch ssh.Channel) int {
	sc := bufio.NewScanner(ch)
	sc.Buffer(make([]byte, 0, 4096), MaxLineLen)
	status := StatusOK
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if line == "exit" || line == "quit" || line == "logout" {
			break
		}
		out := newFlushWriter(ch)
		status = s.shell.Run(ctx, line, out)
		if err := out.Flush(); err != nil {
			return StatusError
		}
	}
	if sc.Err() != nil {
		return StatusUsage
	}
	return status
}

// exec runs one command for an exec request. With a pty the client's
// terminal expects CRLF line ends.
func (s *SSHServer) exec(ctx context.Context, ch ssh.Channel, command string, crlf bool) int {
	var w io.Writer = ch
	if crlf {
		w = crlfWriter{ch}
	}
	out := newFlushWriter(w)
	status := s.shell.Run(ctx, command, out)
	if err := out.Flush(); err != nil {
		return StatusError
	}
	return status
}
