package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/synfin/synfin/mgmt"
	"github.com/synfin/synfin/nic"
)

// linkCapture is the shell's packet capture on the firmware's NIC.
type linkCapture struct{ link *nic.Link }

// StartCapture implements mgmt.Capturer. Without a file it writes to the
// temporary directory, named after the interface and the time.
func (c linkCapture) StartCapture(file, filter string) (string, error) {
	f, err := nic.ParseCaptureFilter(filter)
	if err != nil {
		return "", err
	}
	if file == "" {
		file = filepath.Join(os.TempDir(), fmt.Sprintf("synfin-%s-%s.pcap", c.link.Name(), time.Now().UTC().Format("20060102T150405Z")))
	}
	if err := c.link.StartCapture(file, f); err != nil {
		return "", err
	}
	return file, nil
}

// StopCapture implements mgmt.Capturer.
func (c linkCapture) StopCapture() (mgmt.CaptureResult, error) {
	st, err := c.link.StopCapture()
	return mgmt.CaptureResult{File: st.File, Filter: st.Filter, Frames: st.Frames, Bytes: st.Bytes}, err
}
