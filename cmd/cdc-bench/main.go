// Command cdc-bench is cdc's benchmark: over the same WAL of one
// PostgreSQL (a throwaway cluster, like the demo's, or --dsn) it measures the
// decode ceiling of a slot, cdc's catch-up rate per sink kind, the latency
// from commit to each sink at fixed rates beside two Marten-style polling
// projectors, and one big COPY transaction, with cdc's peak RSS, and prints
// one table (package bench does the work). cdc runs as child processes of
// the cdc binary (--cdc).
//
// It is a command of its own, not part of cdc, so that the production binary
// links none of the in-process Kafka and PostgreSQL it starts; "cdc bench"
// runs it when it is installed beside cdc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/martencdc/cdc/bench"
	"github.com/martencdc/cdc/bench/workload"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/pgcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.ExitCode("cdc-bench", run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the benchmark (package bench) against a throwaway PostgreSQL, or
// the database of --dsn, and prints its table.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cdc-bench", flag.ContinueOnError)
	cdcPath := fs.String("cdc", "", "the cdc binary to run (default: $CDC_BIN, cdc beside this command, or cdc on PATH)")
	dsn := fs.String("dsn", "", "a database of its own to benchmark in (default: a throwaway PostgreSQL, like the demo)")
	events := fs.Int("events", 100_000, "size of the catch-up workload; the big transaction is 10x this (at most 1,000,000)")
	sinks := fs.String("sinks", strings.Join(bench.Kinds, ","), "sink kinds to run cdc with: stdout, kafka, elastic, postgres, nats, all (every kind in one pipeline), or kinds joined with + (in one pipeline)")
	rates := fs.String("rates", "2000,5000", "fixed rates (events/s) of the live latency runs; empty skips them")
	liveFor := fs.Duration("duration", 10*time.Second, "how long each live run writes")
	bigTx := fs.Int("big-tx", -1, "events in the one big COPY transaction (0 skips it; default 10x --events, at most 1,000,000)")
	polling := fs.Bool("polling", true, "run the Marten-style polling projector beside cdc in the live runs")
	writers := fs.Int("writers", 4, "concurrent writers")
	txEvents := fs.Int("tx-events", 5, "events per transaction")
	payload := fs.Int("payload", 500, "approximate size of each event's data, bytes")
	streams := fs.Int("streams", 1000, "streams appended to")
	tenants := fs.Int("tenants", 1, "tenants")
	slowEvery := fs.Duration("slow-every", 5*time.Second, "in the live runs, one transaction per this long on average holds its seq_ids for --slow-for before committing (0: none)")
	slowFor := fs.Duration("slow-for", 4*time.Second, "how long a slow transaction holds its seq_ids (past Marten's 3 s stale threshold, a Marten 8 daemon skips it)")
	rollbackEvery := fs.Duration("rollback-every", 5*time.Second, "in the live runs, one transaction per this long on average rolls back (0: none)")
	kafka := fs.String("kafka", "", "Kafka brokers (comma-separated) instead of the in-process broker")
	elastic := fs.String("elastic", "", "Elasticsearch address instead of the in-process bulk stub")
	natsServers := fs.String("nats", "", "NATS servers (comma-separated) instead of the in-process nats-server")
	csvPath := fs.String("csv", "", "also write the table as CSV to this file")
	asJSON := fs.Bool("json", false, "print JSON instead of the Markdown table")
	if err := cli.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	o := bench.Options{
		DSN: *dsn, Events: *events, LiveFor: *liveFor, Polling: *polling, Progress: stderr, Elastic: *elastic,
		SlowEvery: *slowEvery, RollbackEvery: *rollbackEvery,
		Workload: workload.Options{Writers: *writers, TxEvents: *txEvents, PayloadBytes: *payload, Streams: *streams, Tenants: *tenants, SlowFor: *slowFor},
	}
	if *events <= 0 || *writers <= 0 || *txEvents <= 0 || *payload < 0 || *streams <= 0 || *tenants <= 0 || *slowEvery < 0 || *rollbackEvery < 0 {
		return cli.Usagef("bench: --events, --writers, --tx-events, --streams and --tenants must be positive, --slow-every and --rollback-every not negative")
	}
	for _, k := range splitList(*sinks) {
		if !bench.ValidKind(k) {
			return cli.Usagef("bench: --sinks %s: unknown kind (known: stdout, kafka, elastic, postgres, nats, all, or kinds joined with +)", k)
		}
		o.Sinks = append(o.Sinks, k)
	}
	for _, r := range splitList(*rates) {
		n, err := strconv.Atoi(r)
		if err != nil || n <= 0 {
			return cli.Usagef("bench: --rates %s: want positive events/s", r)
		}
		o.Rates = append(o.Rates, n)
	}
	o.Kafka = splitList(*kafka)
	o.NATS = splitList(*natsServers)
	o.BigTx = *bigTx
	if o.BigTx < 0 {
		o.BigTx = min(10**events, 1_000_000)
	}
	exe := cdcBinary(*cdcPath)
	if exe == "" {
		return cli.Usagef("bench: no cdc binary: give --cdc PATH, set CDC_BIN, or put cdc beside cdc-bench or on PATH (go build ./cmd/cdc)")
	}
	o.Command = []string{exe}

	if o.DSN == "" {
		fmt.Fprintln(stderr, "bench: starting a throwaway PostgreSQL (wal_level=logical)...")
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{Settings: map[string]string{"max_wal_size": "4GB"}})
		if err != nil {
			if errors.Is(err, pgcluster.ErrNoServer) {
				return fmt.Errorf("bench: %w (or give --dsn)", err)
			}
			return fmt.Errorf("bench: start PostgreSQL: %w", err)
		}
		defer func() { _ = cluster.Stop() }()
		if err := cluster.CreateDatabase(ctx, "bench"); err != nil {
			return err
		}
		o.DSN = cluster.DSN("bench")
	}
	report, err := bench.Run(ctx, o)
	if report == nil {
		return err
	}
	report.Command = "cdc-bench " + strings.Join(args, " ")
	if *csvPath != "" {
		f, cerr := os.Create(*csvPath)
		if cerr != nil {
			return fmt.Errorf("bench: --csv: %w", cerr)
		}
		cerr = report.CSV(f)
		if closeErr := f.Close(); cerr == nil {
			cerr = closeErr
		}
		if cerr != nil {
			return fmt.Errorf("bench: --csv: %w", cerr)
		}
	}
	if *asJSON {
		if jerr := report.JSON(stdout); jerr != nil {
			return jerr
		}
	} else if merr := report.Markdown(stdout); merr != nil {
		return merr
	}
	return err
}

// cdcBinary returns the cdc binary to benchmark: flag, $CDC_BIN, cdc beside
// this executable, or cdc on PATH; "" when there is none.
func cdcBinary(flag string) string {
	for _, p := range []string{flag, os.Getenv("CDC_BIN")} {
		if p != "" {
			return p
		}
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "cdc")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("cdc"); err == nil {
		return p
	}
	return ""
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
