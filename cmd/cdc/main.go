// Command cdc is a change-data-capture projector for Marten event stores: it
// reads committed mt_events inserts from a PostgreSQL logical replication slot,
// in commit order, and delivers them to batched sinks with one checkpoint per
// sink. See README.md for the commands and the configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes (SPEC §6).
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // usage or configuration error
)

const usage = `cdc: change-data-capture projector for Marten event stores

Usage:
  cdc run      --config FILE [--pipeline NAME]... [--metrics-addr :9187]
  cdc status   --config FILE [--json]
  cdc validate --config FILE
  cdc teardown --config FILE [--pipeline NAME]... [--checkpoints]
  cdc demo     [--duration D] [--rate N]

Common flags: --log-format auto|text|json, --log-level debug|info|warn|error.
Run "cdc COMMAND -h" for the flags of a command.
`

// env is what a command gets from the process: its output streams and the
// environment lookup used for ${VAR} in configuration files.
type env struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a clean shutdown; a second one kills.
		<-ctx.Done()
		stop()
	}()
	code := runCommand(ctx, os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv})
	stop()
	os.Exit(code)
}

// usageError is a command-line or configuration problem: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// runCommand runs one command line and returns the exit code.
func runCommand(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], e)
	case "status":
		err = cmdStatus(ctx, args[1:], e)
	case "validate":
		err = cmdValidate(ctx, args[1:], e)
	case "teardown":
		err = cmdTeardown(ctx, args[1:], e)
	case "demo":
		err = cmdDemo(ctx, args[1:], e)
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(e.stderr, "cdc: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	return exitCode(err, e.stderr)
}

// errReported means the command already printed its problems.
var errReported = errors.New("problems reported")

// exitCode prints err (one line per problem) and maps it to an exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	isUsage := errors.As(err, &ue)
	if !errors.Is(err, errReported) {
		for _, line := range splitLines(err.Error()) {
			fmt.Fprintf(stderr, "cdc: %s\n", line)
		}
	}
	if isUsage {
		return exitUsage
	}
	return exitFailure
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
