package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

// TestPermanent: the errnos that refuse a path for good are told from the
// ones an operator can fix, however the os package wraps them; anything
// else is retried.
func TestPermanent(t *testing.T) {
	errnos := []struct {
		errno     syscall.Errno
		permanent bool
	}{
		{syscall.ENAMETOOLONG, true},
		{syscall.EISDIR, true},
		{syscall.ENOTDIR, true},
		{syscall.EINVAL, true},
		{syscall.EILSEQ, true},
		{syscall.ELOOP, true},
		{syscall.EACCES, false},
		{syscall.EPERM, false},
		{syscall.EROFS, false},
		{syscall.ENOSPC, false},
		{syscall.EDQUOT, false},
		{syscall.EFBIG, false},
		{syscall.EIO, false},
		{syscall.EMFILE, false},
		{syscall.ENFILE, false},
		{syscall.ENOENT, false},
		{syscall.EEXIST, false},
		{syscall.EAGAIN, false},
		{syscall.EINTR, false},
		{syscall.ENXIO, false},
		{syscall.ETXTBSY, false},
		{syscall.ESTALE, false},
		{syscall.ENOMEM, false},
	}
	wrappers := []struct {
		name string
		wrap func(error) error
	}{
		{"bare", func(err error) error { return err }},
		{"PathError", func(err error) error { return &fs.PathError{Op: "open", Path: "out/a/x.jsonl", Err: err} }},
		{"LinkError", func(err error) error { return &os.LinkError{Op: "symlink", Old: "a", New: "out/b", Err: err} }},
		{"SyscallError", func(err error) error { return os.NewSyscallError("fsync", err) }},
		{"wrapped PathError", func(err error) error {
			return fmt.Errorf("open: %w", &fs.PathError{Op: "open", Path: "out/a/x.jsonl", Err: err})
		}},
		{"fsError", func(err error) error {
			return pathError(opOpen, "out/a/x.jsonl", &fs.PathError{Op: "open", Path: "out/a/x.jsonl", Err: err})
		}},
	}
	for _, e := range errnos {
		for _, w := range wrappers {
			if got := permanent(w.wrap(e.errno)); got != e.permanent {
				t.Errorf("permanent(%s %s (%d)) = %v, want %v", w.name, e.errno, int(e.errno), got, e.permanent)
			}
		}
	}

	for _, err := range []error{nil, errors.New("no"), io.ErrUnexpectedEOF, context.Canceled, fs.ErrPermission} {
		if permanent(err) {
			t.Errorf("permanent(%v) = true, want false: it holds no errno", err)
		}
	}

	// A permanent errno from a write, an fsync or a close is not about the
	// path (fsync of a character device says EINVAL): it is retried.
	einval := &fs.PathError{Op: "sync", Path: "out/a/null", Err: syscall.EINVAL}
	if ioError("fsync", "out/a/null", einval).permanent() {
		t.Error("an fsync's EINVAL is permanent")
	}
	if !pathError(opOpen, "out/a/x", einval).permanent() {
		t.Error("an open's EINVAL is not permanent")
	}
}
