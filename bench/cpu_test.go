package bench

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// TestReadStat reads this process's own /proc entry: its parent, and CPU
// time that grows with work.
func TestReadStat(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	a, ok := readStat(os.Getpid())
	if !ok {
		t.Fatal("cannot read /proc/self/stat")
	}
	if a.ppid != os.Getppid() {
		t.Fatalf("ppid %d, want %d", a.ppid, os.Getppid())
	}
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := readStat(os.Getpid())
		if b.cpu > a.cpu {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %s", a.cpu)
		}
		for i := 0; i < 1e6; i++ {
			_ = make([]byte, 64)
		}
	}
	if _, ok := readStat(-1); ok {
		t.Fatal("read the stat of pid -1")
	}
}

func TestCPUText(t *testing.T) {
	for _, tc := range []struct {
		c    *CPU
		want string
	}{
		{nil, "-"},
		{&CPU{CDC: 0.456, Server: 1.2, Bench: 0.05}, "0.46 / 1.20 / 0.05"},
		{&CPU{CDC: -1, Server: -1, Bench: 0.9}, "- / - / 0.90"},
	} {
		if got := tc.c.text(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}
