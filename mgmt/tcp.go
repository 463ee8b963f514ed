package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/synfin/synfin/tcpext"
)

// Limits of "tcp connect".
const (
	// maxShown bounds the received bytes printed; the rest is counted.
	maxShown = 4 << 10
	// maxHold bounds --hold: the command occupies its shell session.
	maxHold = time.Hour
	// finishWait bounds the wait, after our FIN, for the peer to finish
	// sending and close its side.
	finishWait = 5 * time.Second
)

var errNoTCPControl = errors.New("no TCP control available")

func (s *Shell) clearTCB(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) != 1 {
		return usageErrorf("want one TCB id")
	}
	id, err := strconv.ParseUint(a.pos[0], 10, 64)
	if err != nil {
		return usageErrorf("bad TCB id %q", a.pos[0])
	}
	if s.tcp == nil {
		return errNoTCPControl
	}
	if err := s.tcp.Abort(id); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "TCB %d aborted\n", id)
	return err
}

// setCongestionControl is "set tcp congestion-control NAME".
func (s *Shell) setCongestionControl(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) != 1 {
		return usageErrorf("want one congestion control name")
	}
	if s.tcp == nil {
		return errNoTCPControl
	}
	if err := s.tcp.SetDefaultCongestionControl(a.pos[0]); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "new connections use %s\n", a.pos[0])
	return err
}

// stats is "show stats": the protocol's counters and how many TCBs are in
// each state. Its JSON field names are part of the shell's contract.
type stats struct {
	TCP tcpext.StatsSnapshot `json:"tcp"`
	// TCBStates has every state of RFC 9293, with 0 for those no TCB is in.
	TCBStates map[string]int `json:"tcb_states"`
}

// rfcStates are the states in the order of RFC 9293's diagram.
var rfcStates = func() []string {
	var names []string
	for st := tcpext.StateClosed; st <= tcpext.StateTimeWait; st++ {
		names = append(names, st.String())
	}
	return names
}()

func (s *Shell) showStats(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) > 0 {
		return usageErrorf("unexpected argument %q", a.pos[0])
	}
	if s.tcp == nil {
		return errNoTCPControl
	}
	st := stats{TCP: s.tcp.Stats(), TCBStates: map[string]int{}}
	for _, name := range rfcStates {
		st.TCBStates[name] = 0
	}
	for _, t := range s.tcbs.TCBs() {
		st.TCBStates[t.State]++
	}
	if a.flags["--json"] {
		return writeJSON(w, st)
	}
	counters, err := flatten(st.TCP)
	if err != nil {
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "tcp:")
	for _, l := range counters {
		fmt.Fprintf(tw, "  %s:\t%s\n", l.key, l.value)
	}
	fmt.Fprintln(tw, "tcb_states:")
	for _, name := range rfcStates {
		fmt.Fprintf(tw, "  %s:\t%d\n", name, st.TCBStates[name])
	}
	return tw.Flush()
}

// connectArgs are the parsed arguments of "tcp connect".
type connectArgs struct {
	remote    netip.AddrPort
	localPort uint16
	send      string
	hold      time.Duration
}

func parseConnectArgs(a args) (connectArgs, error) {
	var c connectArgs
	if len(a.pos) != 1 {
		return c, usageErrorf("want one HOST:PORT")
	}
	remote, err := netip.ParseAddrPort(a.pos[0])
	if err != nil || !remote.Addr().Is4() || remote.Port() == 0 {
		return c, usageErrorf("bad HOST:PORT %q (want an IPv4 address and a port, e.g. 198.18.0.1:80)", a.pos[0])
	}
	c.remote = remote
	if v, ok := a.values["--local-port"]; ok {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			return c, usageErrorf("bad --local-port %q (want 1..65535)", v)
		}
		c.localPort = uint16(p)
	}
	c.send = a.values["--send"]
	if v, ok := a.values["--hold"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxHold {
			return c, usageErrorf("bad --hold %q (want a duration from 0s to %v, e.g. 5s)", v, maxHold)
		}
		c.hold = d
	}
	return c, nil
}

