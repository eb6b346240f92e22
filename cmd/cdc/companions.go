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

// benchCommand is the benchmark's own binary, for the same reason.
const benchCommand = "cdc-bench"

// cmdDemo runs cdc-demo, found next to this executable or on PATH, with
// args.
func cmdDemo(ctx context.Context, args []string, e env) error {
	return runCompanion(ctx, demoCommand, args, e, nil)
}

// cmdBench runs cdc-bench like cmdDemo, telling it to benchmark this cdc.
func cmdBench(ctx context.Context, args []string, e env) error {
	var env []string
	if self, err := os.Executable(); err == nil {
		env = append(env, "CDC_BIN="+self)
	}
	return runCompanion(ctx, benchCommand, args, e, env)
}

// runCompanion runs the command name (cdc-demo, cdc-bench), found next to
// this executable or on PATH, with args and env added to the environment.
func runCompanion(ctx context.Context, name string, args []string, e env, extraEnv []string) error {
	path := companionPath(name)
	if path == "" {
		return cli.Usagef("%[1]s is a separate command (so that cdc carries no test fakes): run it with\n"+
			"  go run github.com/martencdc/cdc/cmd/%[1]s@latest %[2]s\n"+
			"or, in a clone of the repository, go run ./cmd/%[1]s", name, strings.Join(args, " "))
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	// The command handles SIGINT itself and cleans up: give it time.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &cli.ExitError{Code: ee.ExitCode()}
	}
	return err
}

// companionPath returns the path of the command name, or "".
func companionPath(name string) string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}
