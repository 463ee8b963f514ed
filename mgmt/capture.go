package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Capturer starts and stops a packet capture on the firmware's NIC.
type Capturer interface {
	// StartCapture starts writing the frames that filter selects (all if
	// it is empty) as pcap to file, or to a file of its own choosing if
	// file is empty, and returns the file's path.
	StartCapture(file, filter string) (path string, err error)
	// StopCapture ends the running capture and returns what it wrote.
	StopCapture() (CaptureResult, error)
}

// CaptureResult is what a finished capture wrote.
type CaptureResult struct {
	File   string `json:"file"`
	Filter string `json:"filter,omitempty"`
	Frames uint64 `json:"frames"`
	Bytes  uint64 `json:"bytes"`
}

// WithCapture gives the shell the packet capture that "capture start" and
// "capture stop" drive.
func WithCapture(c Capturer) Option {
	return func(s *Shell) { s.capture = c }
}

var errNoCapture = errors.New("packet capture is not available")

func (s *Shell) captureStart(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) > 0 {
		return usageErrorf("unexpected argument %q", a.pos[0])
	}
	if s.capture == nil {
		return errNoCapture
	}
	filter := a.values["--filter"]
	path, err := s.capture.StartCapture(a.values["--file"], filter)
	if err != nil {
		return err
	}
	if filter == "" {
		filter = "all frames"
	}
	_, err = fmt.Fprintf(w, "capturing %s to %s\n", filter, path)
	return err
}

func (s *Shell) captureStop(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) > 0 {
		return usageErrorf("unexpected argument %q", a.pos[0])
	}
	if s.capture == nil {
		return errNoCapture
	}
	r, err := s.capture.StopCapture()
	if err != nil {
		return err
	}
	if a.flags["--json"] {
		return writeJSON(w, r)
	}
	_, err = fmt.Fprintf(w, "capture stopped: %d frames, %d bytes in %s\n", r.Frames, r.Bytes, r.File)
	return err
}
