package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/martencdc/cdc/bench"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var (
	pg     *pgcluster.Cluster
	cdcBin string // the cdc binary the benchmark runs, built by TestMain
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cdc-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cdcBin = filepath.Join(dir, "cdc")
	build := exec.Command("go", "build", "-o", cdcBin, "github.com/martencdc/cdc/cmd/cdc")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cdc:", err)
		os.Exit(1)
	}
	code := pgtest.Run(m, &pg)
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestBenchSmoke runs the benchmark with a tiny workload: every measure
// runs, every cdc sink gets every event, and the report is well formed.
// Speed is not asserted (see README: Benchmarks).
func TestBenchSmoke(t *testing.T) {
	dsn := pgtest.NewDatabase(t, pg)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"--cdc", cdcBin, "--dsn", dsn, "--events", "500", "--rates", "300", "--duration", "1s",
		"--big-tx", "2000", "--slow-every", "0", "--rollback-every", "0", "--json"}, &stdout, &stderr)
	code := cli.ExitCode("cdc-bench", err, &stderr)
	out, errOut := stdout.String(), stderr.String()
	if code != cli.ExitOK {
		t.Fatalf("cdc-bench: exit %d\n%s", code, errOut)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("cdc-bench --json: %v\n%s", err, out)
	}
	want := []string{"ceiling", "cdc stdout", "cdc kafka", "cdc elastic", "cdc postgres", "cdc nats", "cdc stdout + kafka + elastic in one pipeline", "cdc every sink kind",
		"cdc stdout @ 300/s", "cdc kafka @ 300/s", "cdc elastic @ 300/s", "polling like Marten 8.x", "polling like Marten 9.16+", "one COPY transaction of 2000 events"}
	if len(r.Rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(r.Rows), len(want), out)
	}
	for i, row := range r.Rows {
		if !strings.HasPrefix(row.Name, want[i]) {
			t.Errorf("row %d is %q, want %q...", i, row.Name, want[i])
		}
		if row.Missing != 0 || row.Events == 0 {
			t.Errorf("row %q: %d events, %d missing", row.Name, row.Events, row.Missing)
		}
		if i < 8 && (row.Rate <= 0 || row.Ratio <= 0) {
			t.Errorf("row %q: rate %v, ratio %v", row.Name, row.Rate, row.Ratio)
		}
		if i > 0 && i < 8 && (row.CPU == nil || row.CPU.CDC < 0 || row.CPU.Server < 0 || row.CPU.Bench < 0) {
			t.Errorf("row %q: CPU %+v, want every part measured", row.Name, row.CPU)
		}
		if strings.HasPrefix(row.Name, "cdc") && row.PeakRSS <= 0 {
			t.Errorf("row %q: no peak RSS", row.Name)
		}
	}
	var slots int
	if err := pgtest.Conn(t, dsn).QueryRow(t.Context(), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Errorf("cdc-bench left %d slots", slots)
	}
}

// TestBenchUsage: bad flags exit 2 with one line naming the flag.
func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{{"--sinks", "mqtt"}, {"--sinks", "kafka+kafka"}, {"--rates", "x"}, {"--events", "0"}} {
		var stdout, stderr bytes.Buffer
		code := cli.ExitCode("cdc-bench", run(t.Context(), append([]string{"--cdc", cdcBin}, args...), &stdout, &stderr), &stderr)
		if code != cli.ExitUsage || !strings.Contains(stderr.String(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("cdc-bench %v: exit %d\n%s", args, code, stderr.String())
		}
	}
}
