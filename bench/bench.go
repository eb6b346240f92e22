package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/bench/workload"
	"github.com/martencdc/cdc/internal/marten"
)

// Sink kinds the benchmark runs cdc with.
const (
	SinkStdout   = "stdout"
	SinkKafka    = "kafka"
	SinkElastic  = "elastic"
	SinkPostgres = "postgres"
	SinkNATS     = "nats"
	SinkAll      = "all" // every kind above in one pipeline
	// SinkStreams is the three sinks that stream to a broker, an index or
	// a pipe (no database transaction) in one pipeline. Any kinds joined
	// with "+" run in one pipeline.
	SinkStreams = SinkStdout + "+" + SinkKafka + "+" + SinkElastic
)

// Kinds are the sink kinds in the order the table shows them.
var Kinds = []string{SinkStdout, SinkKafka, SinkElastic, SinkPostgres, SinkNATS, SinkStreams, SinkAll}

// singleKinds are the kinds of one sink each.
var singleKinds = []string{SinkStdout, SinkKafka, SinkElastic, SinkPostgres, SinkNATS}

// kindsOf returns the single kinds of kind: itself, the parts of a
// "+"-joined kind, or every single kind for SinkAll; nil when one is
// unknown.
func kindsOf(kind string) []string {
	if kind == SinkAll {
		return singleKinds
	}
	parts := strings.Split(kind, "+")
	for i, p := range parts {
		if !slices.Contains(singleKinds, p) || slices.Contains(parts[:i], p) {
			return nil
		}
	}
	return parts
}

// ValidKind reports whether kind is one the benchmark can run cdc with: a
// single kind, SinkAll, or single kinds joined with "+".
func ValidKind(kind string) bool { return kindsOf(kind) != nil }

// kindID is kind as it can appear in slot, topic and index names.
func kindID(kind string) string { return strings.ReplaceAll(kind, "+", "_") }

// Options configure a benchmark run.
type Options struct {
	// DSN is the database to use. Its schema Schema gets Marten's event
	// store (created when missing) and the benchmark's slots, publication
	// and tables; use a database of its own.
	DSN    string
	Schema string // default "bench"
	// Events is the size of the catch-up workload; the rest scales with
	// it. Default 100,000.
	Events int
	// Sinks are the kinds to run cdc with (Kinds); default all of them.
	Sinks []string
	// Rates are the fixed rates (events/s) of the live latency runs; none
	// skips them. LiveFor is how long each runs (default 10 s).
	Rates   []int
	LiveFor time.Duration
	// BigTx is the size of the one big COPY transaction; 0 skips it.
	BigTx int
	// Polling adds the Marten-style polling projectors to the live runs.
	Polling bool
	// SlowEvery and RollbackEvery set how often, on average, a live run's
	// transaction holds its seq_ids for Workload.SlowFor before it
	// commits, or rolls back (0: never). They are periods rather than
	// shares so that the gaps come as often at every rate.
	SlowEvery, RollbackEvery time.Duration
	// Workload are the write workload's knobs (Rate is set per run).
	Workload workload.Options
	// Command starts cdc: the binary and any leading arguments; Env is
	// added to its environment.
	Command []string
	Env     []string
	// Kafka brokers, an Elasticsearch address and NATS servers to use
	// instead of the in-process ones.
	Kafka   []string
	Elastic string
	NATS    []string
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
	// Dir holds the configuration files of the cdc runs; default a
	// temporary directory.
	Dir string
}

