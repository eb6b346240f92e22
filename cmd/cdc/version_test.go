package main

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/martencdc/cdc/internal/cli"
)

func TestVersionLine(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "cdc (no build information)"},
		{"go install module@version", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.0"}}, true, "cdc v1.2.0 go1.26.0"},
		{"checkout with vcs", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.time", Value: "2026-12-07T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}}, true, "cdc (devel) (revision 0123abc, 2026-12-07T10:00:00Z, modified) go1.26.0"},
		{"no version at all", &debug.BuildInfo{GoVersion: "go1.26.0"}, true, "cdc (devel) go1.26.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionLine(tt.bi, tt.ok); got != tt.want {
				t.Errorf("versionLine = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHelpAndVersion: -h of a command and --help exit 0; version and
// --version print one line and exit 0; a stray argument exits 2.
func TestHelpAndVersion(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"--help"}, cli.ExitOK, "Usage:", ""},
		{[]string{"run", "-h"}, cli.ExitOK, "", "-config"},
		{[]string{"status", "--help"}, cli.ExitOK, "", "-pipeline"},
		{[]string{"version"}, cli.ExitOK, "cdc ", ""},
		{[]string{"--version"}, cli.ExitOK, "cdc ", ""},
		{[]string{"version", "x"}, cli.ExitUsage, "", "unexpected argument"},
		{[]string{"run", "--nope"}, cli.ExitUsage, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		code, out, errOut := runInProcess(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
			t.Errorf("cdc %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), code, tt.code, out, errOut)
		}
	}
}
