package tcpext

import "sync/atomic"

// Stats are protocol-wide counters; each is safe for concurrent use.
type Stats struct {
	SegmentsReceived atomic.Uint64
	SegmentsSent     atomic.Uint64
	Retransmits      atomic.Uint64
	ChecksumErrors   atomic.Uint64
	MalformedDropped atomic.Uint64
	NoListener       atomic.Uint64
	ResetsSent       atomic.Uint64
	ResetsReceived   atomic.Uint64
	ListenOverflows  atomic.Uint64
	SendErrors       atomic.Uint64
	ActiveOpens      atomic.Uint64
	PassiveOpens     atomic.Uint64
	ChallengeACKs    atomic.Uint64
	// ChallengeACKsSuppressed counts challenge ACKs withheld by the rate
	// limit of RFC 5961 section 7.
	ChallengeACKsSuppressed atomic.Uint64
	// OOWACKsSuppressed counts ACKs not sent in answer to segments
	// without data that failed the acceptability or PAWS test
	// (oowack.go).
	OOWACKsSuppressed atomic.Uint64
	ICMPErrors        atomic.Uint64
	FastRetransmits   atomic.Uint64
	// RetransmitTimeouts counts expiries of the retransmission timer on
	// synchronized connections (not SYN retries, not window probes).
	RetransmitTimeouts atomic.Uint64
	// LostRetransmits counts retransmissions found lost by the SACKs of
	// data sent after them, and sent again without waiting for the timer.
	LostRetransmits atomic.Uint64
	// LossProbes counts tail loss probes sent (RFC 8985 section 7).
	LossProbes atomic.Uint64
	// Drops by reason, beyond checksum and malformed above.
	DroppedUnacceptable atomic.Uint64 // failed the RFC 9293 3.10.7.4 test
	DroppedPAWS         atomic.Uint64 // old timestamp (RFC 7323 5.3)
	DroppedOOOFull      atomic.Uint64 // out-of-order queue full
}

// StatsSnapshot is a copy of Stats for display.
type StatsSnapshot struct {
	SegmentsReceived        uint64 `json:"segments_received"`
	SegmentsSent            uint64 `json:"segments_sent"`
	Retransmits             uint64 `json:"retransmits"`
	ChecksumErrors          uint64 `json:"checksum_errors"`
	MalformedDropped        uint64 `json:"malformed_dropped"`
	NoListener              uint64 `json:"no_listener"`
	ResetsSent              uint64 `json:"resets_sent"`
	ResetsReceived          uint64 `json:"resets_received"`
	ListenOverflows         uint64 `json:"listen_overflows"`
	SendErrors              uint64 `json:"send_errors"`
	ActiveOpens             uint64 `json:"active_opens"`
	PassiveOpens            uint64 `json:"passive_opens"`
	ChallengeACKs           uint64 `json:"challenge_acks"`
	ChallengeACKsSuppressed uint64 `json:"challenge_acks_suppressed"`
	OOWACKsSuppressed       uint64 `json:"oow_acks_suppressed"`
	ICMPErrors              uint64 `json:"icmp_errors"`
	FastRetransmits         uint64 `json:"fast_retransmits"`
	RetransmitTimeouts      uint64 `json:"retransmit_timeouts"`
	LostRetransmits         uint64 `json:"lost_retransmits"`
	LossProbes              uint64 `json:"loss_probes"`
	DroppedUnacceptable     uint64 `json:"dropped_unacceptable"`
	DroppedPAWS             uint64 `json:"dropped_paws"`
	DroppedOOOFull          uint64 `json:"dropped_ooo_full"`
}

func (s *Stats) snapshot() StatsSnapshot {
	return StatsSnapshot{
		SegmentsReceived:        s.SegmentsReceived.Load(),
		SegmentsSent:            s.SegmentsSent.Load(),
		Retransmits:             s.Retransmits.Load(),
		ChecksumErrors:          s.ChecksumErrors.Load(),
		MalformedDropped:        s.MalformedDropped.Load(),
		NoListener:              s.NoListener.Load(),
		ResetsSent:              s.ResetsSent.Load(),
		ResetsReceived:          s.ResetsReceived.Load(),
		ListenOverflows:         s.ListenOverflows.Load(),
		SendErrors:              s.SendErrors.Load(),
		ActiveOpens:             s.ActiveOpens.Load(),
		PassiveOpens:            s.PassiveOpens.Load(),
		ChallengeACKs:           s.ChallengeACKs.Load(),
		ChallengeACKsSuppressed: s.ChallengeACKsSuppressed.Load(),
		OOWACKsSuppressed:       s.OOWACKsSuppressed.Load(),
		ICMPErrors:              s.ICMPErrors.Load(),
		FastRetransmits:         s.FastRetransmits.Load(),
		RetransmitTimeouts:      s.RetransmitTimeouts.Load(),
		LostRetransmits:         s.LostRetransmits.Load(),
		LossProbes:              s.LossProbes.Load(),
		DroppedUnacceptable:     s.DroppedUnacceptable.Load(),
		DroppedPAWS:             s.DroppedPAWS.Load(),
		DroppedOOOFull:          s.DroppedOOOFull.Load(),
	}
}
