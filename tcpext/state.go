package tcpext

// State is a TCP connection state of the RFC 9293 section 3.3.2 diagram.
type State uint8

// The eleven states of RFC 9293 section 3.3.2.
const (
	StateClosed State = iota
	StateListen
	StateSynSent
	StateSynReceived
	StateEstablished
	StateFinWait1
	StateFinWait2
	StateCloseWait
	StateClosing
	StateLastAck
	StateTimeWait
)

var stateNames = [...]string{
	StateClosed:      "CLOSED",
	StateListen:      "LISTEN",
	StateSynSent:     "SYN-SENT",
	StateSynReceived: "SYN-RECEIVED",
	StateEstablished: "ESTABLISHED",
	StateFinWait1:    "FIN-WAIT-1",
	StateFinWait2:    "FIN-WAIT-2",
	StateCloseWait:   "CLOSE-WAIT",
	StateClosing:     "CLOSING",
	StateLastAck:     "LAST-ACK",
	StateTimeWait:    "TIME-WAIT",
}

// String returns the state's name as RFC 9293 spells it.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// synchronized reports whether the connection has completed its handshake
// (RFC 9293 section 3.5.2 groups states this way for RST generation).
func (s State) synchronized() bool {
	return s >= StateEstablished
}

// canSend reports whether the application may still queue data: before our
// FIN (RFC 9293 section 3.10.2, SEND call).
func (s State) canSend() bool {
	return s == StateSynSent || s == StateSynReceived || s == StateEstablished || s == StateCloseWait
}

// finReceived reports whether the peer's FIN has been processed.
func (s State) finReceived() bool {
	switch s {
	case StateCloseWait, StateClosing, StateLastAck, StateTimeWait:
		return true
	}
	return false
}
