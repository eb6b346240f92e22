//go:build unix && !linux

package pgcluster

import "syscall"

// sysProcAttr returns the process attributes for initdb and postgres: the
// account's credentials. There is no parent-death signal outside Linux; a
// server orphaned by a crash keeps running until stopped by hand.
func (a *account) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: a.cred}
}

// memoryDir returns "": only Linux's /dev/shm is used.
func memoryDir() string { return "" }

// isZombie reports false: zombies are not detected outside Linux.
func isZombie(int) bool { return false }
