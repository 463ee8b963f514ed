package main

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/synfin/synfin/board"
)

// loadModules loads the named kernel modules and what they depend on, as
// modules.dep in the modules directory lists them. Modules the kernel has
// built in are skipped; failures are logged and the rest still loaded, so
// that a missing driver costs its device and not the boot.
func loadModules(log *slog.Logger, names []string) {
	if len(names) == 0 {
		return
	}
	dir := modulesDir()
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		log.Error("kernel modules", "err", err)
		return
	}
	idx, err := parseModulesDep(f)
	f.Close()
	if err != nil {
		log.Error("kernel modules", "err", err)
		return
	}
	files, missing := idx.loadOrder(names)
	builtin := builtinModules(dir)
	for _, m := range missing {
		if !builtin[m] {
			log.Warn("kernel module not found", "module", m)
		}
	}
	for _, file := range files {
		if err := loadModule(filepath.Join(dir, file)); err != nil {
			log.Error("kernel module", "module", board.ModuleName(file), "err", err)
			continue
		}
		log.Debug("kernel module loaded", "module", board.ModuleName(file))
	}
}

// loadModule hands one module file to the kernel. A compressed module is
// decompressed by the kernel itself (CONFIG_MODULE_DECOMPRESS).
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// builtinModules reads modules.builtin: the module names compiled into the
// kernel.
func builtinModules(dir string) map[string]bool {
	m := map[string]bool{}
	f, err := os.Open(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			m[board.ModuleName(line)] = true
		}
	}
	return m
}
