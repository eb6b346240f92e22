// Command cdc is a change-data-capture projector for Marten event stores: it
// reads committed mt_events inserts from a PostgreSQL logical replication slot,
// in commit order, and delivers them to batched sinks with one checkpoint per
// sink. See README.md for the commands and the configuration.
//
// This package is the command line only: flags, commands, output and exit
// codes. Package assemble builds the pipelines; package status reads their
// state; package admin serves the metrics.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/martencdc/cdc/internal/cli"
)

const usage = `cdc: change-data-capture projector for Marten event stores

Usage:
  cdc run      --config FILE [--pipeline NAME]... [--admin-addr :9187] [--pprof-addr localhost:6060]
  cdc status   --config FILE [--pipeline NAME]... [--json]
  cdc validate --config FILE
  cdc teardown --config FILE [--pipeline NAME]... [--checkpoints]
  cdc replay   --config FILE [--pipeline NAME] --sink NAME [--from beginning|seq:N|time:RFC3339] [--tenant T]...
  cdc deadletters list|show|retry|discard --config FILE [--pipeline NAME] [--sink NAME] [--id N]... [--all]
  cdc demo     [--duration D] [--rate N]   (runs the separate cdc-demo command)
  cdc bench    [--events N] [--sinks K,...] [--rates R,...] [--dsn DSN] [--csv FILE] [--json]   (runs the separate cdc-bench command)
  cdc version  (or --version): the module version and VCS revision of this binary

Common flags: --log-format auto|text|json, --log-level debug|info|warn|error.
Run "cdc COMMAND -h" for the flags of a command.
`

// env is what a command gets from the process: its output streams and the
// environment lookup used for ${VAR} in configuration files.
type env struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

// defaultGOGC is the garbage collector's target percentage when GOGC is not
// set. cdc's live heap is mostly batches in flight, and the default (100)
// lets the heap grow to twice that before a collection: with four sinks
// catching up, a live heap of about 40 MB peaked at 91 MB of heap and 117 MiB
// of RSS. At 50 the peak stays under 100 MB, for a collector that took 3 %
// of cdc's CPU at 100. GOGC (and GOMEMLIMIT) in the environment still rule.
const defaultGOGC = 50

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGOGC)
	}
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

// runCommand runs one command line and returns the exit code.
func runCommand(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return cli.ExitUsage
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
	case "replay":
		err = cmdReplay(ctx, args[1:], e)
	case "deadletters":
		err = cmdDeadLetters(ctx, args[1:], e)
	case "demo":
		err = cmdDemo(ctx, args[1:], e)
	case "bench":
		err = cmdBench(ctx, args[1:], e)
	case "version", "--version":
		err = cmdVersion(args[1:], e)
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, usage)
		return cli.ExitOK
	default:
		fmt.Fprintf(e.stderr, "cdc: unknown command %q\n\n%s", args[0], usage)
		return cli.ExitUsage
	}
	return cli.ExitCode("cdc", err, e.stderr)
}
