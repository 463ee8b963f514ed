package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/firmware/services"
	"github.com/synfin/synfin/mgmt"
	"github.com/synfin/synfin/nic"
	"github.com/synfin/synfin/nic/impair"
	"github.com/synfin/synfin/tcpext"
	"github.com/synfin/synfin/tcpext/stacknet"
)

// nicID is the stack's one NIC.
const nicID tcpip.NICID = 1

// runFirmware brings the firmware up on cfg, prints the ready line to ready,
// and runs until ctx is done; it then tears everything down in reverse.
// shellOpts are added to the management shell's options.
func runFirmware(ctx context.Context, cfg *config.Config, log *slog.Logger, ready io.Writer, shellOpts ...mgmt.Option) error {
	link, err := nic.Open(nic.Config{Interface: cfg.NIC.Interface, Driver: cfg.NIC.Driver, XDPMode: cfg.NIC.XDPMode, MTU: cfg.NIC.MTU})
	if err != nil {
		return err
	}
	for _, n := range link.Notices() {
		log.Warn("nic: "+n, "interface", link.Name())
	}
	log.Info("nic open", "interface", link.Name(), "driver", link.Driver(), "xdp_mode", link.Stats().Mode)
	defer func() {
		if err := link.Close(); err != nil {
			log.Warn("closing the NIC", "err", err)
		}
	}()

	ep := link.Endpoint()
	var impaired *impair.Endpoint
	if imp := cfg.NIC.Impair; imp.Active() {
		// The real clock, as the stack's own: a delay is a delay.
		if impaired, err = impairLink(ep, tcpip.NewStdClock(), imp); err != nil {
			return err
		}
		ep = impaired
		log.Warn("lab mode: the NIC impairs traffic on purpose", "direction", imp.Direction,
			"loss", imp.Loss, "delay", imp.Delay, "jitter", imp.Jitter, "duplicate", imp.Duplicate,
			"corrupt", imp.Corrupt, "rate_bit_s", imp.Rate, "queue_limit", imp.QueueLimit, "seed", imp.Seed)
	}

	ends := newEndLog(log)
	s, err := newStack(cfg, ep, ends.observe)
	if err != nil {
		return err
	}
	defer destroyStack(s)
	if impaired == nil {
		// The impairment delivers frames on its own schedule, outside
		// the driver's batches; only a plain link batches ACKs.
		link.OnReceiveBatch(tcpext.ProtocolOf(s).BatchACKs(nicID))
	}

	// Listeners and connections must be gone before the stack goes.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { ends.run(ctx) })

	for _, svc := range enabledServices(cfg.Services) {
		ln, err := stacknet.ListenTCP(s, tcpip.FullAddress{Port: svc.port}, ipv4.ProtocolNumber)
		if err != nil {
			return fmt.Errorf("service %s: %w", svc.name, err)
		}
		l := log.With("service", svc.name, "port", svc.port)
		relisten := func() (net.Listener, error) {
			return stacknet.ListenTCP(s, tcpip.FullAddress{Port: svc.port}, ipv4.ProtocolNumber)
		}
		wg.Go(func() { serveSupervised(ctx, ln, relisten, svc.handler, l) })
		l.Info("service listening")
	}

	proto := tcpext.ProtocolOf(s)
	shell := mgmt.NewShell(proto, slices.Concat([]mgmt.Option{
		mgmt.WithTCPControl(tcpControl{Protocol: proto, stack: s}),
		mgmt.WithConfig(cfg),
		mgmt.WithInterfaces(func() []mgmt.Interface {
			return []mgmt.Interface{{
				Name:    link.Name(),
				MAC:     link.MAC().String(),
				MTU:     link.MTU(),
				Driver:  link.Driver(),
				Address: cfg.Net.Address.String(),
				Stats:   linkStats{Stats: link.Stats(), Impair: impairStats(impaired)},
			}}
		}),
		mgmt.WithDumps(proto),
		mgmt.WithCapture(linkCapture{link}),
		mgmt.WithLogger(log),
	}, shellOpts)...)
	startSSH(ctx, &wg, cfg.Mgmt.SSH, s, shell, log)
	srv, err := mgmt.Listen(cfg.Mgmt.Socket, shell, log)
	if err != nil {
		return err
	}
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			log.Error("management socket stopped", "err", err)
		}
	})
	log.Info("management socket listening", "path", cfg.Mgmt.Socket)

	// A fixed, greppable line: the lab waits for it.
	fmt.Fprintf(ready, "synfin: ready address=%s nic=%s\n", cfg.Net.Address, link.Name())
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

// linkStats are the counters "show interfaces" shows: the NIC's, and in
// lab mode the impairment's.
type linkStats struct {
	nic.Stats
	Impair *impair.EndpointStats `json:"impair,omitempty"`
}

func impairStats(e *impair.Endpoint) *impair.EndpointStats {
	if e == nil {
		return nil
	}
	st := e.Stats()
	return &st
}

