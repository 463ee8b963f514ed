package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/synfin/synfin/tcpext"
	"github.com/synfin/synfin/tcpext/stacknet"
)

// tcpControl is the shell's handle on TCP (mgmt.TCPControl): tcpext's
// counters and abort, and diagnostic active opens over the firmware's stack.
type tcpControl struct {
	*tcpext.Protocol
	stack *stack.Stack
}

// Dial opens a connection from the firmware's address to remote, from
// localPort unless it is 0.
func (c tcpControl) Dial(ctx context.Context, remote netip.AddrPort, localPort uint16) (net.Conn, uint64, error) {
	conn, err := stacknet.DialTCP(ctx, c.stack,
		tcpip.FullAddress{Port: localPort},
		tcpip.FullAddress{Addr: tcpip.AddrFromSlice(remote.Addr().AsSlice()), Port: remote.Port()})
	if err != nil {
		return nil, 0, err
	}
	return conn, c.tcbID(conn.LocalAddr().String(), conn.RemoteAddr().String()), nil
}

// tcbID finds a connection's TCB by its addresses, as an endpoint does not
// tell its id. A TIME-WAIT TCB of an earlier connection may share them; the
// newest TCB is the live one. It returns 0 if the TCB is already gone.
func (c tcpControl) tcbID(local, remote string) uint64 {
	var id uint64
	for _, t := range c.TCBs() {
		if t.Local == local && t.Remote == remote {
			id = max(id, t.ID)
		}
	}
	return id
}

// endLogQueue bounds the connection ends waiting to be logged.
const endLogQueue = 256

// endLog logs every connection that ends other than in order (reset, timed
// out, aborted, refused) with its TCB id and tcpext's cause, so the reason
// outlives the TCB, which leaves the table when it closes. tcpext reports
// transitions with the TCB locked, so they are queued and written by run: a
// slow log, such as a serial console, then loses lines (counted) rather than
// stalling TCP.
type endLog struct {
	log     *slog.Logger
	queue   chan tcpext.Transition
	dropped atomic.Uint64
}

func newEndLog(log *slog.Logger) *endLog {
	return &endLog{log: log, queue: make(chan tcpext.Transition, endLogQueue)}
}

// observe is tcpext's OnTransition hook.
func (l *endLog) observe(tr tcpext.Transition) {
	if tr.To != tcpext.StateClosed {
		return
	}
	switch tr.From {
	case tcpext.StateTimeWait, tcpext.StateLastAck, tcpext.StateListen:
		return // the orderly ends
	}
	select {
	case l.queue <- tr:
	default:
		l.dropped.Add(1)
	}
}

// run writes the queued ends until ctx is done.
func (l *endLog) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case tr := <-l.queue:
			attrs := []any{"tcb", tr.ID, "state", tr.From.String(), "cause", tr.Cause}
			if n := l.dropped.Swap(0); n > 0 {
				attrs = append(attrs, "unlogged_before", n)
			}
			l.log.Info("tcp connection ended", attrs...)
		}
	}
}
