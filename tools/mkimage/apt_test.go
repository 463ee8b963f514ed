package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMachineMirror(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "etc/apt/sources.list.d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := machineMirror(root); got != defaultMirror {
		t.Errorf("no sources: mirror %q, want the default", got)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/apt/sources.list.d/debian.sources", `Types: deb
URIs: http://mirror.example/debian-security
Suites: trixie-security

Types: deb
URIs: http://mirror.example/debian/
Suites: trixie
`)
	if got := machineMirror(root); got != "http://mirror.example/debian" {
		t.Errorf("deb822: mirror %q", got)
	}
	write("etc/apt/sources.list", "# comment\ndeb [signed-by=/k.gpg] https://other.example/debian bookworm main\n")
	if got := machineMirror(root); got != "https://other.example/debian" {
		t.Errorf("one-line style: mirror %q", got)
	}
}

func TestAptOptionsStayPrivate(t *testing.T) {
	a := &apt{dir: "/b/apt"}
	opts := a.options()
	for _, want := range []string{"Dir::State=/b/apt/state", "Dir::Etc::sourcelist=/b/apt/sources.list", "Dir::Cache=/b/apt/cache", "APT::Architecture=arm64", "Dir::State::status=/b/apt/status"} {
		if !slices.Contains(opts, want) {
			t.Errorf("apt options lack %s: %v", want, opts)
		}
	}
}
