// Package file is the sink that appends each event as one JSON envelope per
// line (see package envelope, the format of the stdout sink) to files whose
// path is a template over the event's fields (see package route), for
// example "out/{{.TenantID}}/{{.Type}}.jsonl".
//
// # Durability
//
// Write groups the batch's events by file, keeping their order within each
// file, creates missing directories (mode 0755) and files (mode 0644),
// appends each file's lines with one write call, then fsyncs every file it
// wrote and every directory in which it created an entry. It returns nil only
// once all of that succeeded: the batch then survives a crash of the process
// or of the machine, which is what the pipeline's checkpoint needs.
//
// Delivery is at least once: when Write fails, or the process dies before
// the checkpoint moves, the batch is written again and its lines appear
// twice. Consumers de-duplicate on the envelope's id. A line torn by a failed
// write or a crash is never glued to the next one: when Write opens a file
// whose last byte is not a newline, it starts with one.
//
// # Confinement
//
// Event fields must not send data outside the directory the configuration
// names. The directory of the template's literal prefix is the base ("out"
// for "out/{{.TenantID}}/{{.Type}}.jsonl", the working directory for
// "{{.Type}}.jsonl", "/var/cdc" for "/var/cdc/{{.Type}}.jsonl"). A rendered
// path that, once cleaned, is not inside the base (a tenant "../../etc",
// an absolute path from a relative template), names the base itself, ends
// in a separator or holds a NUL byte is refused: Write returns a
// [cdc.RejectedError] for the first such event, after the events before it
// are durable. So is an event whose path template fails to render. Symbolic
// links inside the base are followed.
//
// # Errors
//
// The file system's answers for an event's path fall into two classes.
//
// Refused for good: retrying the same path cannot succeed and no operator
// action on the running system is expected to fix it; the path itself is
// wrong. These are ENAMETOOLONG (a name over 255 bytes, a path over 4096),
// EISDIR (the path is a directory), ENOTDIR (a component of the path is a
// regular file, such as a file the sink itself wrote), ELOOP (a symbolic
// link loops), EINVAL and EILSEQ (a name the file system cannot hold). They
// are met while looking up, creating or opening the path, before anything
// is written to it, and are handled like a path outside the base: Write
// returns a [cdc.RejectedError] for the first event whose path fails, after
// the events before it are durable, and writes no line of that event or of
// the events after it.
//
// That holds when the base is a directory or does not exist yet, so that
// the failure lies in the part of the path the event chose. When the base
// itself is unusable (a regular file named "out", a symbolic link loop, a
// name too long), or the path is a constant, the fault is in the
// configuration: every event would fail alike, and rejecting them would
// empty the stream into the dead-letter table. The error is then a plain
// error, retried, that names the path and what to change.
//
// Fixable by an operator: EACCES and EPERM (permissions, an immutable
// attribute), EROFS (a file system mounted read-only), ENOSPC (disk or
// inodes full), EDQUOT (quota), EFBIG (file size limit), EIO (failing
// storage), EMFILE and ENFILE (open file limits), and every error not named
// above. Write returns them as plain errors, which the pipeline retries with
// backoff until they go away. Their message names the path, what failed and
// what to do, for example
//
//	file sink: out/acme/x.jsonl: create: permission denied: fix the permissions of out/acme: cdc's user must be able to create files in it; cdc retries
//
// An existing file that is not writable (EACCES on opening it for append)
// is in this class: making it writable again, or moving it away, lets
// delivery go on with nothing lost. So is a file whose write or fsync
// fails, whatever the errno: the data is in an unknown state, so the whole
// batch is written again.
//
// # Files
//
// The sink keeps up to [Config.MaxOpen] files open between batches and
// closes the least recently used beyond that. Write opens (and creates) all
// the files of a batch before it writes to any, so that a path refused for
// good is found before the lines of the events after it are written; a
// batch that touches more files than MaxOpen opens some of them twice.
// Several sinks or processes may append to the same file: each file's share
// of a batch is one O_APPEND write, which local file systems do not
// interleave with other appends.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/route"
)

