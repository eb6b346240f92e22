//go:build linux

package file

// These tests provoke the file system's errors for real, and check messages
// that hold Linux's texts of the errnos.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/route"
)

// TestPermanentOS: the os package's answers for names Linux refuses are
// permanent; a missing file is not.
func TestPermanentOS(t *testing.T) {
	_, nul := os.Open("out/a\x00b")
	_, long := os.Open(strings.Repeat("n", 300))
	_, tooLong := os.Open(strings.Repeat("d/", 2100) + "x")
	_, missing := os.Open(filepath.Join(t.TempDir(), "missing"))
	for _, c := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"a NUL byte", nul, true},
		{"a name over 255 bytes", long, true},
		{"a path over 4096 bytes", tooLong, true},
		{"a missing file", missing, false},
	} {
		if got := permanent(c.err); got != c.permanent {
			t.Errorf("%s: permanent(%v) = %v, want %v", c.name, c.err, got, c.permanent)
		}
	}
}

// TestErrorMessages: an error that is retried names the path, what failed
// and what to do, and says that cdc retries; one that rejects an event says
// the path is refused for good.
func TestErrorMessages(t *testing.T) {
	const file = "out/acme/x.jsonl"
	pe := func(errno syscall.Errno) error { return &fs.PathError{Op: "open", Path: file, Err: errno} }
	tests := []struct {
		name string
		err  *fsError
		want string
	}{
		{"create, permission denied", pathError(opCreate, file, pe(syscall.EACCES)),
			"file sink: out/acme/x.jsonl: create: permission denied: fix the permissions of out/acme: cdc's user must be able to create files in it; cdc retries"},
		{"mkdir, permission denied", pathError(opMkdir, "out/acme", pe(syscall.EACCES)),
			"file sink: out/acme: create directory: permission denied: fix the permissions of out: cdc's user must be able to create directories in it; cdc retries"},
		{"read-only file", pathError(opOpen, file, pe(syscall.EACCES)),
			"file sink: out/acme/x.jsonl: open for append: permission denied: fix the permissions of out/acme/x.jsonl: cdc's user must be able to append to it; cdc retries"},
		{"unreadable file", pathError(opReadEnd, file, pe(syscall.EACCES)),
			"fix the permissions of out/acme/x.jsonl: cdc's user must be able to read it; cdc retries"},
		{"search permission", pathError(opLookup, "out/acme", pe(syscall.EACCES)),
			"fix the permissions of out/acme: cdc's user must be able to search the directories above it; cdc retries"},
		{"immutable", pathError(opCreate, file, pe(syscall.EPERM)),
			"create: operation not permitted: fix the permissions of out/acme: cdc's user must be able to create files in it (an immutable attribute also refuses it: lsattr, chattr -i); cdc retries"},
		{"read-only file system", pathError(opCreate, file, pe(syscall.EROFS)),
			"file sink: out/acme/x.jsonl: create: read-only file system: the file system holding out/acme/x.jsonl is mounted read-only: remount it read-write or change the sink's path; cdc retries"},
		{"disk full", ioError("append 10 bytes", file, pe(syscall.ENOSPC)),
			"file sink: out/acme/x.jsonl: append 10 bytes: no space left on device: the file system holding out/acme/x.jsonl is full (no space or no inodes left): free some space; cdc retries"},
		{"quota", ioError("append 10 bytes", file, pe(syscall.EDQUOT)),
			"disk quota exceeded: cdc's user has used up its disk quota on the file system holding out/acme/x.jsonl: raise the quota or free some space; cdc retries"},
		{"file too large", ioError("append 10 bytes", file, pe(syscall.EFBIG)),
			"file too large: out/acme/x.jsonl has reached the largest file size allowed (by the file system or cdc's ulimit -f): move it away or raise the limit; cdc retries"},
		{"I/O error", ioError("fsync", file, pe(syscall.EIO)),
			"file sink: out/acme/x.jsonl: fsync: input/output error: the storage under out/acme/x.jsonl failed: check it (dmesg, the disk, the network file system); cdc retries"},
		{"too many open files", pathError(opOpen, file, pe(syscall.EMFILE)),
			"too many open files: cdc has too many files open: raise its limit (ulimit -n, systemd's LimitNOFILE); cdc retries"},
		{"system open files", pathError(opOpen, file, pe(syscall.ENFILE)),
			"too many open files in system: the system has too many files open: raise fs.file-max or close files elsewhere; cdc retries"},
		{"configured path is a directory", pathError(opOpen, "all.jsonl", pe(syscall.EISDIR)),
			"file sink: all.jsonl: open for append: is a directory: all.jsonl is a directory: move it away or change the sink's path; cdc retries"},
		{"configured directory is a file", pathError(opOpen, file, pe(syscall.ENOTDIR)),
			"not a directory: a component of out/acme/x.jsonl is not a directory: move it away or change the sink's path; cdc retries"},
		{"configured path loops", pathError(opOpen, file, pe(syscall.ELOOP)),
			"too many levels of symbolic links: a symbolic link on the path loops: fix the link or change the sink's path; cdc retries"},
		{"unknown", pathError(opOpen, file, pe(syscall.ESTALE)),
			"file sink: out/acme/x.jsonl: open for append: stale file handle; cdc retries"},
		{"not an errno", ioError("close", file, errors.New("it broke")),
			"file sink: out/acme/x.jsonl: close: it broke; cdc retries"},
		{"refused", &fsError{op: opCreate, path: "out/acme/" + strings.Repeat("n", 8), err: pe(syscall.ENAMETOOLONG), lookup: true, refused: true},
			"file sink: out/acme/nnnnnnnn: create: file name too long: the file system refuses this path for good"},
		{"unprintable path", pathError(opCreate, "out/a\nb", pe(syscall.EACCES)),
			`file sink: "out/a\nb": create: permission denied: fix the permissions of out:`},
		// 412 bytes: the first 200 and the last 100 are shown.
		{"long path", pathError(opCreate, "out/"+strings.Repeat("é", 200)+"/x.jsonl", pe(syscall.ENAMETOOLONG)),
			"file sink: out/" + strings.Repeat("é", 98) + "[112 bytes left out]" + strings.Repeat("é", 46) + "/x.jsonl: create: file name too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message\n%s\ndoes not hold\n%s", msg, tt.want)
			}
			if tt.err.refused == strings.HasSuffix(msg, "; cdc retries") {
				t.Errorf("refused %v, message %s", tt.err.refused, msg)
			}
			var errno syscall.Errno
			if tt.name != "not an errno" && !errors.As(tt.err, &errno) {
				t.Errorf("%v does not unwrap to its errno", tt.err)
			}
		})
	}
}