func (o *Options) defaults() {
	if o.Schema == "" {
		o.Schema = "bench"
	}
	if o.Events <= 0 {
		o.Events = 100_000
	}
	if len(o.Sinks) == 0 {
		o.Sinks = Kinds
	}
	if o.LiveFor <= 0 {
		o.LiveFor = 10 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	w := &o.Workload
	w.Schema = o.Schema
	if w.Writers <= 0 {
		w.Writers = 4
	}
	if w.TxEvents <= 0 {
		w.TxEvents = 5
	}
	if w.PayloadBytes <= 0 {
		w.PayloadBytes = 500
	}
	if w.Streams <= 0 {
		w.Streams = 1000
	}
	if w.Tenants <= 0 {
		w.Tenants = 1
	}
	if w.Tenants > 1 && !w.Layout.Conjoined() {
		w.Layout = marten.LayoutConjoined // Marten writes other tenants only with conjoined tenancy
	}
}

// publication is the one publication every slot of the benchmark reads.
const publication = "cdc_bench"

// Run runs the benchmark and returns its report.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	if len(o.Command) == 0 {
		return nil, errors.New("bench: no command to start cdc with")
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "cdc-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	pool, err := pgxpool.New(ctx, o.DSN)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer pool.Close()
	// The writers' pool: a connection per writer, and as many again for
	// the slow transactions they leave open.
	wc, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	wc.MaxConns = int32(2*o.Workload.Writers + 16)
	wpool, err := pgxpool.NewWithConfig(ctx, wc)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer wpool.Close()
	b := &run{o: o, pool: pool, wpool: wpool, report: &Report{Started: time.Now().UTC().Format(time.RFC3339)}}
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	defer b.cleanup()
	if err := b.catchUp(ctx); err != nil {
		return b.report, err
	}
	for _, rate := range o.Rates {
		if err := b.live(ctx, rate); err != nil {
			return b.report, err
		}
	}
	if o.BigTx > 0 {
		if err := b.bigTransaction(ctx); err != nil {
			return b.report, err
		}
	}
	return b.report, nil
}

// run is one benchmark run.
type run struct {
	o       Options
	pool    *pgxpool.Pool
	wpool   *pgxpool.Pool // the writers'
	report  *Report
	kafka   *kafkaTarget
	es      *esStub
	nats    *natsTarget
	esURL   string
	ceiling float64 // events/s
	cpu     *cpuMeter
}

func (b *run) progress(format string, args ...any) {
	fmt.Fprintf(b.o.Progress, "bench: "+format+"\n", args...)
}

// setup installs Marten's schema, drops what an earlier run left, starts
// the in-process targets and describes the machine.
func (b *run) setup(ctx context.Context) error {
	if err := marten.InstallLayout(ctx, b.pool, b.o.Workload.Layout, b.o.Schema); err != nil {
		return fmt.Errorf("bench: install Marten's schema in %s: %w", b.o.Schema, err)
	}
	rows, err := b.pool.Query(ctx, `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'cdc\_bench\_%' AND database = current_database() AND NOT active`)
	if err != nil {
		return fmt.Errorf("bench: list old slots: %w", err)
	}
	old, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("bench: list old slots: %w", err)
	}
	for _, s := range old {
		if _, err := b.pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, s); err != nil {
			return fmt.Errorf("bench: drop old slot %s: %w", s, err)
		}
	}
	table := pgx.Identifier{b.o.Schema, "mt_events"}.Sanitize()
	for _, stmt := range []string{
		`DROP PUBLICATION IF EXISTS ` + publication,
		`CREATE PUBLICATION ` + publication + ` FOR TABLE ` + table + ` WITH (publish = 'insert', publish_via_partition_root = true)`,
		`DELETE FROM ` + pgx.Identifier{b.o.Schema, "cdc_checkpoints"}.Sanitize(),
	} {
		if _, err := b.pool.Exec(ctx, stmt); err != nil && !strings.Contains(stmt, "DELETE") {
			return fmt.Errorf("bench: %s: %w", stmt, err)
		}
	}
	if b.kafka, err = newKafkaTarget(b.o.Kafka); err != nil {
		return err
	}
	if b.nats, err = newNATSTarget(b.o.NATS, slices.ContainsFunc(b.o.Sinks, func(k string) bool { return slices.Contains(kindsOf(k), SinkNATS) })); err != nil {
		return err
	}
	b.esURL = b.o.Elastic
	if b.esURL == "" {
		b.es = newESStub()
		b.esURL = b.es.url()
	}
	var version string
	_ = b.pool.QueryRow(ctx, `SHOW server_version`).Scan(&version)
	host, _ := os.Hostname()
	b.report.Machine = fmt.Sprintf("%d CPUs (%s/%s, %s), PostgreSQL %s; Kafka: %s; Elasticsearch: %s; NATS: %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, host, version,
		pick(len(b.o.Kafka) > 0, "brokers "+strings.Join(b.o.Kafka, ","), "in-process kfake"),
		pick(b.o.Elastic != "", b.o.Elastic, "in-process bulk stub accepting every item"),
		pick(len(b.o.NATS) > 0, strings.Join(b.o.NATS, ","), "in-process nats-server"))
	return nil
}

