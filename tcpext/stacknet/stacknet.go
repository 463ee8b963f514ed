// Package stacknet adapts TCP endpoints of a netstack to the standard
// net.Listener and net.Conn interfaces, and dials connections over it.
//
// gVisor's gonet adapter does the same, but it imports gVisor's own TCP
// (only for its protocol number), and that package must never be linked into
// the firmware: TCP is tcpext's. This package therefore talks to the stack
// through the transport-neutral tcpip.Endpoint interface only.
//
// Errors wrap the errno a Linux socket would report where there is one, so
// errors.Is(err, syscall.ECONNRESET) tells a reset from other failures, and
// Read returns io.EOF, not an error, once the peer has closed its side.
package stacknet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// listenBacklog matches Linux's default somaxconn.
const listenBacklog = 4096

// Listener is a net.Listener over a listening TCP endpoint of the stack.
type Listener struct {
	ep        tcpip.Endpoint
	wq        *waiter.Queue
	closeOnce sync.Once
	closed    chan struct{}
}

// ListenTCP binds a TCP endpoint of s to addr and listens on it. An empty
// addr.Addr listens on every address of the stack.
func ListenTCP(s *stack.Stack, addr tcpip.FullAddress, network tcpip.NetworkProtocolNumber) (*Listener, error) {
	wq := new(waiter.Queue)
	ep, terr := s.NewEndpoint(header.TCPProtocolNumber, network, wq)
	if terr != nil {
		return nil, opError("listen", tcpAddr(addr), sysError("socket", terr))
	}
	if terr := ep.Bind(addr); terr != nil {
		ep.Close()
		return nil, opError("listen", tcpAddr(addr), sysError("bind", terr))
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, opError("listen", tcpAddr(addr), sysError("listen", terr))
	}
	return &Listener{ep: ep, wq: wq, closed: make(chan struct{})}, nil
}

// Accept waits for and returns the next connection. After Close it returns
// an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	var (
		entry  waiter.Entry
		notify <-chan struct{}
	)
	for {
		select {
		case <-l.closed:
			return nil, opError("accept", l.Addr(), net.ErrClosed)
		default:
		}
		ep, wq, terr := l.ep.Accept(nil)
		if terr == nil {
			return newConn(ep, wq), nil
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return nil, opError("accept", l.Addr(), sysError("accept", terr))
		}
		if notify == nil {
			// Register, then try again before sleeping, so a connection
			// that arrived in between is not missed.
			entry, notify = waiter.NewChannelEntry(waiter.ReadableEvents)
			l.wq.EventRegister(&entry)
			defer l.wq.EventUnregister(&entry)
			continue
		}
		select {
		case <-l.closed:
		case <-notify:
		}
	}
}

// Close stops listening. Pending and future Accept calls fail.
func (l *Listener) Close() error {
	err := opError("close", l.Addr(), net.ErrClosed)
	l.closeOnce.Do(func() {
		close(l.closed)
		l.ep.Close()
		err = nil
	})
	return err
}

// Addr returns the listener's local address.
func (l *Listener) Addr() net.Addr {
	a, terr := l.ep.GetLocalAddress()
	if terr != nil {
		return &net.TCPAddr{}
	}
	return tcpAddr(a)
}

// DialTCP opens a TCP connection from local to remote over s and waits until
// it is established, fails, or ctx is done. A zero local lets the stack pick
// the address and an ephemeral port; a local port (or address) is bound
// first, as for a simultaneous open to a known port. The network protocol
// follows from remote's address.
//
// A refused connection yields an error wrapping syscall.ECONNREFUSED, one
// whose SYNs went unanswered syscall.ETIMEDOUT; when ctx ends first the
// attempt is abandoned and the error wraps ctx.Err().
func DialTCP(ctx context.Context, s *stack.Stack, local, remote tcpip.FullAddress) (*Conn, error) {
	network := header.IPv4ProtocolNumber
	if remote.Addr.Len() == header.IPv6AddressSize {
		network = header.IPv6ProtocolNumber
	}
	fail := func(ep tcpip.Endpoint, err error) (*Conn, error) {
		oe := &net.OpError{Op: "dial", Net: "tcp", Addr: tcpAddr(remote), Err: err}
		if ep != nil {
			if a, terr := ep.GetLocalAddress(); terr == nil && a.Port != 0 {
				oe.Source = tcpAddr(a)
			}
			ep.Close()
		}
		return nil, oe
	}
	if err := ctx.Err(); err != nil {
		return fail(nil, err)
	}
	wq := new(waiter.Queue)
	ep, terr := s.NewEndpoint(header.TCPProtocolNumber, network, wq)
	if terr != nil {
		return fail(nil, sysError("socket", terr))
	}
	if local != (tcpip.FullAddress{}) {
		if terr := ep.Bind(local); terr != nil {
			return fail(ep, sysError("bind", terr))
		}
	}

	// Registered before Connect so that an answer arriving at once is not
	// missed. Writable means established; HUp and Err mean it failed.
	const done = waiter.WritableEvents | waiter.EventHUp | waiter.EventErr
	entry, notify := waiter.NewChannelEntry(done)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)

	switch terr := ep.Connect(remote); terr.(type) {
	case nil, *tcpip.ErrConnectStarted:
	default:
		return fail(ep, sysError("connect", terr))
	}
	// Events also fire on steps that are not the end of the handshake
	// (SYN-SENT to SYN-RECEIVED in a simultaneous open), so readiness, not
	// the wake-up itself, says when it is over.
	for ep.Readiness(done) == 0 {
		select {
		case <-ctx.Done():
			return fail(ep, ctx.Err())
		case <-notify:
		}
	}
	if terr := ep.LastError(); terr != nil {
		return fail(ep, sysError("connect", terr))
	}
	return newConn(ep, wq), nil
}

