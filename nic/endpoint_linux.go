//go:build linux

package nic

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// port is what a driver provides: a way to receive and send ethernet
// frames on one interface.
type port interface {
	// run receives frames until close, handing each to rx (the frame is
	// valid only during the call), calling drop for each frame the driver
	// itself refused and batchEnd after each batch of frames it took from
	// the kernel at once.
	run(rx func(frame []byte), drop, batchEnd func())
	// write sends pkts in order and returns how many the kernel took; it
	// blocks while the transmit ring is full.
	write(pkts []*stack.PacketBuffer) (int, tcpip.Error)
	// rings returns the per-ring counters.
	rings() []RingStats
	// close releases the port; run returns and write fails afterwards.
	close() error
}

// endpoint is an ethernet stack.LinkEndpoint over a driver's port. One
// goroutine receives frames and delivers them to the stack; writes go to
// the port from the caller's goroutine.
type endpoint struct {
	port port
	mtu  atomic.Uint32

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
	linkAddr   tcpip.LinkAddress
	onClose    func()

	capture atomic.Pointer[capture]
	// onBatch, if set, is called after each batch of received frames has
	// been delivered (Link.OnReceiveBatch).
	onBatch atomic.Pointer[func()]

	closeOnce sync.Once
	closeErr  error
	reader    sync.WaitGroup

	rxFrames, rxBytes, rxDrops  atomic.Uint64
	txFrames, txBytes, txErrors atomic.Uint64
}

var _ stack.LinkEndpoint = (*endpoint)(nil)

// newEndpoint starts receiving from p.
func newEndpoint(p port, mac tcpip.LinkAddress, mtu uint32) *endpoint {
	e := &endpoint{port: p, linkAddr: mac}
	e.mtu.Store(mtu)
	e.reader.Add(1)
	go func() {
		defer e.reader.Done()
		p.run(e.deliver, func() { e.rxDrops.Add(1) }, e.batchEnd)
	}()
	return e
}

// deliver hands one ethernet frame to the stack. The stack gets a copy, so
// the driver may reuse the frame's memory once deliver returns.
func (e *endpoint) deliver(frame []byte) {
	if c := e.capture.Load(); c != nil {
		c.frame([][]byte{frame})
	}
	e.mu.RLock()
	d, self := e.dispatcher, e.linkAddr
	e.mu.RUnlock()
	if d == nil {
		e.rxDrops.Add(1)
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	defer pkt.DecRef()
	if !e.ParseHeader(pkt) {
		e.rxDrops.Add(1)
		return
	}
	eth := header.Ethernet(pkt.LinkHeader().Slice())
	switch dst := eth.DestinationAddress(); {
	case dst == header.EthernetBroadcastAddress:
		pkt.PktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		pkt.PktType = tcpip.PacketMulticast
	case dst == self:
		pkt.PktType = tcpip.PacketHost
	default:
		pkt.PktType = tcpip.PacketOtherHost
	}
	e.rxFrames.Add(1)
	e.rxBytes.Add(uint64(len(frame)))
	d.DeliverNetworkPacket(eth.Type(), pkt)
}

// batchEnd tells the stack that a batch of frames has been delivered.
func (e *endpoint) batchEnd() {
	if f := e.onBatch.Load(); f != nil {
		(*f)()
	}
}

// WritePackets implements stack.LinkWriter. It blocks while the driver's
// transmit ring is full, which holds the stack back instead of losing
// frames.
func (e *endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	all := pkts.AsSlice()
	n, err := e.port.write(all)
	var bytes uint64
	c := e.capture.Load()
	for _, pkt := range all[:n] {
		bytes += uint64(pkt.Size())
		if c != nil {
			c.frame(pkt.AsSlices())
		}
	}
	e.txFrames.Add(uint64(n))
	e.txBytes.Add(bytes)
	if err != nil {
		e.txErrors.Add(1)
	}
	return n, err
}

// stats returns the counters.
func (e *endpoint) stats() Stats {
	rings := e.port.rings()
	var rxDrops, txDrops uint64
	for _, r := range rings {
		if r.Direction == "rx" {
			rxDrops += r.Drops
		} else {
			txDrops += r.Drops
		}
	}
	st := Stats{
		RxFrames: e.rxFrames.Load(),
		RxBytes:  e.rxBytes.Load(),
		RxDrops:  e.rxDrops.Load() + rxDrops,
		TxFrames: e.txFrames.Load(),
		TxBytes:  e.txBytes.Load(),
		TxErrors: e.txErrors.Load() + txDrops,
		Rings:    rings,
	}
	if c := e.capture.Load(); c != nil {
		cs := c.stats()
		st.Capture = &cs
	}
	return st
}

// close runs the close action, closes the port (which stops the reader)
// and waits for the reader to stop.
func (e *endpoint) close() error {
	e.closeOnce.Do(func() {
		e.mu.RLock()
		onClose := e.onClose
		e.mu.RUnlock()
		if onClose != nil {
			onClose()
		}
		e.closeErr = e.port.close()
		e.reader.Wait()
	})
	return e.closeErr
}

// Close implements stack.LinkEndpoint; the stack calls it when the NIC is
// removed.
func (e *endpoint) Close() { _ = e.close() }

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *endpoint) SetOnCloseAction(action func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onClose = action
}

// Wait implements stack.LinkEndpoint. It returns once the reader has
// stopped, which happens only after Close.
func (e *endpoint) Wait() { e.reader.Wait() }

// Attach implements stack.LinkEndpoint.
func (e *endpoint) Attach(dispatcher stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dispatcher = dispatcher
}

// IsAttached implements stack.LinkEndpoint.
func (e *endpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}

// MTU implements stack.LinkEndpoint.
func (e *endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint. It changes what the stack may send,
// not the kernel's MTU of the interface.
func (e *endpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (*endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *endpoint) LinkAddress() tcpip.LinkAddress {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.linkAddr
}

// SetLinkAddress implements stack.LinkEndpoint.
func (e *endpoint) SetLinkAddress(addr tcpip.LinkAddress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.linkAddr = addr
}

// Capabilities implements stack.LinkEndpoint. The link offloads nothing:
// the stack computes every checksum it sends and verifies every one it
// receives (the drivers complete unfinished ones first), because the stack
// overwrites a packet's RXChecksumValidated from these capabilities, so a
// per-frame "already validated" mark cannot reach it.
func (*endpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityResolutionRequired
}

// ARPHardwareType implements stack.LinkEndpoint.
func (*endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (*endpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}
