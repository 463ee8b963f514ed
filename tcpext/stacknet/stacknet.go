// Package stacknet adapts TCP endpoints of the firmware's netstack to the
// standard net.Listener and net.Conn interfaces.
//
// gVisor's gonet adapter does the same, but it imports gVisor's own TCP
// (only for its protocol number), and that package must never be linked into
// the firmware: TCP is tcpext's. This package therefore talks to the stack
// through the transport-neutral tcpip.Endpoint interface only.
package stacknet

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
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
		return nil, opError("listen", tcpAddr(addr), errors.New(terr.String()))
	}
	if terr := ep.Bind(addr); terr != nil {
		ep.Close()
		return nil, opError("bind", tcpAddr(addr), errors.New(terr.String()))
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, opError("listen", tcpAddr(addr), errors.New(terr.String()))
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
			return nil, opError("accept", l.Addr(), errors.New(terr.String()))
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
			return 0, c.opError("read", errors.New(terr.String()))
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
			return n, c.opError("write", errors.New(terr.String()))
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
// when unread data remains). Blocked Reads and Writes return net.ErrClosed.
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