// TestWriteRefused: an event whose path the file system refuses for good
// (provoked for real) is rejected at its index with the errno in the
// error's chain; the events before it are in their files and synced, its
// own line and those after it are nowhere; and the sink goes on with the
// events after it, as the pipeline does with on_error: dead_letter. Each
// case runs with files kept open and with MaxOpen 1, where the files of the
// events before the rejected one are closed and opened again.
func TestWriteRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // in the sink's directory, before the batch
		bad   *cdc.Event                     // at index 2; paths are out/{{.TenantID}}/{{.Type}}.jsonl
		errno syscall.Errno                  // in the error's chain; 0 when refused before the file system
		want  string                         // in the error
	}{
		{"name over 255 bytes", nil, ev("bad", "acme", strings.Repeat("n", 300)),
			syscall.ENAMETOOLONG, "open for append: file name too long: the file system refuses this path for good"},
		{"directory name over 255 bytes", nil, ev("bad", "acme", "new/"+strings.Repeat("n", 300)+"/x"),
			syscall.ENAMETOOLONG, "create directory: file name too long: the file system refuses this path for good"},
		// The template allows names up to 4096 bytes; the sink directory makes
		// the path longer than Linux allows.
		{"path over 4096 bytes", nil, ev("bad", "acme", strings.Repeat("d/", 2035)+"x"),
			syscall.ENAMETOOLONG, "file name too long: the file system refuses this path for good"},
		{"parent is a file the batch wrote", nil, ev("bad", "acme", "good.jsonl/x"),
			syscall.ENOTDIR, "/out/acme/good.jsonl/x.jsonl: open for append: not a directory: the file system refuses this path for good"},
		{"parent is an existing file", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "out", "acme", "f"), "", 0o644)
		}, ev("bad", "acme", "f/g/x"), syscall.ENOTDIR, "not a directory: the file system refuses this path for good"},
		{"tenant directory is a file", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "out", "globex"), "", 0o644)
		}, ev("bad", "globex", "x"), syscall.ENOTDIR, "/out/globex/x.jsonl: open for append: not a directory"},
		{"path is a directory", func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "out", "acme", "d.jsonl"))
		}, ev("bad", "acme", "d"), syscall.EISDIR, "/out/acme/d.jsonl: open for append: is a directory: the file system refuses this path for good"},
		{"symbolic link loop", func(t *testing.T, dir string) {
			symlink(t, "loop.jsonl", filepath.Join(dir, "out", "acme", "loop.jsonl"))
		}, ev("bad", "acme", "loop"), syscall.ELOOP, "too many levels of symbolic links: the file system refuses this path for good"},
		{"symbolic link loop on the way", func(t *testing.T, dir string) {
			symlink(t, "dl", filepath.Join(dir, "out", "acme", "dl"))
		}, ev("bad", "acme", "dl/x"), syscall.ELOOP, "too many levels of symbolic links: the file system refuses this path for good"},
		// A NUL byte never reaches the file system (it would answer EINVAL):
		// resolve refuses it first, with the same outcome.
		{"NUL byte", nil, ev("bad", "acme", "x\x00y"), 0, "holds a NUL byte"},
	}
	for _, tt := range tests {
		for _, maxOpen := range []int{DefaultMaxOpen, 1} {
			t.Run(fmt.Sprintf("%s/max_open_%d", tt.name, maxOpen), func(t *testing.T) {
				dir := t.TempDir()
				if tt.setup != nil {
					tt.setup(t, dir)
				}
				before := regularFiles(t, dir)
				s, err := New(Config{Path: route.MustParse("out/{{.TenantID}}/{{.Type}}.jsonl"), Dir: dir, MaxOpen: maxOpen})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close(context.Background())
				e := []*cdc.Event{ev("1", "acme", "good"), ev("2", "acme", "other"), tt.bad, ev("3", "acme", "good")}

				err = s.Write(context.Background(), cdc.Batch{Events: e})
				var re *cdc.RejectedError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want a *cdc.RejectedError", err)
				}
				if re.Index != 2 {
					t.Errorf("rejected index %d, want 2: %v", re.Index, err)
				}
				if tt.errno != 0 && !errors.Is(err, tt.errno) {
					t.Errorf("err = %v, want %s (%d) in its chain", err, tt.errno, int(tt.errno))
				}
				if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "event bad") {
					t.Errorf("err = %v, want it to name event bad and hold %q", err, tt.want)
				}
				// The events before it are durable: read back, their files
				// and directories synced.
				want := maps.Clone(before)
				want["out/acme/good.jsonl"] = lines(e[0])
				want["out/acme/other.jsonl"] = lines(e[1])
				equalFiles(t, regularFiles(t, dir), want)
				for _, h := range s.files {
					if h.dirty {
						t.Errorf("%s not synced", h.path)
					}
				}
				if len(s.dirs) != 0 {
					t.Errorf("directories not synced: %v", s.dirs)
				}

				if err := s.Write(context.Background(), cdc.Batch{Events: e[3:]}); err != nil {
					t.Fatalf("the events after the rejected one: %v", err)
				}
				want["out/acme/good.jsonl"] = lines(e[0], e[3])
				equalFiles(t, regularFiles(t, dir), want)
			})
		}
	}
}

