//go:build linux && (amd64 || arm64)

package nic

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// getXDPStatistics reads the socket's XDP_STATISTICS, which x/sys/unix
// has no wrapper for.
func getXDPStatistics(fd int, st *unix.XDPStatistics) error {
	size := uint32(unsafe.Sizeof(*st))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(st)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