// DefaultMaxOpen is the default of Config.MaxOpen.
const DefaultMaxOpen = 256

// syncParallelism is how many files are fsynced at once.
const syncParallelism = 16

// maxKeptBuffer is the largest per-file buffer kept for the next batch.
const maxKeptBuffer = 1 << 20

// Config configures a file sink.
type Config struct {
	// Path is the path of the file each event is appended to, rendered
	// per event. Required.
	Path *route.Template
	// Dir is the directory relative paths are resolved in. Default "": the
	// working directory.
	Dir string
	// MaxOpen is the most files kept open between batches; the least
	// recently used are closed beyond it. Default DefaultMaxOpen (256).
	MaxOpen int
}

// Sink appends JSON lines to files. Its methods are safe for concurrent
// use, though the pipeline calls them from one goroutine.
type Sink struct {
	path    *route.Template
	dir     string
	base    string // rendered paths must stay inside it; "" for a constant path
	maxOpen int

	mu     sync.Mutex
	files  map[string]*handle // open files by resolved path
	dirs   map[string]bool    // directories with entries created and not yet fsynced
	clock  uint64             // counts uses, for least recently used
	groups []*group           // scratch for Write, buffers reused
	byName map[string]*group  // scratch for Write: rendered name -> group
	byPath map[string]*group  // scratch for Write: resolved path -> group
	closed bool
}

// handle is an open file.
type handle struct {
	path     string
	f        *os.File
	lastUsed uint64
	dirty    bool // written since the last fsync
	torn     bool // the file does not end with a newline
}

// group is one file's share of a batch.
type group struct {
	path string // resolved
	h    *handle
	buf  []byte // buf[0] is a newline written only to end a torn line
}

// errClosed is returned by Write after Close.
var errClosed = errors.New("file sink is closed")

// New returns a file sink. It opens nothing until the first Write.
func New(cfg Config) (*Sink, error) {
	if cfg.Path == nil {
		return nil, errors.New("file sink: no path template")
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = DefaultMaxOpen
	}
	s := &Sink{path: cfg.Path, dir: cfg.Dir, maxOpen: cfg.MaxOpen, files: map[string]*handle{},
		dirs: map[string]bool{}, byName: map[string]*group{}, byPath: map[string]*group{}}
	if p, ok := cfg.Path.Constant(); ok {
		if strings.HasSuffix(p, "/") || strings.HasSuffix(p, string(filepath.Separator)) || strings.IndexByte(p, 0) >= 0 {
			return nil, fmt.Errorf("file sink: path %q is not a file name", p)
		}
	} else {
		s.base = filepath.Dir(filepath.FromSlash(cfg.Path.Prefix()) + "x")
	}
	return s, nil
}

// Write appends the batch's events to their files and makes them durable.
// An event whose path cannot be rendered, leaves the base directory or is
// refused for good by the file system (see Errors in the package
// documentation) is rejected with a *cdc.RejectedError, once the events
// before it are durable. Other failures are returned as they are, to be
// retried.
func (s *Sink) Write(ctx context.Context, b cdc.Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	groups, err := s.group(ctx, b.Events)
	defer s.release(groups)
	rejected, ok := err.(*cdc.RejectedError)
	if err != nil && !ok {
		return err
	}
	if err := s.write(ctx, groups); err != nil {
		return err
	}
	if rejected != nil {
		return rejected
	}
	return nil
}

