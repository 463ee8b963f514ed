package stacknet

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	// The adapter is transport-neutral; gVisor's TCP (allowed in tests
	// only) gives it a reference TCP to run over while tcpext is young.
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

var testAddr = tcpip.AddrFrom4([4]byte{127, 0, 0, 1})

func newLoopbackStack(t *testing.T) *stack.Stack {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	t.Cleanup(s.Destroy)
	if err := s.CreateNIC(1, loopback.New()); err != nil {
		t.Fatalf("CreateNIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: testAddr, PrefixLen: 8},
	}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		t.Fatalf("AddProtocolAddress: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	return s
}

func listen(t *testing.T, s *stack.Stack) *Listener {
	t.Helper()
	ln, err := ListenTCP(s, tcpip.FullAddress{}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// pair returns the server side (this package) and the client side (gonet)
// of one connection.
func pair(s *stack.Stack, ln *Listener) (server, client net.Conn, err error) {
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	accepted := make(chan net.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
	}()
	client, err = gonet.DialContextTCP(context.Background(), s, tcpip.FullAddress{Addr: testAddr, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, nil, err
	}
	select {
	case server = <-accepted:
		return server, client, nil
	case err = <-acceptErr:
		client.Close()
		return nil, nil, err
	}
}

func TestConnConformance(t *testing.T) {
	s := newLoopbackStack(t)
	ln := listen(t, s)
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		server, client, err := pair(s, ln)
		if err != nil {
			return nil, nil, nil, err
		}
		return server, client, func() { server.Close(); client.Close() }, nil
	})
}

func TestReadEOFAfterPeerClose(t *testing.T) {
	s := newLoopbackStack(t)
	server, client, err := pair(s, listen(t, s))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if _, err := client.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	client.Close()
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v; want \"bye\", nil", got, err)
	}
}

func TestAcceptUnblockedByClose(t *testing.T) {
	s := newLoopbackStack(t)
	ln := listen(t, s)
	done := make(chan error)
	go func() {
		_, err := ln.Accept()
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v, want net.ErrClosed", err)
	}
}

func TestReadDeadlineMovedWhileBlocked(t *testing.T) {
	s := newLoopbackStack(t)
	server, client, err := pair(s, listen(t, s))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	defer client.Close()

	server.SetReadDeadline(time.Now().Add(time.Hour))
	done := make(chan error)
	go func() {
		_, err := server.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	server.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v, want deadline exceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not notice the earlier deadline")
	}
}

func TestListenErrors(t *testing.T) {
	s := newLoopbackStack(t)
	ln := listen(t, s)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	if _, err := ListenTCP(s, tcpip.FullAddress{Port: port}, ipv4.ProtocolNumber); err == nil {
		t.Fatal("second listener on the same port succeeded")
	}
}
