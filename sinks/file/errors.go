package file

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// permanent reports whether err, returned by the file system for a path,
// means the file system refuses that path for good: no operator action on
// the running system is expected to make the same path work (see Errors in
// the package documentation). Errors it does not recognise are not
// permanent, so they are retried rather than turned into rejected events.
func permanent(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.ENAMETOOLONG, // a name component over NAME_MAX or a path over PATH_MAX
		syscall.EISDIR,  // the path names a directory
		syscall.ENOTDIR, // a component of the path is a file
		syscall.EINVAL,  // a name the file system cannot hold (a NUL byte, vfat's reserved characters)
		syscall.EILSEQ,  // a name not in the file system's encoding (strict UTF-8 directories)
		syscall.ELOOP:   // a symbolic link on the path loops
		return true
	}
	return false
}

// fsError is a failure of the file system at one path, worded for the
// operator: the path, what the sink was doing, what the system answered, and
// either what to do about it (the error is retried) or that the path is
// refused for good (the error is the cause of a rejected event).
type fsError struct {
	op     string // what the sink was doing: "create", "open for append", ...
	path   string // the file or directory it was doing it to
	err    error  // as the os package returned it
	lookup bool   // err came from resolving, creating or opening path
	// refused is set when the error rejects an event: it is about the
	// event's path, not about the configuration, and retrying cannot help.
	refused bool
}

// pathError returns the failure err of op on path, where op resolved,
// created or opened path: a permanent errno there is about path itself.
func pathError(op, path string, err error) *fsError {
	return &fsError{op: op, path: path, err: err, lookup: true}
}

// ioError returns the failure err of op (a write, an fsync, a close) on the
// file or directory at path.
func ioError(op, path string, err error) *fsError {
	return &fsError{op: op, path: path, err: err}
}

// permanent reports whether the file system refuses e.path for good.
func (e *fsError) permanent() bool { return e.lookup && permanent(e.err) }

func (e *fsError) Error() string {
	msg := "file sink: " + show(e.path) + ": " + e.op + ": " + reason(e.err)
	if e.refused {
		return msg + ": the file system refuses this path for good"
	}
	if r := remedy(e.op, e.path, e.err); r != "" {
		msg += ": " + r
	}
	return msg + "; cdc retries"
}

func (e *fsError) Unwrap() error { return e.err }

// reason is what the system answered, without the path that the os
// package's errors repeat.
func reason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// remedy says what the operator can do about err, the failure of op on
// path, or "" when there is nothing specific to say.
func remedy(op, path string, err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return ""
	}
	switch errno {
	case syscall.EACCES, syscall.EPERM:
		target, need := path, "append to it"
		switch op {
		case opMkdir:
			target, need = filepath.Dir(path), "create directories in it"
		case opCreate:
			target, need = filepath.Dir(path), "create files in it"
		case opLookup:
			need = "search the directories above it"
		case opReadEnd:
			need = "read it"
		}
		r := "fix the permissions of " + show(target) + ": cdc's user must be able to " + need
		if errno == syscall.EPERM {
			r += " (an immutable attribute also refuses it: lsattr, chattr -i)"
		}
		return r
	case syscall.EROFS:
		return "the file system holding " + show(path) + " is mounted read-only: remount it read-write or change the sink's path"
	case syscall.ENOSPC:
		return "the file system holding " + show(path) + " is full (no space or no inodes left): free some space"
	case syscall.EDQUOT:
		return "cdc's user has used up its disk quota on the file system holding " + show(path) + ": raise the quota or free some space"
	case syscall.EFBIG:
		return show(path) + " has reached the largest file size allowed (by the file system or cdc's ulimit -f): move it away or raise the limit"
	case syscall.EIO:
		return "the storage under " + show(path) + " failed: check it (dmesg, the disk, the network file system)"
	case syscall.EMFILE:
		return "cdc has too many files open: raise its limit (ulimit -n, systemd's LimitNOFILE)"
	case syscall.ENFILE:
		return "the system has too many files open: raise fs.file-max or close files elsewhere"
	// The permanent errnos reach the operator only when they are about the
	// configured part of the path (see group), which only they can change.
	case syscall.ENOTDIR:
		return "a component of " + show(path) + " is not a directory: move it away or change the sink's path"
	case syscall.EISDIR:
		return show(path) + " is a directory: move it away or change the sink's path"
	case syscall.ENAMETOOLONG:
		return "the path is too long for the file system: change the sink's path"
	case syscall.ELOOP:
		return "a symbolic link on the path loops: fix the link or change the sink's path"
	case syscall.EINVAL, syscall.EILSEQ:
		return "the file system refuses this name: change the sink's path"
	}
	return ""
}

// What the sink was doing when the file system failed, as remedy tells
// them apart.
const (
	opLookup  = "look up"
	opMkdir   = "create directory"
	opCreate  = "create"
	opOpen    = "open for append"
	opReadEnd = "read the last byte"
)

// maxShown is the longest path shown whole in messages.
const maxShown = 320

// show returns path for a message: quoted when it holds characters that do
// not print (event data reaches paths through the template), and with its
// middle left out when it is longer than maxShown bytes.
func show(path string) string {
	if len(path) > maxShown {
		head, tail := 200, len(path)-100
		for head > 0 && !utf8.RuneStart(path[head]) {
			head--
		}
		for tail < len(path) && !utf8.RuneStart(path[tail]) {
			tail++
		}
		path = path[:head] + "[" + strconv.Itoa(tail-head) + " bytes left out]" + path[tail:]
	}
	for _, r := range path {
		if !unicode.IsPrint(r) {
			return strconv.Quote(path)
		}
	}
	return path
}