// group renders the events' paths, opens (and creates) each file and
// encodes each file's lines, up to the first event it rejects: one whose
// path cannot be rendered, leaves the base or cannot be opened for good.
// It returns a *cdc.RejectedError for that event, or another error when a
// file cannot be opened for now; the groups hold the events before either.
func (s *Sink) group(ctx context.Context, events []*cdc.Event) ([]*group, error) {
	groups := s.groups[:0]
	clear(s.byName)
	clear(s.byPath)
	for i, e := range events {
		name, err := s.path.Render(e)
		if err != nil {
			return groups, &cdc.RejectedError{Index: i, Err: err}
		}
		g := s.byName[name]
		if g == nil {
			path, err := s.resolve(name)
			if err != nil {
				return groups, &cdc.RejectedError{Index: i, Err: fmt.Errorf("event %s: %w", e.ID, err)}
			}
			if g = s.byPath[path]; g == nil {
				if err := ctx.Err(); err != nil {
					return groups, err
				}
				h, err := s.open(path)
				if err != nil {
					var fe *fsError
					if errors.As(err, &fe) && fe.permanent() && s.eventAtFault() {
						fe.refused = true
						return groups, &cdc.RejectedError{Index: i, Err: fmt.Errorf("event %s: %w", e.ID, err)}
					}
					return groups, err
				}
				groups = appendGroup(groups)
				g = groups[len(groups)-1]
				g.path = path
				g.h = h
				g.buf = append(g.buf[:0], '\n')
				s.byPath[path] = g
			}
			s.byName[name] = g
		}
		g.buf = envelope.Append(g.buf, e)
		g.buf = append(g.buf, '\n')
	}
	return groups, nil
}

// appendGroup extends groups by one, reusing the group (and its buffer) of
// an earlier batch when there is one.
func appendGroup(groups []*group) []*group {
	if n := len(groups); n < cap(groups) && groups[:n+1][n] != nil {
		return groups[:n+1]
	}
	return append(groups, &group{})
}

// release keeps the groups' buffers for the next batch, up to a limit.
func (s *Sink) release(groups []*group) {
	for i, g := range groups {
		g.h = nil
		if cap(g.buf) > maxKeptBuffer || i >= s.maxOpen {
			g.buf = nil
		}
	}
	s.groups = groups[:0]
}

// resolve checks a rendered name and returns the path to open.
func (s *Sink) resolve(name string) (string, error) {
	if s.base != "" {
		if strings.IndexByte(name, 0) >= 0 {
			return "", fmt.Errorf("path %q holds a NUL byte", name)
		}
		if strings.HasSuffix(name, "/") || strings.HasSuffix(name, string(filepath.Separator)) {
			return "", fmt.Errorf("path %q names a directory", name)
		}
		clean := filepath.Clean(filepath.FromSlash(name))
		rel, err := filepath.Rel(s.base, clean)
		if rel == "." {
			return "", fmt.Errorf("path %q names the directory %s", name, s.base)
		}
		if err != nil || !filepath.IsLocal(rel) {
			return "", fmt.Errorf("path %q is outside the directory %s", name, s.base)
		}
		name = clean
	}
	if s.dir != "" && !filepath.IsAbs(name) {
		name = filepath.Join(s.dir, name)
	}
	return name, nil
}

// eventAtFault reports whether a path that the file system refuses for
// good below the base is refused because of the part the event chose: the
// base is a directory, or does not exist yet (the sink would create it, and
// a path over PATH_MAX is refused before that). It is false when the base
// itself is unusable (a regular file, a link loop), which every event would
// meet, and for a constant path, all of which is configuration.
func (s *Sink) eventAtFault() bool {
	if s.base == "" {
		return false
	}
	base := s.base
	if s.dir != "" && !filepath.IsAbs(base) {
		base = filepath.Join(s.dir, base)
	}
	fi, err := os.Stat(base)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	return fi.IsDir()
}

// write appends each group to its file, then syncs the files and the
// directories where entries were created (in this batch or in one that
// failed).
func (s *Sink) write(ctx context.Context, groups []*group) error {
	for _, g := range groups {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := g.h
		if s.files[g.path] != h {
			// Closed to make room for a later file of the batch (more
			// files than MaxOpen): open it again.
			var err error
			if h, err = s.open(g.path); err != nil {
				return err
			}
			g.h = h
		}
		buf := g.buf[1:]
		if h.torn {
			buf = g.buf
		}
		h.dirty = true
		if _, err := h.f.Write(buf); err != nil {
			s.drop(h)
			return ioError(fmt.Sprintf("append %d bytes", len(buf)), h.path, err)
		}
		h.torn = false
	}
	if err := s.syncAll(groups); err != nil {
		return err
	}
	for dir := range s.dirs {
		if err := syncDir(dir); err != nil {
			return err
		}
		delete(s.dirs, dir)
	}
	return nil
}

