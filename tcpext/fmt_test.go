package tcpext_test

import (
	"fmt"
	"net"
	"strconv"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func fmtSeg(src, dst uint16, flags header.TCPFlags, seq, ack uint32, wnd uint16, n int) string {
	return fmt.Sprintf("%d>%d [%s] seq=%d ack=%d win=%d len=%d", src, dst, flags, seq, ack, wnd, n)
}

func hasPort(hostport string, port uint16) bool {
	_, p, err := net.SplitHostPort(hostport)
	return err == nil && p == strconv.Itoa(int(port))
}
