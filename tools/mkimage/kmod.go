package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/synfin/synfin/board"
)

// kernelModules indexes a kernel's module tree (/usr/lib/modules/VERSION):
// module name to file, relative to the tree.
type kernelModules struct {
	dir     string
	files   map[string]string
	builtin map[string]bool
}

func indexModules(dir string) (*kernelModules, error) {
	km := &kernelModules{dir: dir, files: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			rel, _ := filepath.Rel(dir, path)
			km.files[board.ModuleName(rel)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("index modules: %w", err)
	}
	for _, line := range strings.Fields(string(b)) {
		km.builtin[board.ModuleName(line)] = true
	}
	return km, nil
}

// closure returns the named modules and all they depend on, each module
// after its dependencies, with each module's dependencies. Built-in
// modules are left out; names that are neither built in nor in the tree
// are returned in missing.
func (km *kernelModules) closure(names []string) (order []string, deps map[string][]string, missing []string, err error) {
	deps = map[string][]string{}
	var visit func(name string) error
	visit = func(name string) error {
		name = board.ModuleName(name)
		if _, done := deps[name]; done || km.builtin[name] {
			return nil
		}
		file, ok := km.files[name]
		if !ok {
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
			return nil
		}
		d, err := moduleDepends(filepath.Join(km.dir, file))
		if err != nil {
			return err
		}
		deps[name] = d
		for _, dep := range d {
			if err := visit(dep); err != nil {
				return err
			}
		}
		order = append(order, name)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, nil, nil, err
		}
	}
	return order, deps, missing, nil
}

// modulesDep renders modules.dep for the modules in order: each line lists
// a module's file and the files of everything it needs, directly or not.
func (km *kernelModules) modulesDep(order []string, deps map[string][]string) []byte {
	var buf bytes.Buffer
	for _, name := range order {
		var all []string
		var walk func(n string)
		walk = func(n string) {
			for _, d := range deps[n] {
				if f, ok := km.files[d]; ok && !slices.Contains(all, f) {
					all = append(all, f)
					walk(d)
				}
			}
		}
		walk(name)
		fmt.Fprintf(&buf, "%s:", km.files[name])
		for _, f := range all {
			fmt.Fprintf(&buf, " %s", f)
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// moduleDepends reads the "depends=" entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	raw, err := readModule(path)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: .modinfo: %w", path, err)
	}
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// readModule reads a module file, decompressing .xz and .gz.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		if r, err = xz.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case strings.HasSuffix(path, ".gz"):
		if r, err = gzip.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case strings.HasSuffix(path, ".zst"):
		return nil, fmt.Errorf("%s: zstd modules are not supported", path)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
