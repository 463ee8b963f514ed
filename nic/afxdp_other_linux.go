//go:build linux && !(amd64 || arm64)

package nic

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
)

// afxdp stands in for the AF_XDP port where it cannot be built: gVisor's
// UMEM and ring code, which it uses, is 64-bit only.
type afxdp struct {
	port
	mode string
}

// openAFXDP says why AF_XDP is not available on this architecture.
func openAFXDP(*netlink.LinkAttrs, string) (*afxdp, error) {
	return nil, fmt.Errorf("AF_XDP: not supported on GOARCH=%s (the driver's UMEM and ring code is 64-bit only)", runtime.GOARCH)
}
