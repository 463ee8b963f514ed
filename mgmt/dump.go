package mgmt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/synfin/synfin/tcpext"
)

var errNoRecorder = errors.New("no flight recorder available")

// tcbDump is "tcb dump ID|all [--pcap]".
func (s *Shell) tcbDump(_ context.Context, a args, w io.Writer) error {
	if len(a.pos) != 1 {
		return usageErrorf("want one TCB id, or all")
	}
	var (
		dumps []tcpext.TCBDump
		all   = a.pos[0] == "all"
	)
	if !all {
		id, err := parseTCBID(a.pos[0])
		if err != nil {
			return err
		}
		if s.dumps == nil {
			return errNoRecorder
		}
		d, ok := s.dumps.Dump(id)
		if !ok {
			return fmt.Errorf("no TCB with id %d, live or recently closed", id)
		}
		dumps = []tcpext.TCBDump{d}
	} else {
		if s.dumps == nil {
			return errNoRecorder
		}
		dumps = s.dumps.Dumps()
	}
	pcap := a.flags["--pcap"]
	if pcap && isTerminal(w) {
		return errors.New("pcap is binary: fetch /tcb/ID.pcap with scp, or run `ssh BOX tcb dump ID --pcap > FILE`")
	}
	b, err := dumpFile(dumps, all, pcap)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// dumpFile renders dumps as tcb dump does: JSON, an array for all, or
// pcap.
func dumpFile(dumps []tcpext.TCBDump, all, pcap bool) ([]byte, error) {
	var b bytes.Buffer
	var err error
	switch {
	case pcap:
		err = writePcap(&b, dumps)
	case all:
		if dumps == nil {
			dumps = []tcpext.TCBDump{}
		}
		err = writeJSON(&b, dumps)
	default:
		err = writeJSON(&b, dumps[0])
	}
	return b.Bytes(), err
}
