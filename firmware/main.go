// Command firmware is synfin's firmware: gVisor's netstack with tcpext as its
// TCP, driving a NIC of its own, offering the classic test services and a
// management shell.
//
// Usage:
//
//	firmware [--config FILE]
//	firmware shell [--socket PATH] [-c COMMAND]
//
// The first form runs the firmware in the foreground, in the current network
// namespace, until SIGINT or SIGTERM. Without --config it runs on defaults and
// SYNFIN_* environment variables alone.
//
// Started by the kernel as PID 1 (the /init of the boot images), it is the
// machine's init as well: it mounts the API file systems, loads the board's
// kernel modules, mounts /perm, reads its config from /perm/synfin.yaml,
// supervises the firmware, offers the shell on the console and handles
// reboot and power-off; see board/README.md.
//
// The second is the client of a running firmware's management socket. With -c
// it runs one command, prints its output and exits with the command's status
// (0 ok, 1 failed, 2 usage error); without, it reads commands from stdin
// after a "synfin> " prompt until EOF or "exit". It exits 255 if it cannot
// talk to the firmware at all. The socket defaults to $SYNFIN_MGMT_SOCKET,
// else /run/synfin/mgmt.sock.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/synfin/synfin/firmware/config"
	"github.com/synfin/synfin/mgmt"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitNoConnection follows ssh: the shell could not reach the firmware.
	exitNoConnection = 255
)

const defaultSocket = "/run/synfin/mgmt.sock"

func main() {
	if os.Getpid() == 1 {
		runInit() // never returns
	}
	os.Exit(runCLI(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func runCLI(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "shell" {
		return runShell(args[1:], stdin, stdout, stderr)
	}
	return runMain(args, stderr)
}

func runMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("firmware", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: firmware [--config FILE]\n       firmware shell [--socket PATH] [-c COMMAND]")
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "YAML config `file` (keys can also be set by SYNFIN_* variables)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "firmware: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A second signal during shutdown gets the default action, so a stuck
	// shutdown can still be interrupted.
	context.AfterFunc(ctx, stop)

	if err := runFirmware(ctx, cfg, log, stderr); err != nil {
		log.Error("firmware failed", "err", err)
		return exitError
	}
	return exitOK
}

func runShell(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("firmware shell", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := defaultSocket
	if env, ok := os.LookupEnv(config.EnvName("mgmt.socket")); ok && env != "" {
		socket = env
	}
	fs.StringVar(&socket, "socket", socket, "management socket `path`")
	command := fs.String("c", "", "run this one `command` and exit with its status")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "firmware shell: unexpected argument %q (quote the command given to -c)\n", fs.Arg(0))
		return exitUsage
	}
	oneShot := false
	fs.Visit(func(f *flag.Flag) { oneShot = oneShot || f.Name == "c" })

	if oneShot {
		status, err := mgmt.RunCommand(socket, *command, stdout)
		if err != nil {
			fmt.Fprintln(stderr, "firmware shell:", err)
			return exitNoConnection
		}
		return status
	}
	if err := shellSession(socket, stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "firmware shell:", err)
		return exitNoConnection
	}
	return exitOK
}

// interactive runs commands read from stdin over one connection until EOF
// or "exit".
func interactive(socket string, stdin io.Reader, stdout io.Writer) error {
	c, err := mgmt.Dial(socket)
	if err != nil {
		return err
	}
	defer c.Close()
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 4096), mgmt.MaxLineLen)
	for {
		fmt.Fprint(stdout, "synfin> ")
		if !sc.Scan() {
			fmt.Fprintln(stdout)
			if err := sc.Err(); err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			return nil
		}
		line := strings.TrimSpace(sc.Text())
		if line == "exit" {
			return nil
		}
		if line == "" {
			continue
		}
		if _, err := c.Run(line, stdout); err != nil {
			return err
		}
	}
}