// TestWriteRefusedFirst: a first event refused by the file system writes
// nothing, also when its path is refused before the sink creates the base
// directory (a path over 4096 bytes).
func TestWriteRefusedFirst(t *testing.T) {
	for _, typ := range []string{strings.Repeat("n", 256), strings.Repeat("d/", 2035) + "x"} {
		dir := t.TempDir()
		s := newSink(t, "out/{{.TenantID}}/{{.Type}}.jsonl", dir)
		err := s.Write(context.Background(), cdc.Batch{Events: []*cdc.Event{ev("1", "acme", typ), ev("2", "acme", "x")}})
		var re *cdc.RejectedError
		if !errors.As(err, &re) || re.Index != 0 || !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Fatalf("type of %d bytes: err = %v, want rejection of event 0 for ENAMETOOLONG", len(typ), err)
		}
		if got := regularFiles(t, dir); len(got) != 0 {
			t.Errorf("type of %d bytes: files written: %v", len(typ), got)
		}
	}
}

// TestWriteRetried: failures an operator can fix (provoked for real) are
// plain errors whose message names the path, what failed and what to do; a
// second Write fails alike, and once the cause is fixed the batch goes
// through. So are the permanent errnos when the configured part of the path
// is at fault (the base directory, a constant path), which every event
// would meet.
func TestWriteRetried(t *testing.T) {
	tests := []struct {
		name     string
		template string
		// setup breaks the sink's directory and returns what fixes it, or
		// nil when only a new configuration would.
		setup func(t *testing.T, dir string) (fix func())
		// unprivileged marks the cases that need permission checks, which
		// root bypasses: as root they run in a child process as nobody.
		unprivileged bool
		errno        syscall.Errno
		file         string   // where the events land once fixed
		want         []string // in the message, with DIR for the sink's directory
	}{
		{"read-only directory", "out/{{.TenantID}}/{{.Type}}.jsonl", func(t *testing.T, dir string) func() {
			return chmod(t, filepath.Join(dir, "out", "acme"), 0o500)
		}, true, syscall.EACCES, "out/acme/x.jsonl", []string{
			"file sink: DIR/out/acme/x.jsonl: create: permission denied: fix the permissions of DIR/out/acme: cdc's user must be able to create files in it; cdc retries"}},
		{"read-only directory above", "out/{{.TenantID}}/{{.Type}}.jsonl", func(t *testing.T, dir string) func() {
			return chmod(t, filepath.Join(dir, "out"), 0o500)
		}, true, syscall.EACCES, "out/acme/x.jsonl", []string{
			"file sink: DIR/out/acme: create directory: permission denied: fix the permissions of DIR/out: cdc's user must be able to create directories in it; cdc retries"}},
		{"read-only file", "out/{{.TenantID}}/{{.Type}}.jsonl", func(t *testing.T, dir string) func() {
			writeFile(t, filepath.Join(dir, "out", "acme", "x.jsonl"), "", 0o644)
			return chmod(t, filepath.Join(dir, "out", "acme", "x.jsonl"), 0o400)
		}, true, syscall.EACCES, "out/acme/x.jsonl", []string{
			"file sink: DIR/out/acme/x.jsonl: open for append: permission denied: fix the permissions of DIR/out/acme/x.jsonl: cdc's user must be able to append to it; cdc retries"}},
		{"immutable directory", "out/{{.TenantID}}/{{.Type}}.jsonl", func(t *testing.T, dir string) func() {
			return immutable(t, filepath.Join(dir, "out", "acme"))
		}, false, syscall.EPERM, "out/acme/x.jsonl", []string{
			"file sink: DIR/out/acme/x.jsonl: create: operation not permitted: fix the permissions of DIR/out/acme: cdc's user must be able to create files in it (an immutable attribute also refuses it: lsattr, chattr -i); cdc retries"}},
		{"disk full", "out/{{.TenantID}}/{{.Type}}.jsonl", func(t *testing.T, dir string) func() {
			// Writes to /dev/full fail with ENOSPC.
			if fi, err := os.Stat("/dev/full"); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
				t.Skipf("no /dev/full to fill the disk with: %v", err)
			}
			link := filepath.Join(dir, "out", "acme", "x.jsonl")
			mkdir(t, filepath.Dir(link))
			symlink(t, "/dev/full", link)
			return func() { remove(t, link) }
		}, false, syscall.ENOSPC, "out/acme/x.jsonl", []string{
			"file sink: DIR/out/acme/x.jsonl: append ",
			" bytes: no space left on device: the file system holding DIR/out/acme/x.jsonl is full (no space or no inodes left): free some space; cdc retries"}},
		{"base is a file", "out/{{.TenantID}}/{{.Type}}.jsonl", func(t *testing.T, dir string) func() {
			writeFile(t, filepath.Join(dir, "out"), "", 0o644)
			return func() { remove(t, filepath.Join(dir, "out")) }
		}, false, syscall.ENOTDIR, "out/acme/x.jsonl", []string{
			"file sink: DIR/out/acme/x.jsonl: open for append: not a directory: a component of DIR/out/acme/x.jsonl is not a directory: move it away or change the sink's path; cdc retries"}},
		{"base is a symbolic link loop", "out/{{.TenantID}}/{{.Type}}.jsonl", func(t *testing.T, dir string) func() {
			symlink(t, "out", filepath.Join(dir, "out"))
			return func() { remove(t, filepath.Join(dir, "out")) }
		}, false, syscall.ELOOP, "out/acme/x.jsonl", []string{
			"file sink: DIR/out/acme/x.jsonl: open for append: too many levels of symbolic links: a symbolic link on the path loops: fix the link or change the sink's path; cdc retries"}},
		{"constant path is a directory", "all.jsonl", func(t *testing.T, dir string) func() {
			mkdir(t, filepath.Join(dir, "all.jsonl"))
			return func() { remove(t, filepath.Join(dir, "all.jsonl")) }
		}, false, syscall.EISDIR, "all.jsonl", []string{
			"file sink: DIR/all.jsonl: open for append: is a directory: DIR/all.jsonl is a directory: move it away or change the sink's path; cdc retries"}},
		{"constant path too long", "archive/" + strings.Repeat("n", 256) + ".jsonl", func(t *testing.T, dir string) func() {
			return nil
		}, false, syscall.ENAMETOOLONG, "", []string{
			": file name too long: the path is too long for the file system: change the sink's path; cdc retries"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unprivileged && os.Geteuid() == 0 {
				runUnprivileged(t)
				return
			}
			dir := t.TempDir()
			fix := tt.setup(t, dir)
			s := newSink(t, tt.template, dir)
			e := []*cdc.Event{ev("1", "acme", "x"), ev("2", "acme", "x")}
			for try := range 2 {
				err := s.Write(context.Background(), cdc.Batch{Events: e})
				var re *cdc.RejectedError
				if err == nil || errors.As(err, &re) {
					t.Fatalf("try %d: err = %v, want a plain error", try, err)
				}
				if !errors.Is(err, tt.errno) {
					t.Errorf("try %d: err = %v, want %s (%d) in its chain", try, err, tt.errno, int(tt.errno))
				}
				for _, w := range tt.want {
					if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(err.Error(), w) {
						t.Errorf("try %d: message\n%s\ndoes not hold\n%s", try, err, w)
					}
				}
			}
			if fix == nil {
				return
			}
			fix()
			if err := s.Write(context.Background(), cdc.Batch{Events: e}); err != nil {
				t.Fatalf("after the fix: %v", err)
			}
			data, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil || string(data) != lines(e...) {
				t.Errorf("%s = %q, %v; want the batch once", tt.file, data, err)
			}
		})
	}
}

