// Package nic gives the firmware's network stack its own Linux interface.
//
// Open takes over a named interface: it strips every kernel IP address from
// it and disables the kernel's IPv6 on it, so that the kernel never answers
// (or resets) traffic that belongs to the user-space stack, removes an XDP
// program a crashed run left behind, brings it up and returns a Link whose
// Endpoint is an ethernet stack.LinkEndpoint for gVisor's netstack. Frames
// move through one of two drivers: AF_PACKET on mmap rings (TPACKET_V3 for
// receive, batched sendmmsg for transmit) or AF_XDP (a UMEM with fill,
// completion, RX and TX rings, fed by an XDP program that redirects the
// firmware's frames to the socket). The Link follows the interface's
// carrier through netlink and can capture its traffic to a pcap file.
package nic

// Driver names accepted in Config.Driver.
const (
	// DriverAFPacket moves frames through an AF_PACKET socket with mmap
	// rings. It is the default when Config.Driver is empty.
	DriverAFPacket = "afpacket"
	// DriverAFXDP moves frames through an AF_XDP socket; Open fails with
	// the reason where AF_XDP cannot work.
	DriverAFXDP = "afxdp"
	// DriverAuto tries AF_XDP and falls back to AF_PACKET, saying why in
	// Link.Fallback.
	DriverAuto = "auto"
)

// Config selects and configures the NIC.
type Config struct {
	// Interface is the Linux interface to take over, e.g. "veth-dut".
	Interface string
	// Driver is DriverAFPacket (the default when empty), DriverAFXDP or
	// DriverAuto.
	Driver string
	// XDPMode is where the AF_XDP driver's XDP program runs: XDPModeAuto
	// (the default when empty), XDPModeNative or XDPModeGeneric.
	XDPMode string
	// MTU is the link MTU to set; 0 keeps the link's current MTU.
	MTU uint32
}

// XDP modes accepted in Config.XDPMode.
const (
	// XDPModeAuto runs the program in the NIC driver where the driver
	// supports XDP, and on socket buffers otherwise.
	XDPModeAuto = "auto"
	// XDPModeNative runs it in the NIC driver, or fails.
	XDPModeNative = "native"
	// XDPModeGeneric runs it on socket buffers, after the driver. On a
	// veth it is the faster mode: native XDP on a veth makes its peer
	// cut TSO super-segments down to the MTU before sending, while the
	// generic mode takes them whole.
	XDPModeGeneric = "generic"
)

// Stats are a Link's counters since Open.
type Stats struct {
	// RxFrames and RxBytes count frames handed to the stack, bytes
	// including the ethernet header.
	RxFrames uint64 `json:"rx_frames"`
	RxBytes  uint64 `json:"rx_bytes"`
	// RxDrops counts frames that never reached the stack: those the kernel
	// dropped for want of room in a ring, and those the driver refused
	// (truncated, undeliverable, or arriving while no stack was attached).
	RxDrops uint64 `json:"rx_drops"`
	// TxFrames and TxBytes count frames the driver took from the stack
	// for sending.
	TxFrames uint64 `json:"tx_frames"`
	TxBytes  uint64 `json:"tx_bytes"`
	// TxErrors counts frames the driver refused and those the kernel
	// refused to send.
	TxErrors uint64 `json:"tx_errors"`
	// Driver is the driver in use and Mode, for AF_XDP, whether its XDP
	// program runs in the NIC driver ("native") or on socket buffers
	// ("generic").
	Driver string `json:"driver"`
	Mode   string `json:"mode,omitempty"`
	// Rings breaks the traffic down by the driver's rings.
	Rings []RingStats `json:"rings"`
	// Link is the interface's carrier as netlink reports it.
	Link LinkState `json:"link"`
	// Capture is the running packet capture, if any.
	Capture *CaptureStats `json:"capture,omitempty"`
}

// RingStats count one ring (or queue) of a driver.
type RingStats struct {
	// Name is the ring: "rx" and "tx" for AF_PACKET; "rx", "fill", "tx"
	// and "completion" for AF_XDP, where the fill ring counts only the
	// frames lost for want of a buffer on it, and the completion ring
	// the frames the kernel has finished sending.
	Name string `json:"name"`
	// Direction is "rx" or "tx".
	Direction string `json:"direction"`
	Frames    uint64 `json:"frames"`
	Bytes     uint64 `json:"bytes"`
	// Drops counts frames lost at this ring: the kernel's drops for a
	// full receive ring, an empty fill ring or invalid descriptors, and
	// transmit failures.
	Drops uint64 `json:"drops"`
	// Coalesced counts transmitted frames that went to the kernel as part
	// of a TSO super-frame (AF_PACKET).
	Coalesced uint64 `json:"coalesced,omitempty"`
}

// LinkState is the interface's carrier and how often it changed.
type LinkState struct {
	// Up is true while the interface is up and has a carrier.
	Up bool `json:"up"`
	// Downs and Ups count the transitions netlink reported since Open.
	Downs uint64 `json:"downs"`
	Ups   uint64 `json:"ups"`
}

// CaptureStats describe a running capture.
type CaptureStats struct {
	File    string `json:"file"`
	Filter  string `json:"filter,omitempty"`
	Frames  uint64 `json:"frames"`
	Bytes   uint64 `json:"bytes"`
	Errors  uint64 `json:"errors"`
	Started string `json:"started"`
}
