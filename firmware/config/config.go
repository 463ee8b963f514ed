// Package config loads and validates the firmware configuration: a YAML file
// read through viper, where every key can also be set by an environment
// variable named SYNFIN_ followed by the key in upper case with dots replaced
// by underscores (tcp.msl -> SYNFIN_TCP_MSL). The environment wins over the
// file. The keys and their defaults are fixed by ARCHITECTURE.md.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"golang.org/x/crypto/bcrypt"
)

// EnvPrefix prefixes the environment variable of every key.
const EnvPrefix = "SYNFIN"

// Config is the validated firmware configuration.
type Config struct {
	// Board is the board profile: host, qemu-virt, rpi3, rpi4 or rpi5, or
	// auto to detect it from the device tree.
	Board    string
	NIC      NIC
	Net      Net
	TCP      TCP
	Services Services
	Mgmt     Mgmt
}

// NIC selects the Linux interface the firmware takes over.
type NIC struct {
	Interface string
	// Driver is afpacket, afxdp or auto (AF_XDP where it can work,
	// AF_PACKET otherwise).
	Driver string
	// XDPMode is where AF_XDP's XDP program runs: auto (native where the
	// NIC driver has it, generic otherwise), native or generic.
	XDPMode string
	MTU     uint32
	// Impair degrades the link on purpose, for the lab.
	Impair Impair
}

// Impair is the lab mode (nic.impair): the firmware's NIC loses, delays,
// reorders, duplicates, corrupts and rate-limits packets on purpose, so
// that TCP can be watched on a bad link. The zero value, the default,
// leaves the link alone.
type Impair struct {
	// Direction is both, in or out: the traffic impaired, as seen from
	// the firmware.
	Direction string
	// Seed seeds the random decisions; the inbound direction uses Seed+1.
	Seed uint64
	// Loss, Duplicate and Corrupt are probabilities per packet.
	Loss, Duplicate, Corrupt float64
	// Delay is added to every packet, and Jitter, drawn uniformly from
	// [0, Jitter) for each packet, on top; it reorders packets.
	Delay, Jitter time.Duration
	// Rate is the link rate in bits per second (0: unlimited); packets
	// beyond it wait in a queue of QueueLimit packets, tail-dropped.
	Rate       uint64
	QueueLimit int
}

// Active reports whether any impairment is configured.
func (i Impair) Active() bool {
	return i.Loss > 0 || i.Duplicate > 0 || i.Corrupt > 0 || i.Delay > 0 || i.Jitter > 0 || i.Rate > 0
}

// Net is the firmware's own IPv4 addressing.
type Net struct {
	// Address is the firmware's address together with its subnet's prefix
	// length, e.g. 198.18.0.2/24.
	Address netip.Prefix
	// Gateway is the default route's next hop. The zero Addr (an empty
	// net.gateway) means no default route.
	Gateway netip.Addr
}

// TCP holds the defaults handed to tcpext.
type TCP struct {
	// CongestionControl is newreno or cubic.
	CongestionControl string
	// MSL is the maximum segment lifetime; TIME-WAIT lasts 2*MSL.
	MSL             time.Duration
	FinWait2Timeout time.Duration
	// QuietTime is the RFC 9293 quiet time after boot.
	QuietTime time.Duration
	Keepalive Keepalive
	// RTOMin and RTOMax bound the retransmission timeout (RFC 6298).
	RTOMin, RTOMax time.Duration
	// UserTimeout fails a connection whose data stays unacknowledged this
	// long (RFC 9293 section 3.8.3); 0 leaves it to the retransmission
	// limit.
	UserTimeout time.Duration
	// DelayedACK is the delayed ACK timer; 0 acknowledges every segment.
	DelayedACK time.Duration
	Recorder   Recorder
}

// Recorder bounds the per-TCB flight recorder.
type Recorder struct {
	// Events is the ring size per TCB; 0 turns recording off.
	Events int
	// Closed is how many closed TCBs stay dumpable.
	Closed int
}

// Keepalive holds the keepalive timers.
type Keepalive struct {
	Idle     time.Duration
	Interval time.Duration
	Count    int
}

// Services are the classic test services, each optional.
type Services struct {
	Echo    Service
	Discard Service
	Daytime Service
	Chargen Service
}

