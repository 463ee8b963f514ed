package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// PowerAction is what the reboot and poweroff commands ask for.
type PowerAction int

// The power actions.
const (
	Reboot PowerAction = iota + 1
	PowerOff
)

func (a PowerAction) String() string {
	switch a {
	case Reboot:
		return "reboot"
	case PowerOff:
		return "poweroff"
	default:
		return fmt.Sprintf("PowerAction(%d)", int(a))
	}
}

// WithPower lets the reboot and poweroff commands act: f is called with the
// action and should start it and return, so that the command's reply still
// reaches the caller. Without it the commands fail, as a firmware that is
// not its machine's init has no business switching it off.
func WithPower(f func(PowerAction) error) Option {
	return func(s *Shell) { s.power = f }
}

func powerCommand(action PowerAction) func(*Shell, context.Context, args, io.Writer) error {
	return func(s *Shell, _ context.Context, a args, w io.Writer) error {
		if len(a.pos) > 0 {
			return usageErrorf("unexpected argument %q", a.pos[0])
		}
		if s.power == nil {
			return errors.New("power control not available: the firmware is not this machine's init")
		}
		if err := s.power(action); err != nil {
			return fmt.Errorf("%s: %w", action, err)
		}
		fmt.Fprintf(w, "%s: going down now\n", action)
		return nil
	}
}
