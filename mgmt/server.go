package mgmt

// The local socket protocol.
//
// A client sends a command as one line of text ending in "\n" (a trailing
// "\r" is ignored), at most MaxLineLen bytes. The server answers with a
// sequence of frames, each a one-byte type, a four-byte big-endian payload
// length, and the payload:
//
//	'o'  a chunk of the command's output: any bytes, at most maxFrameLen
//	's'  the command's exit status as a four-byte big-endian int32; it
//	     ends the answer
//
// Output is framed rather than delimited because it may be binary (dumps,
// pcap). After the status the connection takes the next command, so an
// interactive client keeps one connection open; either side may close it
// between commands. A line longer than MaxLineLen gets an error answer with
// StatusUsage, and the server then closes the connection because it cannot
// find the start of the next command.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/synfin/synfin/internal/connserve"
)

// MaxLineLen bounds a command line on the local socket.
const MaxLineLen = 64 << 10

// Frame types of the local socket protocol.
const (
	frameOutput = 'o'
	frameStatus = 's'
)

// maxFrameLen bounds one output frame's payload.
const maxFrameLen = 64 << 10

// Server serves a Shell on a local unix socket.
type Server struct {
	shell *Shell
	log   *slog.Logger
	ln    *net.UnixListener
}

// Listen creates the unix socket at path for shell. It creates missing parent
// directories (mode 0700), replaces a stale socket left by a previous run but
// refuses to take over one a live server answers on or a file that is not a
// socket, and makes the socket mode 0600. A nil log means slog.Default().
func Listen(path string, shell *Shell, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("mgmt socket: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, fmt.Errorf("mgmt socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("mgmt socket: %w", err)
	}
	// The socket is created with the umask's mode; it is only briefly
	// wider than 0600, and the parent directory we create is 0700.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mgmt socket: %w", err)
	}
	return &Server{shell: shell, log: log, ln: ln}, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by a running server", path)
	}
	return os.Remove(path)
}

// Serve accepts clients, each in its own goroutine, until ctx is done. It then
// closes the socket (removing its file) and every client connection, waits
// for them and returns nil. Commands run with ctx.
func (s *Server) Serve(ctx context.Context) error {
	err := connserve.Serve(ctx, s.ln, s.log.With("server", "mgmt socket"), func(c net.Conn) { s.serveConn(ctx, c) })
	if err != nil {
		return fmt.Errorf("mgmt socket: %w", err)
	}
	return nil
}

// serveConn runs the commands of one client until it hangs up.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer func() {
		// Shell.Run contains command panics; this guards the framing.
		if r := recover(); r != nil {
			s.log.Error("mgmt socket: connection handler panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 4096), MaxLineLen)
	bw := bufio.NewWriter(c)
	out := output{Writer: bufio.NewWriterSize(frameWriter{bw}, maxFrameLen), conn: bw}
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		status := s.shell.Run(ctx, line, out)
		if err := out.Flush(); err != nil {
			s.log.Debug("mgmt socket: client gone", "err", err)
			return
		}
		if err := writeStatus(bw, status); err != nil {
			s.log.Debug("mgmt socket: client gone", "err", err)
			return
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		fmt.Fprintf(frameWriter{bw}, "error: command longer than %d bytes\n", MaxLineLen)
		writeStatus(bw, StatusUsage)
	}
}

// output is where a command writes: its many small writes are gathered
// into few frames, and the frames into few writes to the connection.
type output struct {
	*bufio.Writer // into frames
	conn          *bufio.Writer
}

// Flush sends everything written so far to the client, for a command that
// shows progress before it ends.
func (o output) Flush() error {
	if err := o.Writer.Flush(); err != nil {
		return err
	}
	return o.conn.Flush()
}

// frameWriter writes everything as output frames.
type frameWriter struct{ w io.Writer }

func (f frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxFrameLen)]
		if err := writeFrame(f.w, frameOutput, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// writeStatus ends an answer and sends it on its way.
func writeStatus(w *bufio.Writer, status int) error {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(int32(status)))
	if err := writeFrame(w, frameStatus, p[:]); err != nil {
		return err
	}
	return w.Flush()
}
