// Command cdc-demo is a self-contained tour of cdc on this machine, nothing to
// configure: a throwaway PostgreSQL with Marten's schema, concurrent helpdesk
// writers (some committing late, some rolling back), a pipeline into every
// sink kind (stdout; Kafka on in-process kfake brokers; Elasticsearch events
// and latest modes on an in-process fake; the helpdesk read models in the
// demo database), and a live view of appended vs delivered events and lag.
// At the end it checks every sink against mt_events and exits 1 on a
// mismatch. It removes everything it started.
//
// It is a command of its own, not part of cdc, so that the production binary
// links none of the fakes; "cdc demo" runs it when it is installed beside
// cdc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/assemble"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/examples/helpdesk"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/replication"
	"github.com/martencdc/cdc/status"
)

// demoSchema is where the demo's Marten event store lives: not public, as in
// most Marten deployments (DatabaseSchemaName).
const demoSchema = "helpdesk"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a clean stop; a second one kills.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode("cdc-demo", err, os.Stderr))
}

// run runs the demo with the command line args; events go to stdout, the
// live view and the verdict to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cdc-demo", flag.ContinueOnError)
	duration := fs.Duration("duration", 0, "stop after this long, not counting the start of PostgreSQL (default: until Ctrl-C)")
	rate := fs.Int("rate", 20, "events appended per second, all writers together")
	writers := fs.Int("writers", 4, "concurrent writers")
	lf := cli.LogFlags{Level: "warn"}
	lf.Register(fs)
	if err := cli.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *rate <= 0 || *writers <= 0 {
		return cli.Usagef("demo: --rate and --writers must be positive")
	}
	log, err := lf.Logger(stderr)
	if err != nil {
		return err
	}

	fmt.Fprintln(stderr, "demo: starting a throwaway PostgreSQL (wal_level=logical)...")
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Logger: log})
	if err != nil {
		if errors.Is(err, pgcluster.ErrNoServer) {
			return fmt.Errorf("demo: %w", err)
		}
		return fmt.Errorf("demo: start PostgreSQL: %w", err)
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			log.Warn("could not stop the demo's PostgreSQL", "err", err)
		}
		fmt.Fprintln(stderr, "demo: PostgreSQL stopped and its files removed")
	}()
	setupCtx := context.WithoutCancel(ctx)
	if err := cluster.CreateDatabase(setupCtx, "helpdesk"); err != nil {
		return err
	}
	dsn := cluster.DSN("helpdesk")
	pool, err := pgxpool.New(setupCtx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := marten.Install(setupCtx, pool, demoSchema); err != nil {
		return fmt.Errorf("demo: install Marten's schema: %w", err)
	}
	if _, err := pool.Exec(setupCtx, helpdesk.DDL); err != nil {
		return fmt.Errorf("demo: create the read-model tables: %w", err)
	}
	fmt.Fprintf(stderr, "demo: PostgreSQL on port %d, Marten event store in schema %q\n", cluster.Port(), demoSchema)

	targets, err := startDemoTargets()
	if err != nil {
		return err
	}
	defer targets.close()
	fmt.Fprintf(stderr, "demo: Kafka (3 in-process brokers, kfake) on %s, NATS with JetStream (nats-server, in process) on %s, an Elasticsearch fake on %s\n",
		targets.kafka.ListenAddrs()[0], targets.nats.Addr(), targets.es.URL())

	pc := &config.Pipeline{
		Name:           "helpdesk",
		Source:         config.Source{DSN: dsn, Schema: demoSchema, Slot: "cdc_helpdesk", Publication: "cdc_helpdesk", Start: config.StartNow},
		Checkpoints:    config.Checkpoints{DSN: dsn, Schema: demoSchema},
		Sinks:          targets.sinks(dsn),
		StandbyRetry:   time.Second,
		StatusInterval: time.Second,
	}
	counter := &deliveryCounters{}
	a := assemble.New(assemble.Options{Stdout: stdout, Wrap: counter.wrap, Logger: log})
	rt, err := a.Open(setupCtx, pc)
	if err != nil {
		return err
	}
	defer rt.Close()

	runCtx, stopPipeline := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipeline()
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- rt.Run(runCtx) }()
	for rt.State() != replication.StateStreaming {
		select {
		case err := <-pipeDone:
			return fmt.Errorf("demo: pipeline: %w", err)
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Fprintf(stderr, "demo: streaming; %d writers append ~%d events/s, some commit late, some roll back. Ctrl-C to stop.\n", *writers, *rate)

	if *duration > 0 {
		// The clock starts once everything is up: on a loaded machine
		// the setup alone can take seconds.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	w := &demoWriters{pool: pool, rate: *rate, n: *writers}
	writeCtx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	writersDone := make(chan error, 1)
	go func() { writersDone <- w.run(writeCtx) }()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-pipeDone:
			return fmt.Errorf("demo: pipeline stopped: %w", err)
		case <-tick.C:
			demoLine(stderr, time.Since(start), w, counter, rt)
		}
	}
	stopWriters()
	if err := <-writersDone; err != nil {
		log.Warn("a writer failed", "err", err)
	}
	// Let the pipeline deliver what was committed, then stop it cleanly.
	deadline := time.Now().Add(15 * time.Second)
	for counter.count() < w.committed.Load() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	demoLine(stderr, time.Since(start), w, counter, rt)
	stopPipeline()
	if err := <-pipeDone; err != nil {
		return fmt.Errorf("demo: pipeline: %w", err)
	}
	return demoVerdict(setupCtx, stderr, pool, w, counter, targets)
}