// tcpConnect is "tcp connect": an active open over the firmware's own
// stack, like a router's telnet. It sends the text, holds the connection
// for the hold time while collecting what arrives, then closes in order:
// FIN, and up to finishWait for the peer's. It fails if the connection
// cannot be opened or ends other than in order.
func (s *Shell) tcpConnect(ctx context.Context, a args, w io.Writer) error {
	c, err := parseConnectArgs(a)
	if err != nil {
		return err
	}
	if s.tcp == nil {
		return errNoTCPControl
	}
	conn, id, err := s.tcp.Dial(ctx, c.remote, c.localPort)
	if err != nil {
		return err
	}
	defer conn.Close()
	tcb := "unknown"
	if id != 0 {
		tcb = strconv.FormatUint(id, 10)
	}
	fmt.Fprintf(w, "connected to %s from %s (TCB %s)\n", conn.RemoteAddr(), conn.LocalAddr(), tcb)
	flush(w)

	rx := &capture{limit: maxShown}
	readDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(rx, conn)
		readDone <- err
	}()
	var (
		readEnded bool
		readErr   error
	)
	// waitRead waits for the reader to end, at most until timeout fires
	// or ctx is done.
	waitRead := func(timeout <-chan time.Time) {
		if readEnded {
			return
		}
		select {
		case readErr = <-readDone:
			readEnded = true
		case <-timeout:
		case <-ctx.Done():
		}
	}

	var (
		sent    int
		sendErr error
	)
	if c.send != "" {
		sent, sendErr = io.WriteString(conn, c.send)
	}
	if sendErr == nil && c.hold > 0 {
		// The peer closing or failing ends the hold early.
		hold := time.NewTimer(c.hold)
		waitRead(hold.C)
		hold.Stop()
	}
	if sendErr == nil && readErr == nil {
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil {
				sendErr = err
			} else {
				finish := time.NewTimer(finishWait)
				waitRead(finish.C)
				finish.Stop()
			}
		}
	}
	peerOpen := !readEnded && sendErr == nil && ctx.Err() == nil
	conn.Close()
	if !readEnded {
		// Close ends the reader; what it says now is only "closed".
		<-readDone
	}

	if rx.total > 0 {
		fmt.Fprintf(w, "received %d bytes:\n", rx.total)
		shown := printable(rx.head)
		fmt.Fprint(w, shown)
		if !strings.HasSuffix(shown, "\n") {
			fmt.Fprintln(w)
		}
		if more := rx.total - int64(len(rx.head)); more > 0 {
			fmt.Fprintf(w, "... %d more bytes not shown\n", more)
		}
	}
	if peerOpen {
		fmt.Fprintf(w, "the peer had not closed its side %v after our FIN\n", finishWait)
	}
	fmt.Fprintf(w, "closed: %d bytes sent, %d bytes received\n", sent, rx.total)
	return errors.Join(sendErr, readErr, ctx.Err())
}

// flush pushes w's buffered output to the user, if w buffers.
func flush(w io.Writer) {
	if f, ok := w.(interface{ Flush() error }); ok {
		// A failure shows again on the command's next write.
		_ = f.Flush()
	}
}

// capture keeps the first limit bytes written to it and counts them all.
type capture struct {
	limit int
	head  []byte
	total int64
}

func (c *capture) Write(p []byte) (int, error) {
	if room := c.limit - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(room, len(p))]...)
	}
	c.total += int64(len(p))
	return len(p), nil
}

// printable renders received bytes for a terminal: printable text, line
// ends and tabs as they are, everything else (a CR too, so CRLF shows) as a
// Go escape.
func printable(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case r == '\n' || r == '\t' || unicode.IsPrint(r):
			sb.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			sb.WriteString(q[1 : len(q)-1])
		}
		b = b[size:]
	}
	return sb.String()
}
