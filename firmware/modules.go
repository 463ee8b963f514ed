package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/synfin/synfin/board"
)

// moduleIndex is a kernel's modules.dep: for each module, by name, its file
// (relative to the modules directory) and the modules it needs.
type moduleIndex map[string]moduleEntry

type moduleEntry struct {
	file string
	deps []string // module names
}

// parseModulesDep reads modules.dep ("kernel/a.ko.xz: kernel/b.ko.xz ...").
func parseModulesDep(r io.Reader) (moduleIndex, error) {
	idx := moduleIndex{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		file, deps, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("modules.dep line %d: no colon", line)
		}
		e := moduleEntry{file: strings.TrimSpace(file)}
		for _, d := range strings.Fields(deps) {
			e.deps = append(e.deps, board.ModuleName(d))
		}
		idx[board.ModuleName(e.file)] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	return idx, nil
}

// loadOrder returns the files to load for the named modules, each module
// after the ones it depends on and each once. Names the index does not
// know are returned in missing.
func (idx moduleIndex) loadOrder(names []string) (files, missing []string) {
	done := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		name = board.ModuleName(name)
		if done[name] {
			return
		}
		done[name] = true
		e, ok := idx[name]
		if !ok {
			missing = append(missing, name)
			return
		}
		for _, d := range e.deps {
			visit(d)
		}
		files = append(files, e.file)
	}
	for _, n := range names {
		visit(n)
	}
	return files, missing
}