// childEnv is set in the environment of a test run again as nobody.
const childEnv = "CDC_FILE_TEST_UNPRIVILEGED"

// nobody is the user and group id a test runs as in place of root.
const nobody = 65534

// runUnprivileged runs the calling test again in a child process as the
// user nobody, for a case that needs permission checks, which root
// bypasses. The test fails with the child's output when the child fails or
// does not run it, and is skipped when this process cannot switch users.
func runUnprivileged(t *testing.T) {
	t.Helper()
	if os.Getenv(childEnv) != "" {
		t.Fatal("the child process still runs as root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	// The test binary lies in a directory private to root: copy it to
	// one nobody can enter, with a temporary directory nobody owns.
	dir, err := os.MkdirTemp("", "cdc-file-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "file.test")
	copyFile(t, exe, bin)
	tmp := filepath.Join(dir, "tmp")
	mkdir(t, tmp)
	if err := os.Chown(tmp, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	var run []string
	for _, part := range strings.Split(t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	cmd := exec.Command(bin, "-test.run="+strings.Join(run, "/"), "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv+"=1", "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("permission checks need a user other than root, and this process cannot start one as nobody: %v", err)
	}
	if err != nil {
		t.Fatalf("%s as nobody: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()+" (") {
		t.Fatalf("%s did not pass as nobody:\n%s", t.Name(), out)
	}
	t.Logf("ran as nobody (uid %d) in a child process, since root bypasses permission checks", nobody)
}

// regularFiles returns the contents of the regular files under dir by
// slash path, passing over symbolic links and devices.
func regularFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		got[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, data string, perm fs.FileMode) {
	t.Helper()
	mkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	mkdir(t, filepath.Dir(link))
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// chmod creates path as a directory if it does not exist, sets its mode to
// perm and returns what sets it back to 0755 (0644 for a file), which also
// runs at the end of the test.
func chmod(t *testing.T, path string, perm fs.FileMode) (restore func()) {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		mkdir(t, path)
		fi, err = os.Stat(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	back := fs.FileMode(0o755)
	if fi.Mode().IsRegular() {
		back = 0o644
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	restore = func() {
		if err := os.Chmod(path, back); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { os.Chmod(path, back) })
	return restore
}

// immutable creates the directory dir and sets its immutable attribute,
// which refuses new entries even to root, and returns what clears it (also
// run at the end of the test). It skips the test where that cannot be done.
func immutable(t *testing.T, dir string) (clear func()) {
	t.Helper()
	mkdir(t, dir)
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skipf("no chattr to make a directory immutable: %v", err)
	}
	if out, err := exec.Command(chattr, "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot make a directory immutable here (it takes CAP_LINUX_IMMUTABLE and a file system such as ext4): %v: %s", err, out)
	}
	unset := func() error {
		out, err := exec.Command(chattr, "-i", dir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("chattr -i %s: %v: %s", dir, err, out)
		}
		return nil
	}
	t.Cleanup(func() { unset() })
	return func() {
		if err := unset(); err != nil {
			t.Error(err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriteSyncsDirectoriesAfterFailure: the directories a failed Write
// created entries in are fsynced by the next Write that succeeds, though the
// files in them are open by then and are not created again.
func TestWriteSyncsDirectoriesAfterFailure(t *testing.T) {
	if fi, err := os.Stat("/dev/full"); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Skipf("no /dev/full to fail a write with: %v", err)
	}
	dir := t.TempDir()
	full := filepath.Join(dir, "out", "full", "x.jsonl")
	symlink(t, "/dev/full", full)
	s := newSink(t, "out/{{.Type}}/x.jsonl", dir)
	e := []*cdc.Event{ev("1", "", "new"), ev("2", "", "full")}
	if err := s.Write(context.Background(), cdc.Batch{Events: e}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if want := filepath.Join(dir, "out", "new"); !s.dirs[want] {
		t.Errorf("directories to sync after the failure: %v, want %s among them", s.dirs, want)
	}
	remove(t, full)
	if err := s.Write(context.Background(), cdc.Batch{Events: e}); err != nil {
		t.Fatal(err)
	}
	if len(s.dirs) != 0 {
		t.Errorf("directories not synced: %v", s.dirs)
	}
	equalFiles(t, regularFiles(t, dir), map[string]string{
		"out/new/x.jsonl":  lines(e[0], e[0]), // written again: at least once
		"out/full/x.jsonl": lines(e[1]),
	})
}