// Service is one optional TCP service.
//
// A service is off unless its section appears in the config file or its port
// is set through the environment. A section without a port (`echo: {}`)
// selects the service's well-known port, and port 0 turns it off.
type Service struct {
	Port uint16
}

// Enabled reports whether the service should run.
func (s Service) Enabled() bool { return s.Port != 0 }

// Mgmt configures the management interfaces.
type Mgmt struct {
	// Socket is the path of the local management socket.
	Socket string
	SSH    SSH
}

// SSH configures the management SSH server.
type SSH struct {
	// Port 0 turns the SSH server off.
	Port           uint16
	HostKey        string
	AuthorizedKeys string
	// PasswordHash is a bcrypt hash of the login password; empty refuses
	// password logins.
	PasswordHash string
	// IdleTimeout closes a session idle this long; 0 never does.
	IdleTimeout time.Duration
}

// field ties one config key to its default and to its place in Config. The
// table below is the single list of keys: it drives the defaults (and thereby
// the environment overrides), the unknown-key check, parsing and MarshalJSON.
type field struct {
	key string
	// def is the default in config-file syntax.
	def string
	set func(c *Config, raw string) error
	get func(c *Config) any
}

var fields = []field{
	oneOf("board", "host", func(c *Config) *string { return &c.Board }, "host", "qemu-virt", "rpi3", "rpi4", "rpi5", "auto"),

	text("nic.interface", "veth-dut", func(c *Config) *string { return &c.NIC.Interface }),
	oneOf("nic.driver", "afpacket", func(c *Config) *string { return &c.NIC.Driver }, "afpacket", "afxdp", "auto"),
	oneOf("nic.xdp_mode", "auto", func(c *Config) *string { return &c.NIC.XDPMode }, "auto", "native", "generic"),
	number("nic.mtu", "1500", 68, 65535, func(c *Config) *uint32 { return &c.NIC.MTU }),
	oneOf("nic.impair.direction", "both", func(c *Config) *string { return &c.NIC.Impair.Direction }, "both", "in", "out"),
	number("nic.impair.seed", "1", 0, math.MaxInt64, func(c *Config) *uint64 { return &c.NIC.Impair.Seed }),
	probability("nic.impair.loss", func(c *Config) *float64 { return &c.NIC.Impair.Loss }),
	duration("nic.impair.delay", "0s", false, func(c *Config) *time.Duration { return &c.NIC.Impair.Delay }),
	duration("nic.impair.jitter", "0s", false, func(c *Config) *time.Duration { return &c.NIC.Impair.Jitter }),
	probability("nic.impair.duplicate", func(c *Config) *float64 { return &c.NIC.Impair.Duplicate }),
	probability("nic.impair.corrupt", func(c *Config) *float64 { return &c.NIC.Impair.Corrupt }),
	bitRate("nic.impair.rate", func(c *Config) *uint64 { return &c.NIC.Impair.Rate }),
	number("nic.impair.queue_limit", "1000", 1, 1_000_000, func(c *Config) *int { return &c.NIC.Impair.QueueLimit }),

	{
		key: "net.address",
		def: "198.18.0.2/24",
		set: func(c *Config, raw string) error {
			p, err := netip.ParsePrefix(raw)
			if err != nil || !p.Addr().Is4() {
				return fmt.Errorf("invalid IPv4 address/prefix %q", raw)
			}
			c.Net.Address = p
			return nil
		},
		get: func(c *Config) any { return c.Net.Address.String() },
	},
	{
		key: "net.gateway",
		def: "198.18.0.1",
		set: func(c *Config, raw string) error {
			if raw == "" {
				c.Net.Gateway = netip.Addr{}
				return nil
			}
			a, err := netip.ParseAddr(raw)
			if err != nil || !a.Is4() {
				return fmt.Errorf("invalid IPv4 address %q", raw)
			}
			c.Net.Gateway = a
			return nil
		},
		get: func(c *Config) any {
			if !c.Net.Gateway.IsValid() {
				return ""
			}
			return c.Net.Gateway.String()
		},
	},

	oneOf("tcp.congestion_control", "cubic", func(c *Config) *string { return &c.TCP.CongestionControl }, "newreno", "cubic"),
	duration("tcp.msl", "30s", false, func(c *Config) *time.Duration { return &c.TCP.MSL }),
	duration("tcp.fin_wait2_timeout", "60s", false, func(c *Config) *time.Duration { return &c.TCP.FinWait2Timeout }),
	duration("tcp.quiet_time", "0s", false, func(c *Config) *time.Duration { return &c.TCP.QuietTime }),
	// A zero keepalive timer would probe back to back, so they must be positive.
	duration("tcp.keepalive.idle", "2h", true, func(c *Config) *time.Duration { return &c.TCP.Keepalive.Idle }),
	duration("tcp.keepalive.interval", "75s", true, func(c *Config) *time.Duration { return &c.TCP.Keepalive.Interval }),
	// Linux caps the probe count at 127 (MAX_TCP_KEEPCNT); so do we.
	number("tcp.keepalive.count", "9", 1, 127, func(c *Config) *int { return &c.TCP.Keepalive.Count }),
	// A zero RTO would retransmit back to back; crossCheck keeps the
	// bounds in order.
	duration("tcp.rto_min", "200ms", true, func(c *Config) *time.Duration { return &c.TCP.RTOMin }),
	duration("tcp.rto_max", "60s", true, func(c *Config) *time.Duration { return &c.TCP.RTOMax }),
	duration("tcp.user_timeout", "0s", false, func(c *Config) *time.Duration { return &c.TCP.UserTimeout }),
	duration("tcp.delayed_ack", "40ms", false, func(c *Config) *time.Duration { return &c.TCP.DelayedACK }),
	number("tcp.recorder.events", "256", 0, 65536, func(c *Config) *int { return &c.TCP.Recorder.Events }),
	number("tcp.recorder.closed", "64", 0, 4096, func(c *Config) *int { return &c.TCP.Recorder.Closed }),

	// Port 0 is the "off" value of a service, so it is in range here.
	number("services.echo.port", "0", 0, 65535, func(c *Config) *uint16 { return &c.Services.Echo.Port }),
	number("services.discard.port", "0", 0, 65535, func(c *Config) *uint16 { return &c.Services.Discard.Port }),
	number("services.daytime.port", "0", 0, 65535, func(c *Config) *uint16 { return &c.Services.Daytime.Port }),
	number("services.chargen.port", "0", 0, 65535, func(c *Config) *uint16 { return &c.Services.Chargen.Port }),

	text("mgmt.socket", "/run/synfin/mgmt.sock", func(c *Config) *string { return &c.Mgmt.Socket }),
	// Port 0 turns the SSH server off.
	number("mgmt.ssh.port", "22", 0, 65535, func(c *Config) *uint16 { return &c.Mgmt.SSH.Port }),
	text("mgmt.ssh.host_key", "/perm/ssh_host_ed25519_key", func(c *Config) *string { return &c.Mgmt.SSH.HostKey }),
	text("mgmt.ssh.authorized_keys", "/perm/authorized_keys", func(c *Config) *string { return &c.Mgmt.SSH.AuthorizedKeys }),
	{
		key: "mgmt.ssh.password_hash",
		def: "",
		set: func(c *Config, raw string) error {
			if raw != "" {
				if _, err := bcrypt.Cost([]byte(raw)); err != nil {
					return fmt.Errorf("not a bcrypt hash: %w", err)
				}
			}
			c.Mgmt.SSH.PasswordHash = raw
			return nil
		},
		get: func(c *Config) any { return c.Mgmt.SSH.PasswordHash },
	},
	duration("mgmt.ssh.idle_timeout", "15m", false, func(c *Config) *time.Duration { return &c.Mgmt.SSH.IdleTimeout }),
}