// syncAll fsyncs the groups' files that are still open and dirty (those
// closed to make room were synced then), several at a time.
func (s *Sink) syncAll(groups []*group) error {
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, syncParallelism)
		errs = make([]error, len(groups))
	)
	for i, g := range groups {
		h := g.h
		if h == nil || !h.dirty || s.files[h.path] != h {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := h.f.Sync(); err != nil {
				errs[i] = ioError("fsync", h.path, err)
				return
			}
			h.dirty = false
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			// After a failed fsync the state of the written pages is
			// unknown: reopen the file next time.
			s.drop(groups[i].h)
		}
	}
	return errors.Join(errs...)
}

// open returns the open file at path, opening (and creating) it when
// needed. Directories where it creates an entry are added to s.dirs. The
// failures of the file system at path are *fsError.
func (s *Sink) open(path string) (*handle, error) {
	s.clock++
	if h := s.files[path]; h != nil {
		h.lastUsed = s.clock
		return h, nil
	}
	if len(s.files) >= s.maxOpen {
		if err := s.evict(); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	torn := false
	switch {
	case err == nil:
		if torn, err = endsTorn(path); err != nil {
			f.Close()
			return nil, pathError(opReadEnd, path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		dir := filepath.Dir(path)
		if err := mkdirs(dir, s.dirs); err != nil {
			return nil, err
		}
		if f, err = os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
			return nil, pathError(opCreate, path, err)
		}
		s.dirs[dir] = true
	default:
		return nil, pathError(opOpen, path, err)
	}
	h := &handle{path: path, f: f, lastUsed: s.clock, torn: torn}
	s.files[path] = h
	return h, nil
}

// endsTorn reports whether the file at path is not empty and does not end
// with a newline.
func endsTorn(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 || !fi.Mode().IsRegular() {
		return false, err
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], fi.Size()-1); err != nil && err != io.EOF {
		return false, err
	}
	return last[0] != '\n', nil
}

// evict closes the least recently used file, syncing it first if written.
func (s *Sink) evict() error {
	var lru *handle
	for _, h := range s.files {
		if lru == nil || h.lastUsed < lru.lastUsed {
			lru = h
		}
	}
	if lru == nil {
		return nil
	}
	delete(s.files, lru.path)
	return lru.close()
}

// drop closes h without syncing and forgets it.
func (s *Sink) drop(h *handle) {
	if s.files[h.path] == h {
		delete(s.files, h.path)
	}
	h.f.Close()
}

// close syncs the file if it was written, then closes it.
func (h *handle) close() error {
	if h.dirty {
		if err := h.f.Sync(); err != nil {
			h.f.Close()
			return ioError("fsync", h.path, err)
		}
	}
	if err := h.f.Close(); err != nil {
		return ioError("close", h.path, err)
	}
	return nil
}

// mkdirs creates dir and its missing parents with mode 0755, adding the
// parent of each directory it creates to dirs. Its errors are *fsError.
func mkdirs(dir string, dirs map[string]bool) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return pathError(opMkdir, dir, &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR})
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return pathError(opLookup, dir, err)
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirs(parent, dirs); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() {
			return pathError(opMkdir, dir, err)
		}
		return nil // created meanwhile by someone else
	}
	dirs[parent] = true
	return nil
}

// syncDir fsyncs a directory, making the entries created in it durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be fsynced there; NTFS journals entries
	}
	d, err := os.Open(dir)
	if err != nil {
		return ioError("open directory to fsync it", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ioError("fsync directory", dir, err)
	}
	return nil
}

// Close syncs and closes every open file. Write fails after Close.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for path, h := range s.files {
		if err := h.close(); err != nil {
			errs = append(errs, err)
		}
		delete(s.files, path)
	}
	s.groups = nil
	return errors.Join(errs...)
}