// impairLink wraps ep in the lab mode's impairment (nic.impair), timed by
// clock. Both directions get the same impairment, with seeds one apart so
// that they decide differently.
func impairLink(ep stack.LinkEndpoint, clock tcpip.Clock, c config.Impair) (*impair.Endpoint, error) {
	cfg := impair.Config{
		Seed:       c.Seed,
		Loss:       c.Loss,
		Delay:      c.Delay,
		Jitter:     c.Jitter,
		Duplicate:  c.Duplicate,
		Corrupt:    c.Corrupt,
		Rate:       c.Rate / 8,
		QueueLimit: c.QueueLimit,
	}
	if c.Rate > 0 && cfg.Rate == 0 {
		cfg.Rate = 1 // below a byte per second, but still limited
	}
	var out, in impair.Config
	if c.Direction != "in" {
		out = cfg
	}
	if c.Direction != "out" {
		in = cfg
		in.Seed++
	}
	e, err := impair.NewEndpoint(ep, clock, out, in)
	if err != nil {
		return nil, fmt.Errorf("nic.impair: %w", err)
	}
	return e, nil
}

// newStack assembles the netstack over ep: IPv4 with ARP, UDP, ICMP (the
// IPv4 layer answers pings itself) and tcpext as TCP, with cfg's address, a
// route to its subnet and, if there is a gateway, a default route.
// onTransition, if not nil, is told of every TCB state change.
func newStack(cfg *config.Config, ep stack.LinkEndpoint, onTransition func(tcpext.Transition)) (*stack.Stack, error) {
	opts := tcpOptions(cfg.TCP)
	opts.OnTransition = onTransition
	s := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{
			udp.NewProtocol,
			icmp.NewProtocol4,
			tcpext.NewProtocolFactory(opts),
		},
		// A connection to the firmware's own address (tcp connect to a
		// service, say) stays inside the stack rather than going out on
		// the wire, where nothing would answer.
		HandleLocal: true,
	})
	if terr := s.CreateNIC(nicID, ep); terr != nil {
		destroyStack(s)
		return nil, fmt.Errorf("stack: create NIC: %s", terr)
	}
	addr := tcpip.AddressWithPrefix{
		Address:   tcpip.AddrFrom4(cfg.Net.Address.Addr().As4()),
		PrefixLen: cfg.Net.Address.Bits(),
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: addr}
	if terr := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); terr != nil {
		destroyStack(s)
		return nil, fmt.Errorf("stack: add address %s: %s", cfg.Net.Address, terr)
	}
	routes := []tcpip.Route{{Destination: addr.Subnet(), NIC: nicID}}
	if gw := cfg.Net.Gateway; gw.IsValid() {
		routes = append(routes, tcpip.Route{
			Destination: header.IPv4EmptySubnet,
			Gateway:     tcpip.AddrFrom4(gw.As4()),
			NIC:         nicID,
		})
	}
	s.SetRouteTable(routes)
	return s, nil
}

// destroyStack aborts every endpoint left and stops the stack. It does not
// use Stack.Destroy: that waits for each link endpoint before closing it, but
// nic's endpoint only stops once closed. Removing the NIC closes its link
// endpoint first; the aborts before that still get their RSTs out.
func destroyStack(s *stack.Stack) {
	s.Close()
	s.RemoveNIC(nicID)
	s.Wait()
}

func tcpOptions(t config.TCP) tcpext.Options {
	return tcpext.Options{
		MSL:             t.MSL,
		FinWait2Timeout: t.FinWait2Timeout,
		QuietTime:       t.QuietTime,
		Keepalive: tcpext.KeepaliveOptions{
			Idle:     t.Keepalive.Idle,
			Interval: t.Keepalive.Interval,
			Count:    t.Keepalive.Count,
		},
		CongestionControl: t.CongestionControl,
		MinRTO:            t.RTOMin,
		MaxRTO:            t.RTOMax,
		UserTimeout:       t.UserTimeout,
		DelayedACK:        t.DelayedACK,
		// tcpext reads zero as "the default" and negative as "off".
		RecorderEvents: offIfZero(t.Recorder.Events),
		ClosedTCBs:     offIfZero(t.Recorder.Closed),
	}
}

// offIfZero maps the config's 0 ("off") to tcpext's negative "off".
func offIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

type service struct {
	name    string
	port    uint16
	handler services.Handler
}

func enabledServices(cfg config.Services) []service {
	var list []service
	for _, s := range []struct {
		name string
		cfg  config.Service
		h    services.Handler
	}{
		// Daytime closes at once; the others keep a connection for as
		// long as the client wants, so a vanished client must be noticed.
		{"echo", cfg.Echo, services.KeepAlive(services.Echo)},
		{"discard", cfg.Discard, services.KeepAlive(services.Discard)},
		{"daytime", cfg.Daytime, services.Daytime},
		{"chargen", cfg.Chargen, services.KeepAlive(services.Chargen)},
	} {
		if s.cfg.Enabled() {
			list = append(list, service{s.name, s.cfg.Port, s.h})
		}
	}
	return list
}