// wellKnownPorts are the ports a service gets when its section is present
// without a port (RFC 862, 863, 867, 864).
var wellKnownPorts = []struct {
	name string
	port uint16
	svc  func(c *Config) *Service
}{
	{"echo", 7, func(c *Config) *Service { return &c.Services.Echo }},
	{"discard", 9, func(c *Config) *Service { return &c.Services.Discard }},
	{"daytime", 13, func(c *Config) *Service { return &c.Services.Daytime }},
	{"chargen", 19, func(c *Config) *Service { return &c.Services.Chargen }},
}

func text(key, def string, p func(*Config) *string) field {
	return field{
		key: key,
		def: def,
		set: func(c *Config, raw string) error {
			if raw == "" {
				return errors.New("must not be empty")
			}
			*p(c) = raw
			return nil
		},
		get: func(c *Config) any { return *p(c) },
	}
}

func oneOf(key, def string, p func(*Config) *string, allowed ...string) field {
	return field{
		key: key,
		def: def,
		set: func(c *Config, raw string) error {
			if !slices.Contains(allowed, raw) {
				return fmt.Errorf("invalid value %q (want one of %s)", raw, strings.Join(allowed, ", "))
			}
			*p(c) = raw
			return nil
		},
		get: func(c *Config) any { return *p(c) },
	}
}

