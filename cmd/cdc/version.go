package main

import (
	"fmt"
	"runtime/debug"

	"github.com/martencdc/cdc/internal/cli"
)

// version, when set at link time (-ldflags "-X main.version=v1.2.0", as the
// Dockerfile does), replaces the module version of the build information.
var version string

// cmdVersion prints the module version, the VCS revision and the Go
// version the binary was built with, from its build information.
func cmdVersion(args []string, e env) error {
	if len(args) > 0 {
		return cli.Usagef("version: unexpected argument %q", args[0])
	}
	fmt.Fprintln(e.stdout, versionLine(debug.ReadBuildInfo()))
	return nil
}

// versionLine describes a build: "cdc v1.2.0 (revision 0123abc, 2026-12-07T10:00:00Z, modified) go1.26.0".
// A binary built from a checkout (go build) has the version "(devel)";
// one from go install module@version has that version.
func versionLine(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "cdc (no build information)"
	}
	v := bi.Main.Version
	if version != "" {
		v = version
	}
	if v == "" {
		v = "(devel)"
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	line := "cdc " + v
	if rev != "" {
		line += " (revision " + rev
		if when != "" {
			line += ", " + when
		}
		if modified {
			line += ", modified"
		}
		line += ")"
	}
	return line + " " + bi.GoVersion
}
