package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// defaultMirror is used when the machine's apt sources name no Debian
// mirror.
const defaultMirror = "http://deb.debian.org/debian"

// apt runs apt-get and apt-cache for arm64 against Debian suite on mirror,
// with every piece of state (sources, lists, caches, dpkg status) in dir,
// so the machine's own apt configuration and state stay untouched.
type apt struct {
	dir    string
	mirror string
	suite  string
}

func (a *apt) options() []string {
	d := a.dir
	return []string{
		"-o", "Dir::Etc::sourcelist=" + filepath.Join(d, "sources.list"),
		"-o", "Dir::Etc::sourceparts=" + filepath.Join(d, "sources.list.d"),
		"-o", "Dir::Etc::preferences=" + filepath.Join(d, "preferences"),
		"-o", "Dir::Etc::preferencesparts=" + filepath.Join(d, "preferences.d"),
		"-o", "Dir::State=" + filepath.Join(d, "state"),
		"-o", "Dir::State::status=" + filepath.Join(d, "status"),
		"-o", "Dir::Cache=" + filepath.Join(d, "cache"),
		"-o", "APT::Architecture=arm64",
		"-o", "APT::Architectures=arm64",
		"-o", "Acquire::Languages=none",
		// Only the package lists are needed, not AppStream metadata.
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		// The download folder belongs to whoever runs the build.
		"-o", "APT::Sandbox::User=root",
	}
}

// prepare writes the private sources list and state folders.
func (a *apt) prepare() error {
	for _, sub := range []string{"sources.list.d", "preferences.d", "state/lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.dir, sub), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(a.dir, "status"), nil, 0o644); err != nil {
		return err
	}
	src := fmt.Sprintf("deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main non-free-firmware\n", a.mirror, a.suite)
	return os.WriteFile(filepath.Join(a.dir, "sources.list"), []byte(src), 0o644)
}

func (a *apt) run(dir, tool string, args ...string) (string, error) {
	cmd := exec.Command(tool, append(a.options(), args...)...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func (a *apt) update() error {
	_, err := a.run(a.dir, "apt-get", "-q", "update")
	return err
}

// dependency returns the first package pkg depends on whose name starts
// with prefix: the versioned kernel package of a metapackage.
func (a *apt) dependency(pkg, prefix string) (string, error) {
	out, err := a.run(a.dir, "apt-cache", "depends", pkg)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(dep, prefix) {
			return dep, nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s: no dependency named %s*", pkg, prefix)
}

// download fetches the .deb of each package into dir.
func (a *apt) download(dir string, pkgs ...string) error {
	_, err := a.run(dir, "apt-get", append([]string{"-q", "download"}, pkgs...)...)
	return err
}

// machineMirror returns the Debian mirror the machine's own apt sources
// use, so the build fetches from where the machine already can.
func machineMirror(root string) string {
	var files []string
	for _, pat := range []string{"etc/apt/sources.list", "etc/apt/sources.list.d/*.list", "etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(filepath.Join(root, pat))
		files = append(files, m...)
	}
	for _, f := range files {
		if m := mirrorIn(f); m != "" {
			return m
		}
	}
	return defaultMirror
}

// mirrorIn finds the first Debian archive URI in a one-line-style or
// deb822-style sources file; security and backports archives do not hold
// the packages needed.
func mirrorIn(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		var uris []string
		switch {
		case len(fields) >= 3 && fields[0] == "deb":
			// deb [options] URI suite components
			for _, w := range fields[1:] {
				if strings.Contains(w, "://") {
					uris = append(uris, w)
					break
				}
			}
		case len(fields) >= 2 && fields[0] == "URIs:":
			uris = fields[1:]
		}
		for _, u := range uris {
			u = strings.TrimRight(u, "/")
			if strings.HasSuffix(u, "/debian") {
				return u
			}
		}
	}
	return ""
}