func (b *run) cleanup() {
	if b.kafka != nil {
		b.kafka.close()
	}
	if b.es != nil {
		b.es.close()
	}
	b.nats.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The slots retain WAL: never leave one behind.
	_, _ = b.pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name LIKE 'cdc\_bench\_%' AND database = current_database() AND NOT active`)
}

func pick(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// sinkYAML is the configuration of the sinks of kind (all: every kind).
func (b *run) sinkYAML(kind, suffix string) string {
	var y strings.Builder
	add := func(k string) {
		switch k {
		case SinkStdout:
			y.WriteString("      - {name: stdout, kind: stdout}\n")
		case SinkKafka:
			fmt.Fprintf(&y, "      - {name: kafka, kind: kafka, brokers: [%s], topic: %s, create_topics: true, topic_partitions: 12}\n",
				strings.Join(b.kafka.brokers, ", "), yamlQuote("bench_"+suffix))
		case SinkElastic:
			fmt.Fprintf(&y, "      - {name: elastic, kind: elastic, addresses: [%s], index: %s}\n", yamlQuote(b.esURL), yamlQuote("bench-"+suffix))
		case SinkPostgres:
			fmt.Fprintf(&y, "      - {name: postgres, kind: postgres, dsn: %s, mode: events, table: %s}\n", yamlQuote(b.o.DSN),
				yamlQuote(b.o.Schema+".events_"+suffix))
		case SinkNATS:
			stream := "BENCH_" + strings.ToUpper(suffix)
			fmt.Fprintf(&y, "      - {name: nats, kind: nats, servers: [%s], subject: %s, stream: %s, create_stream: true, stream_subjects: [%s]}\n",
				strings.Join(b.nats.servers, ", "), yamlQuote("bench."+suffix+".{{.Type}}"), yamlQuote(stream), yamlQuote("bench."+suffix+".>"))
		}
	}
	for _, k := range kindsOf(kind) {
		add(k)
	}
	return y.String()
}

// sinkCount is how many sinks the pipeline of kind has.
func sinkCount(kind string) int { return len(kindsOf(kind)) }

// writeConfig writes the configuration of a cdc run and returns its path.
func (b *run) writeConfig(name, slot, sinks string) (string, error) {
	cfg := fmt.Sprintf(`pipelines:
  - name: %s
    source:
      dsn: %s
      schema: %s
      slot: %s
      publication: %s
    sinks:
%s`, name, yamlQuote(b.o.DSN), yamlQuote(b.o.Schema), slot, publication, sinks)
	path := filepath.Join(b.o.Dir, name+".yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// yamlQuote quotes s for YAML (single quotes: no escapes but ”).
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// waitDelivered polls the checkpoints of pipeline until each of its n sinks
// has delivered events events, and returns when they had.
func (b *run) waitDelivered(ctx context.Context, pipeline string, n int, events int64, p *proc, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	q := `SELECT count(*) FROM ` + pgx.Identifier{b.o.Schema, "cdc_checkpoints"}.Sanitize() + ` WHERE pipeline = $1 AND events >= $2`
	for {
		var done int
		err := b.pool.QueryRow(ctx, q, pipeline, events).Scan(&done)
		now := time.Now()
		if err == nil && done >= n {
			return now, nil
		}
		select {
		case <-p.exited:
			return time.Time{}, fmt.Errorf("cdc exited (%v):\n%s", p.err, p.log())
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("pipeline %s: its sinks did not deliver %d events within %s:\n%s", pipeline, events, timeout, p.log())
		}
	}
}

// catchUp writes the catch-up workload with one slot per measure created
// before it, then reads it back through each: the ceiling first, then cdc
// with each sink kind.
func (b *run) catchUp(ctx context.Context) error {
	slots := []string{"cdc_bench_ceiling", "cdc_bench_ceiling_last"}
	for _, k := range b.o.Sinks {
		slots = append(slots, "cdc_bench_"+kindID(k))
	}
	for _, s := range slots {
		if _, err := b.pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, s); err != nil {
			return fmt.Errorf("bench: create slot %s: %w", s, err)
		}
	}
	w := b.o.Workload
	// As fast as the writers can, a few rolled back; slow transactions are
	// for the live runs.
	w.Rate, w.SlowShare, w.RollbackShare = 0, 0, 0.01
	b.progress("writing %d events (%d writers, %d events per transaction, ~%d bytes each)...", b.o.Events, w.Writers, w.TxEvents, w.PayloadBytes)
	res, err := workload.Run(ctx, b.wpool, w, b.o.Events, nil)
	if err != nil {
		return fmt.Errorf("bench: write the catch-up workload: %w", err)
	}
	committed := res.Committed
	b.progress("wrote %d events in %s (%.0f events/s)", committed, res.Elapsed.Round(time.Millisecond), float64(committed)/res.Elapsed.Seconds())

	// The ceiling is read first and last, as the machine warms up and
	// its load changes; the faster of the two counts.
	ceilingRow := len(b.report.Rows)
	b.report.Rows = append(b.report.Rows, Row{Name: "ceiling (bare slot consumer: decode and acknowledge)", Events: committed, Ratio: 1})
	b.cpu = newCPUMeter(ctx, b.pool)
	readCeiling := func(slot string) error {
		before := b.cpu.sample(0)
		d, _, err := ceiling(ctx, b.o.DSN, b.pool, slot, publication, b.o.Schema, committed)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if cpu := b.cpu.since(before, 0); float64(committed)/d.Seconds() > b.ceiling {
			b.report.Rows[ceilingRow].CPU = &cpu
		}
		b.drop(ctx, slot)
		rate := float64(committed) / d.Seconds()
		b.progress("ceiling: %d events in %s (%.0f events/s)", committed, d.Round(time.Millisecond), rate)
		b.ceiling = max(b.ceiling, rate)
		return nil
	}
	if err := readCeiling("cdc_bench_ceiling"); err != nil {
		return err
	}
	first := len(b.report.Rows)

	for _, kind := range b.o.Sinks {
		name := "bench_" + kindID(kind)
		cfg, err := b.writeConfig(name, "cdc_bench_"+kindID(kind), b.sinkYAML(kind, "catchup_"+kindID(kind)))
		if err != nil {
			return err
		}
		out, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		p, err := startProc(ctx, b.o.Command, b.o.Env, cfg, out)
		if err != nil {
			out.Close()
			return err
		}
		row, err := b.measureCatchUp(ctx, p, name, kind, committed)
		stopErr := p.stop(time.Minute)
		out.Close()
		b.drop(ctx, "cdc_bench_"+kindID(kind))
		if err != nil {
			return fmt.Errorf("bench: cdc with %s: %w", kind, err)
		}
		if stopErr != nil {
			return fmt.Errorf("bench: cdc with %s: %w", kind, stopErr)
		}
		b.report.Rows = append(b.report.Rows, row)
	}
	if err := readCeiling("cdc_bench_ceiling_last"); err != nil {
		return err
	}
	b.report.Rows[ceilingRow].Rate = b.ceiling
	for i := first; i < len(b.report.Rows); i++ {
		b.report.Rows[i].Ratio = b.report.Rows[i].Rate / b.ceiling
	}
	return nil
}

func (b *run) measureCatchUp(ctx context.Context, p *proc, name, kind string, committed int) (Row, error) {
	start, err := p.waitStreaming(ctx, 2*time.Minute)
	if err != nil {
		return Row{}, err
	}
	before := b.cpu.sample(p.cmd.Process.Pid)
	done, err := b.waitDelivered(ctx, name, sinkCount(kind), int64(committed), p, 10*time.Minute)
	if err != nil {
		return Row{}, err
	}
	cpu := b.cpu.since(before, p.cmd.Process.Pid)
	d := done.Sub(start)
	rate := float64(committed) / d.Seconds()
	row := Row{Name: "cdc " + describeKind(kind), Events: committed, Rate: rate, PeakRSS: p.peakRSS(), CPU: &cpu}
	b.progress("%s: %d events in %s (%.0f events/s, %.2f of the first ceiling), peak RSS %.1f MiB", row.Name, committed, d.Round(time.Millisecond), rate, rate/b.ceiling, float64(row.PeakRSS)/(1<<20))
	return row, nil
}

func describeKind(kind string) string {
	switch kind {
	case SinkStdout:
		return "stdout (to /dev/null)"
	case SinkKafka:
		return "kafka (12 partitions)"
	case SinkElastic:
		return "elastic (events mode)"
	case SinkPostgres:
		return "postgres (events table)"
	case SinkNATS:
		return "nats (JetStream, file storage)"
	case SinkAll:
		return "every sink kind in one pipeline"
	}
	return strings.Join(kindsOf(kind), " + ") + " in one pipeline"
}

// drop drops a slot of the benchmark (it retains WAL).
func (b *run) drop(ctx context.Context, slot string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for dctx.Err() == nil {
		_, err := b.pool.Exec(dctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
		var active bool
		if err == nil && b.pool.QueryRow(dctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active) != nil {
			return // gone
		}
		time.Sleep(20 * time.Millisecond)
	}
}
