//go:build linux

// Command lab builds and tears down the synfin test lab: the namespaces
// synfin-dut and synfin-peer joined by a veth pair, optionally with the
// firmware running in synfin-dut. It needs root.
//
//	lab up [--firmware PATH] [--config PATH] [--msl DURATION] [--timeout DURATION] [--set KEY=VALUE]...
//	lab down
//	lab exec dut|peer COMMAND [ARG...]
//	lab status
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/tools/lab/labnet"
)

const usage = `usage:
  lab up [--firmware PATH] [--config PATH] [--msl DURATION] [--timeout DURATION] [--set KEY=VALUE]...
        build the lab (after tearing down leftovers); with --firmware, start
        it in synfin-dut and wait until it answers; each --set sets a config
        key for it, e.g. --set nic.impair.loss=1% --set nic.impair.delay=5ms
        (lab mode: the firmware's link loses, delays, reorders, duplicates,
        corrupts or rate-limits packets; see nic.impair in docs/contracts.md)
  lab down
        stop the firmware and remove the lab
  lab exec dut|peer COMMAND [ARG...]
        run COMMAND in a lab namespace
  lab status
        show what of the lab exists
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up":
		err = up(args)
	case "down":
		err = labnet.Down()
	case "exec":
		err = execIn(args)
	case "status":
		err = status()
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "lab: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func up(args []string) error {
	fs := flag.NewFlagSet("lab up", flag.ExitOnError)
	var opts labnet.Options
	fs.StringVar(&opts.FirmwarePath, "firmware", "", "firmware binary to start in "+labnet.DUTNamespace)
	fs.StringVar(&opts.ConfigPath, "config", "", "firmware config (default: write a lab config to "+labnet.ConfigFile+")")
	fs.DurationVar(&opts.MSL, "msl", 0, "tcp.msl in the default config (default 30s)")
	fs.DurationVar(&opts.ReadyTimeout, "timeout", 0, "how long to wait for the firmware to answer (default 20s)")
	fs.Func("set", "set config `KEY=VALUE` for the firmware (repeatable), e.g. nic.impair.loss=1%", func(kv string) error {
		key, value, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", kv)
		}
		// The firmware would ignore the variable of a key it does not
		// know, so a typo must fail here.
		if !slices.Contains(config.Keys(), key) {
			return fmt.Errorf("unknown config key %q", key)
		}
		// Every config key has its environment variable, which wins
		// over the config file.
		opts.Env = append(opts.Env, config.EnvName(key)+"="+value)
		return nil
	})
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("up: unexpected arguments %q", fs.Args())
	}
	if _, err := labnet.Up(opts); err != nil {
		return err
	}
	if opts.FirmwarePath != "" {
		fmt.Printf("lab up: firmware at %s answers; log %s, shell socket %s\n", labnet.DUTAddress, labnet.LogFile, labnet.MgmtSocket)
	} else {
		fmt.Printf("lab up: %s has %s, %s has no address; no firmware started\n", labnet.PeerInterface, labnet.PeerAddress, labnet.DUTInterface)
	}
	return nil
}

// execIn replaces this process with ip netns exec, so that the command
// gets the terminal, signals and exit status directly.
func execIn(args []string) error {
	if len(args) < 2 {
		return errors.New("exec: want a namespace (dut or peer) and a command")
	}
	ns, err := labnet.Namespace(args[0])
	if err != nil {
		return err
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return err
	}
	argv := append([]string{"ip", "netns", "exec", ns}, args[1:]...)
	if err := syscall.Exec(ipPath, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", ipPath, err)
	}
	return nil
}

func status() error {
	st, err := labnet.Inspect()
	for _, ns := range []string{labnet.DUTNamespace, labnet.PeerNamespace} {
		if !st.Namespaces[ns] {
			fmt.Printf("%s: absent\n", ns)
			continue
		}
		fmt.Printf("%s: present\n", ns)
		if out, err := exec.Command("ip", "-n", ns, "-br", "addr").Output(); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				fmt.Printf("  %s\n", line)
			}
		}
	}
	switch {
	case st.FirmwarePID == 0:
		fmt.Println("firmware: not started by lab")
	case st.FirmwareRunning:
		fmt.Printf("firmware: pid %d, running; log %s\n", st.FirmwarePID, labnet.LogFile)
	default:
		fmt.Printf("firmware: pid %d, not running; log %s\n", st.FirmwarePID, labnet.LogFile)
	}
	if st.MgmtSocket {
		fmt.Printf("mgmt socket: %s\n", labnet.MgmtSocket)
	} else {
		fmt.Println("mgmt socket: absent")
	}
	return err
}
