package tcpext

import (
	"net"
	"strconv"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// TCBInfo is a read-only copy of one TCP control block, taken under the
// endpoint's lock. Field names follow RFC 9293 and are the stable JSON schema
// of the management shell (see ARCHITECTURE.md).
type TCBInfo struct {
	ID     uint64 `json:"id"`
	State  string `json:"state"`
	Local  string `json:"local"`
	Remote string `json:"remote"`

	ISS    uint32 `json:"iss"`
	IRS    uint32 `json:"irs"`
	SndUna uint32 `json:"snd_una"`
	SndNxt uint32 `json:"snd_nxt"`
	SndWnd uint32 `json:"snd_wnd"`
	SndWL1 uint32 `json:"snd_wl1"`
	SndWL2 uint32 `json:"snd_wl2"`
	SndUp  uint32 `json:"snd_up"`
	RcvNxt uint32 `json:"rcv_nxt"`
	RcvWnd uint32 `json:"rcv_wnd"`
	RcvUp  uint32 `json:"rcv_up"`

	MSS           uint16 `json:"mss"`
	SndWScale     int    `json:"snd_wscale"`
	RcvWScale     int    `json:"rcv_wscale"`
	SACKPermitted bool   `json:"sack_permitted"`
	Timestamps    bool   `json:"timestamps"`
	TSRecent      uint32 `json:"ts_recent"`

	CC       string `json:"cc"`
	Cwnd     uint32 `json:"cwnd"`
	Ssthresh uint32 `json:"ssthresh"`
	Recovery bool   `json:"recovery"`
	// SACKBlocks is the size of the sender's SACK scoreboard.
	SACKBlocks int `json:"sack_blocks"`

	SRTTus    int64       `json:"srtt_us"`
	RTTVARus  int64       `json:"rttvar_us"`
	RTOms     int64       `json:"rto_ms"`
	Backoff   int         `json:"backoff"`
	Timers    []TimerInfo `json:"timers"`
	SendQueue int         `json:"send_queue"`
	RecvQueue int         `json:"recv_queue"`
	OOOQueue  int         `json:"ooo_queue"`
	// SendBuffer and RecvBuffer are the buffers' current limits, which
	// auto-tuning grows (autotune.go).
	SendBuffer int `json:"send_buffer"`
	RecvBuffer int `json:"recv_buffer"`

	Counters Counters      `json:"counters"`
	History  []HistoryItem `json:"history"`
}

// TimerInfo describes one running timer of a TCB.
type TimerInfo struct {
	Name        string `json:"name"`
	RemainingMS int64  `json:"remaining_ms"`
}

// Counters are per-connection event counts.
type Counters struct {
	SegsIn          uint64 `json:"segs_in"`
	SegsOut         uint64 `json:"segs_out"`
	BytesIn         uint64 `json:"bytes_in"`
	BytesOut        uint64 `json:"bytes_out"`
	Retransmits     uint64 `json:"retransmits"`
	DupSegsIn       uint64 `json:"dup_segs_in"`
	RSTsIn          uint64 `json:"rsts_in"`
	RSTsOut         uint64 `json:"rsts_out"`
	ChallengeACKs   uint64 `json:"challenge_acks"`
	KeepaliveProbes uint64 `json:"keepalive_probes"`
	OOOSegsIn       uint64 `json:"ooo_segs_in"`
	OOODropped      uint64 `json:"ooo_dropped"`
	ICMPIgnored     uint64 `json:"icmp_ignored"`
	PMTUUpdates     uint64 `json:"pmtu_updates"`
	UrgentIn        uint64 `json:"urgent_in"`
	PAWSDropped     uint64 `json:"paws_dropped"`
	WindowProbes    uint64 `json:"window_probes"`
	FastRetransmits uint64 `json:"fast_retransmits"`
	LostRetransmits uint64 `json:"lost_retransmits"`
	LossProbes      uint64 `json:"loss_probes"`
}

// HistoryItem is one recorded state transition of a TCB.
type HistoryItem struct {
	At    time.Time `json:"at"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	Cause string    `json:"cause"`
}

// historyEntry is a HistoryItem as the TCB keeps it: 16 bytes, the cause
// interned as the flight recorder's are.
type historyEntry struct {
	at       tcpip.MonotonicTime
	from, to State
	cause    uint16
}

// snapshot copies the TCB under its lock.
func (e *endpoint) snapshot() TCBInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snapshotLocked()
}

// snapshotLocked copies the TCB; e.mu is held.
func (e *endpoint) snapshotLocked() TCBInfo {
	mono := e.stack.Clock().NowMonotonic()
	info := TCBInfo{
		ID:            e.id,
		State:         e.state.String(),
		Local:         hostPort(e.tid.LocalAddress, e.tid.LocalPort),
		Remote:        hostPort(e.tid.RemoteAddress, e.tid.RemotePort),
		ISS:           uint32(e.iss),
		IRS:           uint32(e.irs),
		SndUna:        uint32(e.sndUna),
		SndNxt:        uint32(e.sndNxt),
		SndWnd:        uint32(e.sndWnd),
		SndWL1:        uint32(e.sndWL1),
		SndWL2:        uint32(e.sndWL2),
		SndUp:         uint32(e.sndUna),
		RcvNxt:        uint32(e.rcvNxt),
		RcvUp:         uint32(e.rcvNxt),
		MSS:           uint16(e.sndMSS),
		SndWScale:     int(e.sndWScale),
		RcvWScale:     int(e.rcvWScale),
		SACKPermitted: e.sackOK,
		Timestamps:    e.tsOK,
		TSRecent:      e.tsRecent,
		CC:            e.cc.Name(),
		Cwnd:          uint32(e.cc.Cwnd()),
		Ssthresh:      uint32(min(e.cc.Ssthresh(), 1<<31-1)),
		Recovery:      e.rec.active,
		SACKBlocks:    len(e.sb.blocks),
		SRTTus:        e.rtt.srtt.Microseconds(),
		RTTVARus:      e.rtt.rttvar.Microseconds(),
		RTOms:         e.rtt.current().Milliseconds(),
		Backoff:       int(e.rtt.backoff),
		SendQueue:     e.sndQueued(),
		RecvQueue:     e.rcvQueued(),
		OOOQueue:      e.oooBytes,
		SendBuffer:    e.sndBufMax,
		RecvBuffer:    e.rcvBufMax,
		Counters:      e.counters,
		History:       make([]HistoryItem, 0, len(e.history)),
		Timers:        []TimerInfo{},
	}
	wall := e.stack.Clock().Now()
	for _, h := range e.history {
		info.History = append(info.History, HistoryItem{
			At:    wall.Add(h.at.Sub(mono)),
			From:  h.from.String(),
			To:    h.to.String(),
			Cause: causeName(h.cause),
		})
	}
	if e.state == StateListen {
		// A listener carries no data: its window fields mean nothing.
		info.Cwnd, info.Ssthresh = 0, 0
	}
	if e.sndUrgent {
		info.SndUp = uint32(e.sndUp)
	}
	if e.rcvUrgent {
		info.RcvUp = uint32(e.rcvUp)
	}
	if e.state.synchronized() || e.state == StateSynReceived {
		info.RcvWnd = uint32(e.rcvNxt.Size(e.rcvAdv))
	}
	for _, t := range []struct {
		name     string
		deadline tcpip.MonotonicTime
	}{{"retransmit", e.rtoTimer.deadline}, {"time-wait", e.timeWaitTimer.deadline}, {"fin-wait-2", e.finWait2Timer.deadline}, {"keepalive", e.ka.timer.deadline}, {"delayed-ack", e.delackTimer.deadline}, {"tail-loss-probe", e.tlp.timer.deadline}} {
		if t.deadline != (tcpip.MonotonicTime{}) {
			info.Timers = append(info.Timers, TimerInfo{Name: t.name, RemainingMS: t.deadline.Sub(mono).Milliseconds()})
		}
	}
	return info
}

func hostPort(a tcpip.Address, port uint16) string {
	host := "*"
	if a.BitLen() != 0 {
		host = a.String()
	}
	p := "*"
	if port != 0 {
		p = strconv.Itoa(int(port))
	}
	return net.JoinHostPort(host, p)
}
