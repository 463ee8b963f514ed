package config

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cleanEnv hides any SYNFIN_* variable of the caller's environment so tests
// see only what they set themselves.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "synfin.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const fullConfig = `
board: rpi4
nic:
  interface: eth0
  driver: afxdp
  mtu: 9000
  impair: {direction: out, seed: 42, loss: 1%, delay: 10ms, jitter: 2ms, duplicate: 0.005, corrupt: 0.1%, rate: 100mbit, queue_limit: 50}
net:
  address: 10.1.2.3/16
  gateway: 10.1.0.1
tcp:
  congestion_control: newreno
  msl: 1s
  fin_wait2_timeout: 5s
  quiet_time: 2s
  keepalive: {idle: 10m, interval: 10s, count: 3}
  rto_min: 50ms
  rto_max: 10s
  user_timeout: 30s
  delayed_ack: 100ms
  recorder: {events: 0, closed: 8}
services:
  echo: {port: 7}
  discard: {port: 9}
  daytime: {port: 13}
  chargen: {port: 1919}
mgmt:
  socket: /tmp/x.sock
  ssh: {port: 2222, host_key: /k, authorized_keys: /a, password_hash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", idle_timeout: 5m}
`

func TestLoadFull(t *testing.T) {
	cleanEnv(t)
	c, err := Load(writeConfig(t, fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Board: "rpi4",
		NIC: NIC{Interface: "eth0", Driver: "afxdp", XDPMode: "auto", MTU: 9000, Impair: Impair{
			Direction: "out", Seed: 42, Loss: 0.01, Delay: 10 * time.Millisecond, Jitter: 2 * time.Millisecond,
			Duplicate: 0.005, Corrupt: 0.001, Rate: 100_000_000, QueueLimit: 50,
		}},
		Net: Net{Address: netip.MustParsePrefix("10.1.2.3/16"), Gateway: netip.MustParseAddr("10.1.0.1")},
		TCP: TCP{
			CongestionControl: "newreno",
			MSL:               time.Second,
			FinWait2Timeout:   5 * time.Second,
			QuietTime:         2 * time.Second,
			Keepalive:         Keepalive{Idle: 10 * time.Minute, Interval: 10 * time.Second, Count: 3},
			RTOMin:            50 * time.Millisecond,
			RTOMax:            10 * time.Second,
			UserTimeout:       30 * time.Second,
			DelayedACK:        100 * time.Millisecond,
			Recorder:          Recorder{Events: 0, Closed: 8},
		},
		Services: Services{Echo: Service{7}, Discard: Service{9}, Daytime: Service{13}, Chargen: Service{1919}},
		Mgmt: Mgmt{Socket: "/tmp/x.sock", SSH: SSH{Port: 2222, HostKey: "/k", AuthorizedKeys: "/a",
			PasswordHash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", IdleTimeout: 5 * time.Minute}},
	}
	if *c != want {
		t.Errorf("Load:\n got %+v\nwant %+v", *c, want)
	}
}

func TestDefaults(t *testing.T) {
	cleanEnv(t)
	for name, path := range map[string]string{"no file": "", "empty file": writeConfig(t, "# nothing\n")} {
		c, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := Config{
			Board: "host",
			NIC:   NIC{Interface: "veth-dut", Driver: "afpacket", XDPMode: "auto", MTU: 1500, Impair: Impair{Direction: "both", Seed: 1, QueueLimit: 1000}},
			Net:   Net{Address: netip.MustParsePrefix("198.18.0.2/24"), Gateway: netip.MustParseAddr("198.18.0.1")},
			TCP: TCP{
				CongestionControl: "cubic",
				MSL:               30 * time.Second,
				FinWait2Timeout:   60 * time.Second,
				Keepalive:         Keepalive{Idle: 2 * time.Hour, Interval: 75 * time.Second, Count: 9},
				RTOMin:            200 * time.Millisecond,
				RTOMax:            60 * time.Second,
				DelayedACK:        40 * time.Millisecond,
				Recorder:          Recorder{Events: 256, Closed: 64},
			},
			Mgmt: Mgmt{Socket: "/run/synfin/mgmt.sock", SSH: SSH{Port: 22, HostKey: "/perm/ssh_host_ed25519_key", AuthorizedKeys: "/perm/authorized_keys", IdleTimeout: 15 * time.Minute}},
		}
		if *c != want {
			t.Errorf("%s:\n got %+v\nwant %+v", name, *c, want)
		}
	}
}

func TestEnvOverride(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SYNFIN_TCP_MSL", "1s")                 // in the file: env wins
	t.Setenv("SYNFIN_NIC_INTERFACE", "veth9")        // not in the file
	t.Setenv("SYNFIN_TCP_KEEPALIVE_COUNT", "4")      // nested, not in the file
	t.Setenv("SYNFIN_SERVICES_DAYTIME_PORT", "1313") // enables a service absent from the file
	t.Setenv("SYNFIN_SERVICES_ECHO_PORT", "0")       // disables one the file enables
	c, err := Load(writeConfig(t, "tcp:\n  msl: 5s\nservices:\n  echo: {port: 7}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.TCP.MSL != time.Second {
		t.Errorf("tcp.msl = %v, want 1s", c.TCP.MSL)
	}
	if c.NIC.Interface != "veth9" {
		t.Errorf("nic.interface = %q, want veth9", c.NIC.Interface)
	}
	if c.TCP.Keepalive.Count != 4 {
		t.Errorf("tcp.keepalive.count = %d, want 4", c.TCP.Keepalive.Count)
	}
	if c.Services.Daytime.Port != 1313 || c.Services.Echo.Enabled() {
		t.Errorf("services = %+v, want only daytime on 1313", c.Services)
	}
}

func TestEnvRefused(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SYNFIN_TCP_MSL", "abc")
	_, err := Load("")
	if err == nil || !strings.Contains(err.Error(), `config: tcp.msl: invalid duration "abc"`) {
		t.Fatalf("Load = %v, want tcp.msl refused", err)
	}
}

func TestImpairFromEnv(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SYNFIN_NIC_IMPAIR_LOSS", "1%")
	t.Setenv("SYNFIN_NIC_IMPAIR_RATE", "1.5gbit")
	t.Setenv("SYNFIN_NIC_IMPAIR_DELAY", "5ms")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := Impair{Direction: "both", Seed: 1, Loss: 0.01, Rate: 1_500_000_000, Delay: 5 * time.Millisecond, QueueLimit: 1000}
	if c.NIC.Impair != want || !c.NIC.Impair.Active() {
		t.Fatalf("nic.impair = %+v, want %+v", c.NIC.Impair, want)
	}
	cleanEnv(t)
	if c, err = Load(""); err != nil || c.NIC.Impair.Active() {
		t.Fatalf("defaults: %v, impairment %+v, want none", err, c.NIC.Impair)
	}
}

func TestServiceSections(t *testing.T) {
	cleanEnv(t)
	c, err := Load(writeConfig(t, "services:\n  echo: {}\n  discard:\n  chargen: {port: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Services{Echo: Service{7}, Discard: Service{9}}
	if c.Services != want {
		t.Errorf("services = %+v, want %+v", c.Services, want)
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "bored: host\n", "config: bored: unknown key"},
		{"unknown nested key", "tcp:\n  keepalive: {idle: 1m, probes: 3}\n", "config: tcp.keepalive.probes: unknown key"},
		{"unknown service", "services:\n  qotd: {port: 17}\n", "config: services.qotd.port: unknown key"},
		{"value where a section belongs", "nic: eth0\n", "config: nic: expected a section"},
		{"section where a value belongs", "board: {name: rpi4}\n", "config: board.name: unknown key"},
		{"bad board", "board: rpi2\n", "config: board: invalid value"},
		{"bad driver", "nic: {driver: tap}\n", "config: nic.driver: invalid value"},
		{"bad XDP mode", "nic: {xdp_mode: offload}\n", "config: nic.xdp_mode: invalid value"},
		{"empty interface", "nic: {interface: ''}\n", "config: nic.interface: must not be empty"},
		{"mtu too small", "nic: {mtu: 67}\n", "config: nic.mtu: 67 out of range"},
		{"mtu too big", "nic: {mtu: 65536}\n", "config: nic.mtu: 65536 out of range"},
		{"mtu not a number", "nic: {mtu: big}\n", `config: nic.mtu: invalid integer "big"`},
		{"loss above 1", "nic: {impair: {loss: 1.5}}\n", `config: nic.impair.loss: probability "1.5" out of range`},
		{"loss above 100%", "nic: {impair: {loss: 101%}}\n", `config: nic.impair.loss: probability "101%" out of range`},
		{"negative duplicate", "nic: {impair: {duplicate: -0.1}}\n", "config: nic.impair.duplicate: probability"},
		{"corrupt not a number", "nic: {impair: {corrupt: often}}\n", `config: nic.impair.corrupt: invalid probability "often"`},
		{"negative delay", "nic: {impair: {delay: -1ms}}\n", "config: nic.impair.delay: negative duration"},
		{"unitless jitter", "nic: {impair: {jitter: 5}}\n", `config: nic.impair.jitter: invalid duration "5"`},
		{"bad rate unit", "nic: {impair: {rate: 10mbps}}\n", `config: nic.impair.rate: invalid rate "10mbps"`},
		{"negative rate", "nic: {impair: {rate: -1mbit}}\n", `config: nic.impair.rate: invalid rate`},
		{"zero queue", "nic: {impair: {queue_limit: 0}}\n", "config: nic.impair.queue_limit: 0 out of range"},
		{"bad direction", "nic: {impair: {direction: sideways}}\n", "config: nic.impair.direction: invalid value"},
		{"unknown impairment", "nic: {impair: {reorder: 5%}}\n", "config: nic.impair.reorder: unknown key"},
		{"bad CIDR", "net: {address: 198.18.0.2}\n", "config: net.address: invalid"},
		{"IPv6 address", "net: {address: 'fd00::2/64'}\n", "config: net.address: invalid"},
		{"bad gateway", "net: {gateway: 198.18.0.300}\n", "config: net.gateway: invalid"},
		{"gateway off subnet", "net: {gateway: 10.0.0.1}\n", "config: net.gateway: 10.0.0.1 is outside"},
		{"gateway is self", "net: {gateway: 198.18.0.2}\n", "config: net.gateway: 198.18.0.2 is the firmware's own address"},
		{"bad congestion control", "tcp: {congestion_control: bbr}\n", "config: tcp.congestion_control: invalid value"},
		{"bad duration", "tcp: {msl: abc}\n", `config: tcp.msl: invalid duration "abc"`},
		{"unitless duration", "tcp: {fin_wait2_timeout: 30}\n", `config: tcp.fin_wait2_timeout: invalid duration "30"`},
		{"negative duration", "tcp: {quiet_time: -1s}\n", "config: tcp.quiet_time: negative duration"},
		{"negative keepalive", "tcp: {keepalive: {interval: -5s}}\n", "config: tcp.keepalive.interval: negative duration"},
		{"zero keepalive", "tcp: {keepalive: {idle: 0s}}\n", "config: tcp.keepalive.idle: duration must be positive"},
		{"keepalive count zero", "tcp: {keepalive: {count: 0}}\n", "config: tcp.keepalive.count: 0 out of range"},
		{"zero rto_min", "tcp: {rto_min: 0s}\n", "config: tcp.rto_min: duration must be positive"},
		{"rto_max below rto_min", "tcp: {rto_min: 2s, rto_max: 1s}\n", "config: tcp.rto_max: 1s is below tcp.rto_min 2s"},
		{"rto_max below default rto_min", "tcp: {rto_max: 100ms}\n", "config: tcp.rto_max: 100ms is below tcp.rto_min 200ms"},
		{"delayed ACK of half a second", "tcp: {delayed_ack: 500ms}\n", "config: tcp.delayed_ack: 500ms is not below 500ms"},
		{"negative user timeout", "tcp: {user_timeout: -1s}\n", "config: tcp.user_timeout: negative duration"},
		{"service port too big", "services: {echo: {port: 65536}}\n", "config: services.echo.port: 65536 out of range"},
		{"service port negative", "services: {chargen: {port: -1}}\n", "config: services.chargen.port: -1 out of range"},
		{"service port clash", "services: {echo: {port: 7}, discard: {port: 7}}\n", "config: services.discard.port: port 7 already used by services.echo.port"},
		{"service on ssh port", "services: {daytime: {port: 22}}\n", "config: services.daytime.port: port 22 already used by mgmt.ssh.port"},
		{"ssh port negative", "mgmt: {ssh: {port: -1}}\n", "config: mgmt.ssh.port: -1 out of range"},
		{"password hash not bcrypt", "mgmt: {ssh: {password_hash: secret}}\n", "config: mgmt.ssh.password_hash: not a bcrypt hash"},
		{"negative idle timeout", "mgmt: {ssh: {idle_timeout: -1s}}\n", "config: mgmt.ssh.idle_timeout: negative duration"},
		{"ssh port too big", "mgmt: {ssh: {port: 70000}}\n", "config: mgmt.ssh.port: 70000 out of range"},
		{"empty host key", "mgmt: {ssh: {host_key: ''}}\n", "config: mgmt.ssh.host_key: must not be empty"},
		{"empty socket", "mgmt: {socket: ''}\n", "config: mgmt.socket: must not be empty"},
		{"list value", "board: [host]\n", "config: board: expected a single value"},
		{"not YAML", "board: [host\n", "config: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			c, err := Load(writeConfig(t, tc.yaml))
			if err == nil {
				t.Fatalf("Load accepted it: %+v", c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	cleanEnv(t)
	_, err := Load(writeConfig(t, "board: x\nnic: {mtu: 1}\nfoo: 1\n"))
	if err == nil {
		t.Fatal("Load accepted it")
	}
	for _, key := range []string{"board", "nic.mtu", "foo"} {
		if !strings.Contains(err.Error(), "config: "+key+":") {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}

func TestMissingFile(t *testing.T) {
	cleanEnv(t)
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestMarshalJSONIsConfigShaped(t *testing.T) {
	cleanEnv(t)
	path := writeConfig(t, fullConfig)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	// The JSON form is valid config-file syntax (YAML is a superset of
	// JSON) and loads back to the same configuration.
	again, err := Load(writeConfig(t, string(b)))
	if err != nil {
		t.Fatalf("reloading %s: %v", b, err)
	}
	if *again != *c {
		t.Errorf("round trip:\n got %+v\nwant %+v", *again, *c)
	}
	var m struct {
		TCP map[string]any `json:"tcp"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if got := m.TCP["msl"]; got != "1s" {
		t.Errorf("tcp.msl renders as %v, want \"1s\"", got)
	}
}