func number[T ~int | ~uint16 | ~uint32 | ~uint64](key, def string, lo, hi int64, p func(*Config) *T) field {
	return field{
		key: key,
		def: def,
		set: func(c *Config, raw string) error {
			n, err := strconv.ParseInt(raw, 10, 64)
			if err != nil {
				return fmt.Errorf("invalid integer %q", raw)
			}
			if n < lo || n > hi {
				return fmt.Errorf("%d out of range %d..%d", n, lo, hi)
			}
			*p(c) = T(n)
			return nil
		},
		get: func(c *Config) any { return *p(c) },
	}
}

// probability is a key for a probability, written as a fraction (0.01)
// or a percentage (1%); its default is 0.
func probability(key string, p func(*Config) *float64) field {
	return field{
		key: key,
		def: "0",
		set: func(c *Config, raw string) error {
			num, percent := strings.CutSuffix(strings.TrimSpace(raw), "%")
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil {
				return fmt.Errorf("invalid probability %q (want a fraction like 0.01 or a percentage like 1%%)", raw)
			}
			if percent {
				v /= 100
			}
			if !(v >= 0 && v <= 1) { // also refuses NaN
				return fmt.Errorf("probability %q out of range 0..1 (0%%..100%%)", raw)
			}
			*p(c) = v
			return nil
		},
		get: func(c *Config) any { return *p(c) },
	}
}

// bitRateUnits are the units bitRate accepts, as tc(8) spells them.
var bitRateUnits = []struct {
	suffix string
	mult   uint64
}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

// bitRate is a key for a rate in bits per second, written as a plain
// number or with a tc-style unit (bit, kbit, mbit, gbit); its default is
// 0, unlimited.
func bitRate(key string, p func(*Config) *uint64) field {
	return field{
		key: key,
		def: "0",
		set: func(c *Config, raw string) error {
			num, mult := strings.ToLower(strings.TrimSpace(raw)), uint64(1)
			for _, u := range bitRateUnits {
				if n, ok := strings.CutSuffix(num, u.suffix); ok {
					num, mult = strings.TrimSpace(n), u.mult
					break
				}
			}
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v < 0 || v*float64(mult) > math.MaxInt64 {
				return fmt.Errorf("invalid rate %q (want bits per second, e.g. 100mbit)", raw)
			}
			*p(c) = uint64(v * float64(mult))
			return nil
		},
		get: func(c *Config) any { return *p(c) },
	}
}

func duration(key, def string, positive bool, p func(*Config) *time.Duration) field {
	return field{
		key: key,
		def: def,
		set: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			switch {
			case err != nil:
				return fmt.Errorf("invalid duration %q", raw)
			case d < 0:
				return fmt.Errorf("negative duration %q", raw)
			case d == 0 && positive:
				return fmt.Errorf("duration must be positive, got %q", raw)
			}
			*p(c) = d
			return nil
		},
		get: func(c *Config) any { return p(c).String() },
	}
}

// Load reads the YAML file at path (none if path is empty), applies the
// SYNFIN_* environment and the defaults, and validates the result. The error
// names every offending key, one per line, as "config: KEY: problem".
func Load(path string) (*Config, error) {
	return LoadDefaults(path, nil)
}

