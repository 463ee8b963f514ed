package mgmt

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/synfin/synfin/tcpext"
)

// ServeSFTP serves the flight recorder's dumps as a read-only SFTP file
// system on rwc (an SSH channel) until the client ends the session:
//
//	/tcb/ID.json   tcb dump ID
//	/tcb/ID.pcap   tcb dump ID --pcap
//	/tcb/all.json  tcb dump all
//	/tcb/all.pcap  tcb dump all --pcap
//
// A file's content is taken when it is opened or looked at. ServeSFTP
// leaves rwc open, so an SSH session can still send its exit status.
func (s *Shell) ServeSFTP(rwc io.ReadWriteCloser) error {
	d := dumpFS{s}
	srv := sftp.NewRequestServer(rwc, sftp.Handlers{FileGet: d, FilePut: d, FileCmd: d, FileList: d})
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// dumpFS is the SFTP file system of dumps.
type dumpFS struct{ shell *Shell }

// dumpDir is the directory of the dump files.
const dumpDir = "/tcb"

// errReadOnly refuses every change to the file system.
var errReadOnly = sftp.ErrSSHFxPermissionDenied

func (d dumpFS) Filewrite(*sftp.Request) (io.WriterAt, error) { return nil, errReadOnly }
func (d dumpFS) Filecmd(*sftp.Request) error                  { return errReadOnly }

func (d dumpFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	b, _, err := d.file(r.Filepath)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

func (d dumpFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	p := path.Clean("/" + r.Filepath)
	switch r.Method {
	case "List":
		switch p {
		case "/":
			return listerAt{dirInfo("tcb")}, nil
		case dumpDir:
			return d.list()
		}
		if _, _, err := d.file(p); err != nil {
			return nil, err
		}
		return nil, sftp.ErrSSHFxFailure // not a directory
	case "Stat", "Lstat":
		switch p {
		case "/":
			return listerAt{dirInfo("/")}, nil
		case dumpDir:
			return listerAt{dirInfo("tcb")}, nil
		}
		b, mod, err := d.file(p)
		if err != nil {
			return nil, err
		}
		return listerAt{fileInfo{name: path.Base(p), size: int64(len(b)), mod: mod}}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// list is the directory of dump files, with their sizes.
func (d dumpFS) list() (sftp.ListerAt, error) {
	if d.shell.dumps == nil {
		return listerAt{}, nil
	}
	dumps := d.shell.dumps.Dumps()
	var l listerAt
	add := func(name string, dumps []tcpext.TCBDump, all, pcap bool, mod time.Time) error {
		b, err := dumpFile(dumps, all, pcap)
		if err != nil {
			return err
		}
		l = append(l, fileInfo{name: name, size: int64(len(b)), mod: mod})
		return nil
	}
	now := time.Now()
	for _, pcap := range []bool{false, true} {
		if err := add("all"+ext(pcap), dumps, true, pcap, now); err != nil {
			return nil, err
		}
	}
	for _, dump := range dumps {
		for _, pcap := range []bool{false, true} {
			name := strconv.FormatUint(dump.TCB.ID, 10) + ext(pcap)
			if err := add(name, []tcpext.TCBDump{dump}, false, pcap, dumpTime(dump)); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

func ext(pcap bool) string {
	if pcap {
		return ".pcap"
	}
	return ".json"
}

// file renders the dump file at p and tells when it last changed.
func (d dumpFS) file(p string) ([]byte, time.Time, error) {
	dir, name := path.Split(path.Clean("/" + p))
	if dir != dumpDir+"/" {
		return nil, time.Time{}, os.ErrNotExist
	}
	var pcap bool
	switch {
	case strings.HasSuffix(name, ".json"):
	case strings.HasSuffix(name, ".pcap"):
		pcap = true
	default:
		return nil, time.Time{}, os.ErrNotExist
	}
	base := strings.TrimSuffix(name, ext(pcap))
	if d.shell.dumps == nil {
		return nil, time.Time{}, os.ErrNotExist
	}
	if base == "all" {
		b, err := dumpFile(d.shell.dumps.Dumps(), true, pcap)
		return b, time.Now(), err
	}
	id, err := strconv.ParseUint(base, 10, 64)
	if err != nil {
		return nil, time.Time{}, os.ErrNotExist
	}
	dump, ok := d.shell.dumps.Dump(id)
	if !ok {
		return nil, time.Time{}, os.ErrNotExist
	}
	b, err := dumpFile([]tcpext.TCBDump{dump}, false, pcap)
	return b, dumpTime(dump), err
}

// listerAt serves a fixed list of entries.
type listerAt []os.FileInfo

func (l listerAt) ListAt(f []os.FileInfo, offset int64) (int, error) {
	if offset >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(f, l[offset:])
	if n < len(f) {
		return n, io.EOF
	}
	return n, nil
}

// fileInfo describes a read-only file, or a directory.
type fileInfo struct {
	name string
	size int64
	mod  time.Time
	dir  bool
}

func dirInfo(name string) fileInfo { return fileInfo{name: name, mod: time.Now(), dir: true} }

func (f fileInfo) Name() string       { return f.name }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) ModTime() time.Time { return f.mod }
func (f fileInfo) IsDir() bool        { return f.dir }
func (f fileInfo) Sys() any           { return nil }

func (f fileInfo) Mode() fs.FileMode {
	if f.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