func TestLoadDefaults(t *testing.T) {
	cleanEnv(t)
	board := map[string]string{"nic.interface": "eth0", "net.address": "10.0.2.15/24", "net.gateway": "10.0.2.2"}
	c, err := LoadDefaults("", board)
	if err != nil {
		t.Fatal(err)
	}
	if c.NIC.Interface != "eth0" || c.Net.Address != netip.MustParsePrefix("10.0.2.15/24") || c.Net.Gateway != netip.MustParseAddr("10.0.2.2") {
		t.Errorf("board defaults not applied: nic %+v net %+v", c.NIC, c.Net)
	}

	// The file and the environment still win over a board's defaults.
	t.Setenv("SYNFIN_NET_GATEWAY", "10.9.0.1")
	c, err = LoadDefaults(writeConfig(t, "net:\n  address: 10.9.0.2/16\n"), board)
	if err != nil {
		t.Fatal(err)
	}
	if c.NIC.Interface != "eth0" || c.Net.Address != netip.MustParsePrefix("10.9.0.2/16") || c.Net.Gateway != netip.MustParseAddr("10.9.0.1") {
		t.Errorf("file and environment should override board defaults: nic %+v net %+v", c.NIC, c.Net)
	}

	if _, err := LoadDefaults("", map[string]string{"nic.colour": "red"}); err == nil || !strings.Contains(err.Error(), "nic.colour") {
		t.Errorf("LoadDefaults with an unknown key = %v, want it named", err)
	}
}

func TestBoardAuto(t *testing.T) {
	cleanEnv(t)
	c, err := Load(writeConfig(t, "board: auto\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Board != "auto" {
		t.Errorf("board = %q, want auto", c.Board)
	}
}
