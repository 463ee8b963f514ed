package mgmt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// Client is a connection to a management socket. It runs one command at a
// time; a connection can carry any number of them.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the management socket at path.
func Dial(path string) (*Client, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("mgmt socket: %w", err)
	}
	return &Client{conn: conn, r: bufio.NewReader(conn)}, nil
}

// Run sends one command line and copies its output to stdout. It returns the
// command's exit status; err is set only when the exchange itself fails (or
// stdout does), after which the connection is out of step and only good for
// Close.
func (c *Client) Run(cmd string, stdout io.Writer) (status int, err error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return 0, errors.New("mgmt: a command must be a single line")
	}
	if len(cmd) >= MaxLineLen {
		return 0, fmt.Errorf("mgmt: command longer than %d bytes", MaxLineLen)
	}
	if _, err := io.WriteString(c.conn, cmd+"\n"); err != nil {
		return 0, fmt.Errorf("mgmt: send command: %w", err)
	}
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return 0, fmt.Errorf("mgmt: read answer: %w", noEOF(err))
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		switch hdr[0] {
		case frameOutput:
			if n > maxFrameLen {
				return 0, fmt.Errorf("mgmt: output frame of %d bytes exceeds %d", n, maxFrameLen)
			}
			if _, err := io.CopyN(stdout, c.r, int64(n)); err != nil {
				return 0, fmt.Errorf("mgmt: copy output: %w", noEOF(err))
			}
		case frameStatus:
			if n != 4 {
				return 0, fmt.Errorf("mgmt: status frame of %d bytes, want 4", n)
			}
			var p [4]byte
			if _, err := io.ReadFull(c.r, p[:]); err != nil {
				return 0, fmt.Errorf("mgmt: read status: %w", noEOF(err))
			}
			return int(int32(binary.BigEndian.Uint32(p[:]))), nil
		default:
			return 0, fmt.Errorf("mgmt: unknown frame type %#x", hdr[0])
		}
	}
}

// noEOF reports a connection closed mid-answer as such.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// RunCommand runs one command on the management socket at path, copying its
// output to stdout, and returns its exit status.
func RunCommand(path, cmd string, stdout io.Writer) (status int, err error) {
	c, err := Dial(path)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.Run(cmd, stdout)
}
