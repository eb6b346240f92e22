package pgcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// serverUserName is the operating-system user the server runs as when the
// calling process is root.
const serverUserName = "postgres"

// account is the operating-system user initdb and postgres run as.
type account struct {
	name string
	uid  int
	gid  int
	// cred is nil when the server runs as the calling user.
	cred *syscall.Credential
}

// serverAccount returns the account to run the server as: the "postgres"
// user when the calling process is root (PostgreSQL refuses to run as root),
// the calling user otherwise.
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return &account{name: "current user", uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		return nil, fmt.Errorf("look up the %q user to run PostgreSQL as (PostgreSQL refuses to run as root; "+
			"the postgresql packages create it, or: useradd --system %s): %w", serverUserName, serverUserName, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("parse uid %q of user %q: %w", u.Uid, serverUserName, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("parse gid %q of user %q: %w", u.Gid, serverUserName, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %q has uid 0; PostgreSQL refuses to run as root", serverUserName)
	}
	return &account{
		name: serverUserName,
		uid:  uid,
		gid:  gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
	}, nil
}

// chownTree gives dir and everything below it to the account, when the
// account is not the calling user.
func (a *account) chownTree(dir string) error {
	if a.cred == nil {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, a.uid, a.gid); err != nil {
			return fmt.Errorf("chown %s to user %s: %w", path, a.name, err)
		}
		return nil
	})
}

// checkTraversable returns an error unless the account can search every
// ancestor directory of dir, so that a server running as another user can
// reach its data directory. Supplementary groups are not considered.
func (a *account) checkTraversable(dir string) error {
	if a.cred == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil // cannot tell; let the server report it
		}
		perm := fi.Mode().Perm()
		var ok2 bool
		switch {
		case int(st.Uid) == a.uid:
			ok2 = perm&0o100 != 0
		case int(st.Gid) == a.gid:
			ok2 = perm&0o010 != 0
		default:
			ok2 = perm&0o001 != 0
		}
		if !ok2 {
			return fmt.Errorf("directory %s (mode %v) is not searchable by user %s; "+
				"set TMPDIR to a directory it can reach, such as /tmp", p, perm, a.name)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// processAlive reports whether a process with the given pid exists and is
// not a zombie.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return !isZombie(pid)
}