// LoadDefaults is Load with some keys' defaults replaced, as a board profile
// does: defaults maps a key to its default in config-file syntax. The file
// and the environment still override them.
func LoadDefaults(path string, defaults map[string]string) (*Config, error) {
	for key := range defaults {
		if !slices.ContainsFunc(fields, func(f field) bool { return f.key == key }) {
			return nil, keyError(key, errors.New("default for an unknown key"))
		}
	}
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}

	// The file on its own tells which keys and sections the user wrote;
	// the merged view (file, environment, defaults) gives the values.
	file := viper.New()
	file.SetConfigType("yaml")
	if err := file.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, f := range fields {
		// A default makes viper consult the environment for the key even
		// when the file lacks it.
		def, ok := defaults[f.key]
		if !ok {
			def = f.def
		}
		v.SetDefault(f.key, def)
	}
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}

	errs := checkKeys(file)
	c := &Config{}
	for _, f := range fields {
		raw, err := scalar(v.Get(f.key))
		if err == nil {
			err = f.set(c, raw)
		}
		if err != nil {
			errs = append(errs, keyError(f.key, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	applyWellKnownPorts(c, file)
	if err := errors.Join(c.crossCheck()...); err != nil {
		return nil, err
	}
	return c, nil
}

func keyError(key string, err error) error {
	return fmt.Errorf("config: %s: %w", key, err)
}

// scalar turns a value from viper into the text the field parsers take: YAML
// gives numbers as numbers, the environment gives everything as strings.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case map[string]any, []any:
		return "", errors.New("expected a single value, not a section or list")
	default:
		return fmt.Sprint(x), nil
	}
}

// checkKeys refuses keys the file has that the firmware does not know.
func checkKeys(file *viper.Viper) []error {
	known := map[string]bool{}
	sections := map[string]bool{}
	for _, f := range fields {
		known[f.key] = true
		for i := range len(f.key) {
			if f.key[i] == '.' {
				sections[f.key[:i]] = true
			}
		}
	}
	var errs []error
	keys := file.AllKeys()
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case known[k]:
		case sections[k]:
			// viper lists a section as a key only when it is not a
			// mapping; an empty section (`nic:`) is fine.
			if val := file.Get(k); val != nil {
				errs = append(errs, keyError(k, fmt.Errorf("expected a section, got %v", val)))
			}
		default:
			errs = append(errs, keyError(k, errors.New("unknown key")))
		}
	}
	return errs
}

// applyWellKnownPorts gives a service whose section is in the file but whose
// port is set nowhere its well-known port.
func applyWellKnownPorts(c *Config, file *viper.Viper) {
	present, _ := file.Get("services").(map[string]any)
	for _, s := range wellKnownPorts {
		portKey := "services." + s.name + ".port"
		if _, ok := present[s.name]; !ok || file.IsSet(portKey) {
			continue
		}
		if _, ok := os.LookupEnv(EnvName(portKey)); ok {
			continue
		}
		s.svc(c).Port = s.port
	}
}

// crossCheck validates what single keys cannot.
func (c *Config) crossCheck() []error {
	var errs []error
	if gw := c.Net.Gateway; gw.IsValid() {
		switch {
		case gw == c.Net.Address.Addr():
			errs = append(errs, keyError("net.gateway", fmt.Errorf("%s is the firmware's own address", gw)))
		case !c.Net.Address.Masked().Contains(gw):
			errs = append(errs, keyError("net.gateway", fmt.Errorf("%s is outside net.address %s", gw, c.Net.Address)))
		}
	}

	// RFC 9293 section 3.8.6.3: the delay MUST be less than 0.5 seconds.
	if c.TCP.DelayedACK >= 500*time.Millisecond {
		errs = append(errs, keyError("tcp.delayed_ack", fmt.Errorf("%s is not below 500ms (RFC 9293 3.8.6.3)", c.TCP.DelayedACK)))
	}
	if c.TCP.RTOMax < c.TCP.RTOMin {
		errs = append(errs, keyError("tcp.rto_max", fmt.Errorf("%s is below tcp.rto_min %s", c.TCP.RTOMax, c.TCP.RTOMin)))
	}

	// Every TCP listener of the firmware shares its one address.
	owner := map[uint16]string{}
	if c.Mgmt.SSH.Port != 0 {
		owner[c.Mgmt.SSH.Port] = "mgmt.ssh.port"
	}
	for _, s := range wellKnownPorts {
		port := s.svc(c).Port
		if port == 0 {
			continue
		}
		key := "services." + s.name + ".port"
		if other, ok := owner[port]; ok {
			errs = append(errs, keyError(key, fmt.Errorf("port %d already used by %s", port, other)))
			continue
		}
		owner[port] = key
	}
	return errs
}

// Keys returns every config key, in the order of the table.
func Keys() []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

// EnvName returns the environment variable that sets key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// MarshalJSON renders the configuration in the shape of the config file:
// nested sections keyed by the config keys, durations as Go duration strings.
func (c *Config) MarshalJSON() ([]byte, error) {
	root := map[string]any{}
	for _, f := range fields {
		m := root
		parts := strings.Split(f.key, ".")
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = f.get(c)
	}
	return json.Marshal(root)
}