// Conn is a net.Conn over a connected TCP endpoint of the stack.
type Conn struct {
	ep tcpip.Endpoint
	wq *waiter.Queue

	// readMu and writeMu keep concurrent Reads (Writes) from interleaving
	// their partial transfers.
	readMu  sync.Mutex
	writeMu sync.Mutex

	readDeadline  deadline
	writeDeadline deadline

	closeOnce sync.Once
	closed    chan struct{}
}

func newConn(ep tcpip.Endpoint, wq *waiter.Queue) *Conn {
	return &Conn{ep: ep, wq: wq, closed: make(chan struct{})}
}

// Read reads data from the connection. It returns io.EOF once the peer has
// closed its side and all data has been read.
func (c *Conn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if len(b) == 0 {
		return 0, nil
	}
	var (
		entry  waiter.Entry
		notify <-chan struct{}
	)
	for {
		expired, moved := c.readDeadline.channels()
		select {
		case <-c.closed:
			return 0, c.opError("read", net.ErrClosed)
		case <-expired:
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		default:
		}
		w := tcpip.SliceWriter(b)
		res, terr := c.ep.Read(&w, tcpip.ReadOptions{})
		switch terr.(type) {
		case nil:
			c.ep.ModerateRecvBuf(res.Count)
			return res.Count, nil
		case *tcpip.ErrClosedForReceive:
			return 0, io.EOF
		case *tcpip.ErrWouldBlock:
		default:
			return 0, c.opError("read", sysError("read", terr))
		}
		if notify == nil {
			entry, notify = waiter.NewChannelEntry(waiter.ReadableEvents)
			c.wq.EventRegister(&entry)
			defer c.wq.EventUnregister(&entry)
			continue
		}
		select {
		case <-c.closed:
		case <-expired:
		case <-moved:
		case <-notify:
		}
	}
}

// Write writes all of b unless an error (including a deadline) stops it.
func (c *Conn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	var (
		r      bytes.Reader
		n      int
		entry  waiter.Entry
		notify <-chan struct{}
	)
	for n < len(b) {
		expired, moved := c.writeDeadline.channels()
		select {
		case <-c.closed:
			return n, c.opError("write", net.ErrClosed)
		case <-expired:
			return n, c.opError("write", os.ErrDeadlineExceeded)
		default:
		}
		// The endpoint may take only part of b without an error when its
		// send buffer fills, or nothing with ErrWouldBlock.
		r.Reset(b[n:])
		written, terr := c.ep.Write(&r, tcpip.WriteOptions{})
		n += int(written)
		switch terr.(type) {
		case nil:
			continue
		case *tcpip.ErrWouldBlock:
		default:
			return n, c.opError("write", sysError("write", terr))
		}
		if notify == nil {
			entry, notify = waiter.NewChannelEntry(waiter.WritableEvents)
			c.wq.EventRegister(&entry)
			defer c.wq.EventUnregister(&entry)
			continue
		}
		select {
		case <-c.closed:
		case <-expired:
		case <-moved:
		case <-notify:
		}
	}
	return n, nil
}

// Close closes the connection (a full close: the endpoint sends FIN, or RST
// when unread data remains or after SetLinger(0)). Blocked Reads and Writes
// return net.ErrClosed.
func (c *Conn) Close() error {
	err := c.opError("close", net.ErrClosed)
	c.closeOnce.Do(func() {
		close(c.closed)
		c.ep.Close()
		c.readDeadline.stop()
		c.writeDeadline.stop()
		err = nil
	})
	return err
}

// CloseWrite shuts down the sending side: the endpoint sends FIN once the
// queued data is out, and the connection stays open for reading.
func (c *Conn) CloseWrite() error {
	if terr := c.ep.Shutdown(tcpip.ShutdownWrite); terr != nil {
		return c.opError("close", sysError("shutdown", terr))
	}
	return nil
}

