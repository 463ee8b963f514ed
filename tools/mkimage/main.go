// Command mkimage builds synfin's boot images from Debian's arm64 kernel and
// the arm64 firmware binary, without root and without loop mounts.
//
// Usage:
//
//	mkimage qemu -firmware FILE -out DIR [flags]   kernel, initramfs and /perm disk for qemu-system-aarch64 -M virt
//	mkimage rpi  -firmware FILE -out DIR [flags]   SD-card image for the Raspberry Pi 3, 4 and 5
//	mkimage perm -out FILE [-config FILE] [-authorized-keys FILE]   a /perm file system on its own
//
// The Debian packages (the kernel, and for the Pi its boot firmware) are
// fetched with apt-get download for arm64 through apt options of the
// build's own (sources list, lists and caches under -cache), from the
// mirror the machine's apt sources name; the machine's apt configuration
// is not touched. Downloads are kept in -cache and reused.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/synfin/synfin/board"
)

func main() {
	if err := runMkimage(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

const usage = `usage: mkimage qemu|rpi -firmware FILE -out DIR [flags]
       mkimage perm -out FILE [-config FILE] [-authorized-keys FILE]`

// options are the flags the subcommands share.
type options struct {
	firmware       string
	out            string
	cache          string
	config         string
	authorizedKeys string
	suite          string
	mirror         string
	permSize       int64
}

func runMkimage(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd := args[0]
	fs := flag.NewFlagSet("mkimage "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.firmware, "firmware", "", "the firmware `binary` (linux/arm64), installed as /init")
	fs.StringVar(&o.out, "out", "", "output `path`: a folder (qemu, rpi) or a file (perm)")
	fs.StringVar(&o.cache, "cache", "images/out/cache", "`folder` for apt's state and the downloaded packages")
	fs.StringVar(&o.config, "config", "", "config `file` placed on /perm as synfin.yaml")
	fs.StringVar(&o.authorizedKeys, "authorized-keys", "", "SSH authorized_keys `file` placed on /perm")
	fs.StringVar(&o.suite, "suite", "trixie", "Debian `suite` to take the kernel from")
	fs.StringVar(&o.mirror, "mirror", "", "Debian mirror `URL` (default: the one the machine's apt sources use)")
	fs.Int64Var(&o.permSize, "perm-size", 64<<20, "size of the /perm file system in `bytes`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n%s", fs.Arg(0), usage)
	}
	if o.out == "" {
		return fmt.Errorf("-out is required\n%s", usage)
	}
	if o.mirror == "" {
		o.mirror = machineMirror("/")
	}
	switch cmd {
	case "qemu":
		return buildQEMU(o, stderr)
	case "rpi":
		return buildRPi(o, stderr)
	case "perm":
		return buildPerm(o, o.out)
	default:
		return fmt.Errorf("unknown image %q\n%s", cmd, usage)
	}
}

// buildPerm writes the /perm ext4 image: the config and the authorized
// keys, when given. The SSH host key is made by the firmware on first boot.
func buildPerm(o options, path string) error {
	dir, err := os.MkdirTemp("", "mkimage-perm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, f := range []struct{ src, name string }{{o.config, "synfin.yaml"}, {o.authorizedKeys, "authorized_keys"}} {
		if f.src == "" {
			continue
		}
		b, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o600); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// The firmware finds /perm by this label.
	return makeExt4(path, dir, strings.TrimPrefix(board.PermLabel, "LABEL="), o.permSize)
}

// kernelInitramfs builds the initramfs for a kernel: the firmware as /init
// and the modules of the named boards with what they depend on.
func kernelInitramfs(o options, k *debianKernel, modules []string, path string, stderr io.Writer) error {
	fw, err := os.ReadFile(o.firmware)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	km, err := indexModules(k.modulesDir)
	if err != nil {
		return err
	}
	order, deps, missing, err := km.closure(modules)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "mkimage: kernel %s lacks modules %s; the boards that need them lose those devices\n", k.version, strings.Join(missing, ", "))
	}
	ir := newInitramfs(fw)
	base := "lib/modules/" + k.version
	for _, name := range order {
		b, err := os.ReadFile(filepath.Join(km.dir, km.files[name]))
		if err != nil {
			return err
		}
		ir.addFile(base+"/"+km.files[name], b, 0o644)
	}
	ir.addFile(base+"/modules.dep", km.modulesDep(order, deps), 0o644)
	builtin, err := os.ReadFile(filepath.Join(km.dir, "modules.builtin"))
	if err != nil {
		return err
	}
	ir.addFile(base+"/modules.builtin", builtin, 0o644)
	fmt.Fprintf(stderr, "mkimage: initramfs with %d modules: %s\n", len(order), strings.Join(order, " "))
	return ir.write(path)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
