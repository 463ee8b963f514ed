package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/mgmt"
	"github.com/synfin/synfin/tcpext/stacknet"
)

// startSSH starts the management SSH server on the firmware's own stack, so
// every management session runs over tcpext, unless mgmt.ssh.port is 0. A
// box whose host key cannot be read or created still runs: SSH is then
// off, and the log says why; the local socket and the console remain.
func startSSH(ctx context.Context, wg *sync.WaitGroup, cfg config.SSH, s *stack.Stack, shell *mgmt.Shell, log *slog.Logger) {
	if cfg.Port == 0 {
		log.Info("ssh: off (mgmt.ssh.port is 0)")
		return
	}
	srv, err := mgmt.NewSSHServer(shell, mgmt.SSHConfig{
		HostKey:        cfg.HostKey,
		AuthorizedKeys: cfg.AuthorizedKeys,
		PasswordHash:   cfg.PasswordHash,
		IdleTimeout:    cfg.IdleTimeout,
		Log:            log,
	})
	if err != nil {
		log.Error("ssh: not started: no usable host key (mgmt.ssh.host_key)", "err", err)
		return
	}
	ln, err := stacknet.ListenTCP(s, tcpip.FullAddress{Port: cfg.Port}, ipv4.ProtocolNumber)
	if err != nil {
		log.Error("ssh: not started", "err", fmt.Errorf("listen on port %d: %w", cfg.Port, err))
		return
	}
	wg.Go(func() {
		if err := srv.Serve(ctx, ln); err != nil {
			log.Error("ssh: server stopped", "err", err)
		}
	})
	log.Info("ssh: listening", "port", cfg.Port, "host_key", cfg.HostKey, "authorized_keys", cfg.AuthorizedKeys,
		"passwords", cfg.PasswordHash != "")
}
