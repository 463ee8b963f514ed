package mgmt

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// idleConn closes a connection once it has carried nothing, either way,
// for its timeout. Output counts as activity, so a command printing for a
// long time (tcp connect --hold) is not cut off.
type idleConn struct {
	net.Conn
	timeout time.Duration
	log     *slog.Logger
	last    atomic.Int64 // unix nanoseconds of the last read or write
	once    sync.Once
	timer   *time.Timer
}

func newIdleConn(c net.Conn, timeout time.Duration, log *slog.Logger) *idleConn {
	ic := &idleConn{Conn: c, timeout: timeout, log: log}
	ic.touch()
	ic.timer = time.AfterFunc(timeout, ic.check)
	return ic
}

func (c *idleConn) touch() { c.last.Store(time.Now().UnixNano()) }

// check closes the connection if it has been idle for the timeout, else
// looks again when it could have been.
func (c *idleConn) check() {
	idle := time.Since(time.Unix(0, c.last.Load()))
	if idle < c.timeout {
		c.timer.Reset(c.timeout - idle)
		return
	}
	c.log.Info("ssh: closing idle connection", "remote", c.RemoteAddr().String(), "idle", idle.Round(time.Millisecond))
	c.Close()
}

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *idleConn) Close() error {
	c.once.Do(func() { c.timer.Stop() })
	return c.Conn.Close()
}

// crlfWriter turns line ends into CRLF, for a client's terminal in raw
// mode.
type crlfWriter struct{ w io.Writer }

func (c crlfWriter) Write(p []byte) (int, error) {
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// newFlushWriter gathers a command's small writes; a command showing
// progress calls Flush.
func newFlushWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 32<<10) }