// SetKeepAlive turns TCP keepalive on or off for the connection; the timers
// are the protocol's. The signature is net.TCPConn's, so code can enable
// keepalive on either kind of connection through one interface.
func (c *Conn) SetKeepAlive(on bool) error {
	c.ep.SocketOptions().SetKeepAlive(on)
	return nil
}

// SetLinger sets what Close does with data not yet sent, as
// net.TCPConn.SetLinger does: sec < 0 (the default) sends it and closes in
// the background with FIN; sec == 0 discards it and resets the connection
// with RST. A positive sec, which makes Close wait, is not supported: Close
// never blocks.
func (c *Conn) SetLinger(sec int) error {
	switch {
	case sec < 0:
		c.ep.SocketOptions().SetLinger(tcpip.LingerOption{})
	case sec == 0:
		c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true})
	default:
		return c.opError("set", fmt.Errorf("linger %ds: only 0 (reset) or negative (orderly close) are supported", sec))
	}
	return nil
}

// LocalAddr returns the local address of the connection.
func (c *Conn) LocalAddr() net.Addr {
	a, terr := c.ep.GetLocalAddress()
	if terr != nil {
		return &net.TCPAddr{}
	}
	return tcpAddr(a)
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr {
	a, terr := c.ep.GetRemoteAddress()
	if terr != nil {
		return &net.TCPAddr{}
	}
	return tcpAddr(a)
}

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.readDeadline.set(t)
	c.writeDeadline.set(t)
	return nil
}

// SetReadDeadline sets the deadline for current and future Reads.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.set(t)
	return nil
}

// SetWriteDeadline sets the deadline for current and future Writes.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.set(t)
	return nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

func opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: addr, Err: err}
}

// sysError turns an endpoint error into the error the socket call would
// return on Linux: an *os.SyscallError around the errno, so that
// errors.Is(err, syscall.ECONNRESET) and the like work. Errors without an
// errno keep netstack's text.
func sysError(call string, terr tcpip.Error) error {
	var errno syscall.Errno
	switch terr.(type) {
	case *tcpip.ErrConnectionReset:
		errno = syscall.ECONNRESET
	case *tcpip.ErrConnectionRefused:
		errno = syscall.ECONNREFUSED
	case *tcpip.ErrTimeout:
		errno = syscall.ETIMEDOUT
	case *tcpip.ErrConnectionAborted:
		errno = syscall.ECONNABORTED
	case *tcpip.ErrNetworkUnreachable:
		errno = syscall.ENETUNREACH
	case *tcpip.ErrHostUnreachable:
		errno = syscall.EHOSTUNREACH
	case *tcpip.ErrHostDown:
		errno = syscall.EHOSTDOWN
	case *tcpip.ErrPortInUse:
		errno = syscall.EADDRINUSE
	case *tcpip.ErrNoPortAvailable, *tcpip.ErrBadLocalAddress:
		errno = syscall.EADDRNOTAVAIL
	case *tcpip.ErrAlreadyConnected:
		errno = syscall.EISCONN
	case *tcpip.ErrAlreadyConnecting:
		errno = syscall.EALREADY
	case *tcpip.ErrNotConnected:
		errno = syscall.ENOTCONN
	case *tcpip.ErrClosedForSend:
		errno = syscall.EPIPE
	default:
		return os.NewSyscallError(call, errors.New(terr.String()))
	}
	return os.NewSyscallError(call, errno)
}

func tcpAddr(a tcpip.FullAddress) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IP(a.Addr.AsSlice()), Port: int(a.Port)}
}

// deadline is one direction's deadline. A blocked operation waits on two
// channels: expired, closed when the deadline passes, and changed, closed
// when the deadline is moved, so the operation picks up the new one.
type deadline struct {
	mu      sync.Mutex
	timer   *time.Timer
	expired chan struct{}
	moved   chan struct{}
}

// channels returns the channel closed when the current deadline passes and
// the one closed when the deadline is next moved. They are taken together so
// that a move between the two cannot be missed.
func (d *deadline) channels() (expired, moved <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.expired == nil {
		d.expired = make(chan struct{})
	}
	if d.moved == nil {
		d.moved = make(chan struct{})
	}
	return d.expired, d.moved
}

// set moves the deadline to t; the zero t means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
	// Every set starts a fresh expiry channel: the old one may already be
	// closed, or be about to be closed by a timer that Stop came too late
	// for.
	d.expired = make(chan struct{})
	if d.moved != nil {
		close(d.moved)
		d.moved = nil
	}
	if t.IsZero() {
		return
	}
	ch := d.expired
	if wait := time.Until(t); wait > 0 {
		d.timer = time.AfterFunc(wait, func() { close(ch) })
	} else {
		close(ch)
	}
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
}

func (d *deadline) stopLocked() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
