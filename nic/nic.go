// Package nic gives the firmware's network stack its own Linux interface.
//
// Open takes over a named interface: it strips every kernel IP address from
// it and disables the kernel's IPv6 on it, so that the kernel never answers
// (or resets) traffic that belongs to the user-space stack, brings it up and
// returns a Link whose Endpoint is an ethernet stack.LinkEndpoint for
// gVisor's netstack, fed by raw frames from an AF_PACKET socket.
package nic

// Driver names accepted in Config.Driver.
const (
	// DriverAFPacket moves frames through an AF_PACKET socket. It is the
	// default when Config.Driver is empty.
	DriverAFPacket = "afpacket"
	// DriverAFXDP moves frames through an AF_XDP socket. Not implemented yet.
	DriverAFXDP = "afxdp"
)

// Config selects and configures the NIC.
type Config struct {
	// Interface is the Linux interface to take over, e.g. "veth-dut".
	Interface string
	// Driver is DriverAFPacket (the default when empty) or DriverAFXDP.
	Driver string
	// MTU is the link MTU to set; 0 keeps the link's current MTU.
	MTU uint32
}

// Stats are a Link's frame counters since Open.
type Stats struct {
	// RxFrames and RxBytes count frames handed to the stack, bytes
	// including the ethernet header.
	RxFrames uint64 `json:"rx_frames"`
	RxBytes  uint64 `json:"rx_bytes"`
	// RxDrops counts frames that never reached the stack: those the kernel
	// dropped because the socket's queue was full, and those the driver
	// refused (truncated, undeliverable, or arriving while no stack was
	// attached).
	RxDrops uint64 `json:"rx_drops"`
	// TxFrames and TxBytes count frames the kernel accepted for sending.
	TxFrames uint64 `json:"tx_frames"`
	TxBytes  uint64 `json:"tx_bytes"`
	// TxErrors counts frames the kernel refused to send.
	TxErrors uint64 `json:"tx_errors"`
}