// demoLine prints the live view.
func demoLine(out io.Writer, elapsed time.Duration, w *demoWriters, c *deliveryCounters, rt *assemble.Pipeline) {
	appended, delivered := w.committed.Load(), c.count()
	lag := "0s"
	if last := c.lastCommit(); appended > delivered && !last.IsZero() {
		lag = time.Since(last).Round(10 * time.Millisecond).String()
	}
	retained := "?"
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if slot, err := rt.Slot(ctx); err == nil && slot.Exists {
		retained = status.HumanBytes(slot.RetainedBytes)
	}
	fmt.Fprintf(out, "demo: %4.0fs  appended %d (%d committed late, %d rolled back)  delivered %s  lag %d events / %s  slot retains %s\n",
		elapsed.Seconds(), appended, w.late.Load(), w.rolledBack.Load(), c.String(), max(appended-delivered, 0), lag, retained)
}

// demoVerdict checks what every sink delivered against mt_events, and what
// Kafka, the NATS stream and the Elasticsearch fake hold, and says so.
func demoVerdict(ctx context.Context, out io.Writer, pool *pgxpool.Pool, w *demoWriters, c *deliveryCounters, t *demoTargets) error {
	var stored, streams int64
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT stream_id) FROM helpdesk.mt_events`).Scan(&stored, &streams); err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: %d events committed (mt_events holds %d, in %d streams); %d rolled-back events never appeared\n",
		w.committed.Load(), stored, streams, w.rolledBackEvents.Load())
	ok := true
	for _, name := range c.names() {
		delivered, dups, ordered := c.summary(name)
		fmt.Fprintf(out, "demo: sink %-9s delivered %d, %d duplicates, commit order kept: %v\n", name, delivered, dups, ordered)
		ok = ok && int64(delivered) == stored && dups == 0 && ordered
	}
	messages, docs, streamDocs := t.holdings()
	natsMessages, err := t.natsMessages(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: Kafka holds %d messages; NATS stream %s holds %d messages; Elasticsearch holds %d event documents and %d stream documents\n",
		messages, demoNATSStream, natsMessages, docs, streamDocs)
	models, err := helpdesk.Read(ctx, pool)
	if err != nil {
		return fmt.Errorf("demo: read the read models: %w", err)
	}
	events, err := marten.Events(ctx, pool, demoSchema)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	diff := helpdesk.Diff(helpdesk.Recompute(events), models)
	fmt.Fprintf(out, "demo: the read models (incident_details, incident_short_info, customer_incidents_summary) equal a recomputation from mt_events: %v\n", diff == "")
	if !ok || messages != stored || natsMessages != stored || docs != stored || streamDocs != streams || diff != "" {
		return errors.New("demo: delivery did not match the event store")
	}
	fmt.Fprintf(out, "demo: %d transactions took their seq_ids early and committed late; the events committed meanwhile were delivered without waiting for them\n", w.late.Load())
	return nil
}

// demoWriters append helpdesk events through mt_quick_append_events, as
// Marten does. A tenth of the transactions stay open for a while after
// taking their seq_ids (so later seq_ids commit first: the gaps Marten's
// daemon waits out) and a fifteenth roll back.
type demoWriters struct {
	pool *pgxpool.Pool
	rate int
	n    int

	committed, late, rolledBack, rolledBackEvents atomic.Int64
}

func (w *demoWriters) run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, w.n)
	for i := range w.n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.writer(ctx, uint64(i)); err != nil && ctx.Err() == nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (w *demoWriters) writer(ctx context.Context, seed uint64) error {
	rng := mrand.New(mrand.NewPCG(seed, 42))
	hd := marten.NewHelpdesk(rng)
	perWriter := float64(w.rate) / float64(w.n)
	for ctx.Err() == nil {
		stream, events := hd.Next()
		start := time.Now()
		tx, err := w.pool.Begin(ctx)
		if err != nil {
			return err
		}
		if _, _, err := marten.QuickAppend(ctx, tx, demoSchema, stream, "incident", marten.DefaultTenantID, events); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return err
		}
		switch r := rng.IntN(30); {
		case r < 2: // roll back: the seq_ids are lost, a gap Marten's daemon must wait out
			_ = tx.Rollback(context.WithoutCancel(ctx))
			w.rolledBack.Add(1)
			w.rolledBackEvents.Add(int64(len(events)))
			continue
		case r < 5: // commit late: later seq_ids commit first
			time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
			w.late.Add(1)
		}
		if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		w.committed.Add(int64(len(events)))
		pause := time.Duration(float64(len(events))/perWriter*float64(time.Second)) - time.Since(start)
		if pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}
	return nil
}
