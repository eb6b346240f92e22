package faults

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var (
	// long runs the long variants: more faults per test, more events.
	long = flag.Bool("faults.long", false, "run the long variants of the fault tests (more faults, more events)")
	// soak is the duration of TestSoak; zero skips it.
	soak = flag.Duration("soak", 0, "run TestSoak for this long, e.g. -soak=10m (skipped when 0)")
	// reportPath, when set, receives one JSON line of figures per test.
	reportPath = flag.String("faults.report", "", "append each test's figures as a JSON line to this file")
)

// pg is the cluster shared by the tests that do not crash the server.
var pg *pgcluster.Cluster

// cdcBin is the cdc binary built by TestMain.
var cdcBin string

// buildTimeout bounds the build of the cdc binary.
const buildTimeout = 5 * time.Minute

// TestMain builds the cdc binary once, starts the shared cluster and runs
// the tests.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "cdc-faults-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: faults: make a directory for the cdc binary: %v\n", err)
		os.Exit(1)
	}
	bin, err := buildCDC(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: faults: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	cdcBin = bin
	code := pgtest.Run(m, &pg)
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildCDC builds github.com/martencdc/cdc/cmd/cdc into dir and returns the
// binary's path.
func buildCDC(dir string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "cdc")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	began := time.Now()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", bin, "github.com/martencdc/cdc/cmd/cdc")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build the cdc binary (go build -o %s github.com/martencdc/cdc/cmd/cdc): %w\n%s", bin, err, out)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "faults: built %s in %v\n", bin, time.Since(began).Round(time.Millisecond))
	}
	return bin, nil
}

// regression fails the test with why: a cdc defect this suite found, now
// fixed (docs/reliability.md, Findings), is back.
func regression(t *testing.T, why string) {
	t.Helper()
	t.Error("a fixed cdc defect is back: " + why)
}

// scale returns short in the default run and long with -faults.long.
func scale[T any](short, long_ T) T {
	if *long {
		return long_
	}
	return short
}
