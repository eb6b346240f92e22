package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/martencdc/cdc/internal/cli"
)

// demoCommand is the demo's own binary: the demo and the in-process fakes it
// runs (Kafka, Elasticsearch, a throwaway PostgreSQL) are not linked into
// cdc.
const demoCommand = "cdc-demo"

// cmdDemo runs cdc-demo, found next to this executable or on PATH, with
// args.
func cmdDemo(ctx context.Context, args []string, e env) error {
	path := demoPath()
	if path == "" {
		return cli.Usagef("the demo is the separate command %s (so that cdc carries no test fakes): run it with\n"+
			"  go run github.com/martencdc/cdc/cmd/cdc-demo@latest %s\n"+
			"or, in a clone of the repository, go run ./cmd/cdc-demo", demoCommand, strings.Join(args, " "))
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	// The demo handles SIGINT itself and cleans up: give it time.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &cli.ExitError{Code: ee.ExitCode()}
	}
	return err
}

// demoPath returns the path of cdc-demo, or "".
func demoPath() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), demoCommand)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(demoCommand); err == nil {
		return p
	}
	return ""
}
