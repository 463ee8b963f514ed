package mgmt

import (
	"context"
	"errors"
	"io"
)

// WithSystem sets the function "show system" calls for the state of the
// box: board, kernel, uptime, memory. Its result must encode to a JSON
// object; its keys become the dotted keys of the text view.
func WithSystem(f func() any) Option {
	return func(s *Shell) { s.system = f }
}

func (s *Shell) showSystem(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) > 0 {
		return usageErrorf("unexpected argument %q", a.pos[0])
	}
	if s.system == nil {
		return errors.New("no system information: the firmware is not this machine's init")
	}
	info := s.system()
	if a.flags["--json"] {
		return writeJSON(w, info)
	}
	return writeFlat(w, info)
}
