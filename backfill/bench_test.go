package backfill

import (
	"bufio"
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

var benchEvents = flag.Int("backfill.events", 200_000, "events in BenchmarkBackfill's table")

// BenchmarkBackfill compares, over the same rows, the rate at which a bare
// client decodes them from a replication slot (the limit of the live
// stream) with the rate of a backfill of them: the table read in a
// snapshot, through a sink's runner into a sink that discards, with its
// checkpoints and pages saved. It reports both, their ratio, and the peak
// growth of the process's RSS during the backfill.
//
//	go test ./backfill -run '^$' -bench Backfill -benchtime 1x -backfill.events 1000000
func BenchmarkBackfill(b *testing.B) {
	ctx := b.Context()
	dsn := pgtest.NewMartenDatabase(b, pg, "public")
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	rcfg := replication.Config{Slot: "bench_raw", Publication: "bench_raw"}
	if _, err := replication.Setup(ctx, pool, rcfg); err != nil {
		b.Fatal(err)
	}
	n := *benchEvents
	fill(b, pool, n)
	b.ResetTimer()

	raw := rawRate(b, dsn, pool, rcfg, n)
	backfill, peak, peakRSS := backfillRate(b, dsn, pool, n)
	b.ReportMetric(float64(n)/raw.Seconds(), "raw-events/s")
	b.ReportMetric(float64(n)/backfill.Seconds(), "backfill-events/s")
	b.ReportMetric(raw.Seconds()/backfill.Seconds(), "backfill/raw")
	b.ReportMetric(float64(peak)/(1<<20), "peak-rss-growth-MiB")
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-rss-MiB")
}

// fill appends n events of about 600 bytes, 5 per stream, 1000 per
// transaction.
func fill(b *testing.B, pool *pgxpool.Pool, n int) {
	const perTx = 1000
	for done := 0; done < n; done += perTx {
		k := min(perTx, n-done)
		_, err := pool.Exec(b.Context(), `WITH s AS (
  INSERT INTO public.mt_streams (id, type, version, timestamp, created, tenant_id)
  SELECT gen_random_uuid(), 'incident', 5, now(), now(), '*DEFAULT*' FROM generate_series(1, $1 / 5)
  RETURNING id)
INSERT INTO public.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, headers)
SELECT nextval('public.mt_events_sequence'), gen_random_uuid(), s.id, v,
       jsonb_build_object('Description', repeat('x', 400), 'CustomerId', gen_random_uuid(), 'Step', v),
       'incident_logged', now(), '*DEFAULT*', 'Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api', 'corr', '{"source":"bench"}'
FROM s, generate_series(1, 5) v`, k)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// rawRate reads the n events from the slot with a client that only counts
// insert messages.
func rawRate(b *testing.B, dsn string, pool *pgxpool.Pool, cfg replication.Config, n int) time.Duration {
	s, err := replication.NewStream(dsn, pool, cfg)
	if err != nil {
		b.Fatal(err)
	}
	c := &insertCounter{want: int64(n), done: make(chan struct{}), restart: make(chan struct{})}
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- s.Run(ctx, c) }()
	select {
	case <-c.done:
	case err := <-errc:
		b.Fatalf("raw stream: %v", err)
	}
	d := time.Since(start)
	cancel()
	<-errc
	return d
}

// insertCounter counts pgoutput Insert messages.
type insertCounter struct {
	n, want int64
	done    chan struct{}
	restart chan struct{}
	once    sync.Once
}

func (c *insertCounter) Open(context.Context) error { return nil }
func (c *insertCounter) Message(_ context.Context, data []byte) error {
	if data[0] == 'I' {
		if c.n++; c.n == c.want {
			c.once.Do(func() { close(c.done) })
		}
	}
	return nil
}
func (c *insertCounter) Keepalive(cdc.LSN)           {}
func (c *insertCounter) Confirmable() cdc.LSN        { return 0 }
func (c *insertCounter) Restart() <-chan struct{}    { return c.restart }
func (c *insertCounter) Drain(context.Context) error { return nil }
func (c *insertCounter) Abandon(bool)                {}
func (c *insertCounter) Heard(time.Time)             {}
func (c *insertCounter) Idle()                       {}
func (c *insertCounter) Advanced() <-chan struct{}   { return nil }

// backfillRate backfills the table into a sink that discards, through a
// pipeline whose stream is idle, and returns the time it took and the peak
// growth of the RSS meanwhile.
func backfillRate(b *testing.B, dsn string, pool *pgxpool.Pool, n int) (d time.Duration, growth, peakRSS int64) {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	cps := checkpoint.New(pool, "public")
	store := NewStore(pool, "public")
	if err := cps.Init(ctx); err != nil {
		b.Fatal(err)
	}
	if err := store.Init(ctx); err != nil {
		b.Fatal(err)
	}
	if err := store.RequestIfNone(ctx, "bench", "null"); err != nil {
		b.Fatal(err)
	}
	null := &discard{}
	p, err := pipeline.New(pipeline.Config{Name: "bench", Checkpoints: cps,
		Sinks: []pipeline.SinkConfig{{Name: "null", Sink: null, Backfill: &pipeline.BackfillState{Held: true}}}})
	if err != nil {
		b.Fatal(err)
	}
	idle := sourceFunc(func(ctx context.Context, c cdc.Consumer) error {
		if err := c.Open(ctx); err != nil {
			return err
		}
		<-ctx.Done()
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return c.Drain(dctx)
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, idle) }()
	sink, err := p.Backfill("null")
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	table, err := Inspect(ctx, conn, "public")
	conn.Release()
	if err != nil {
		b.Fatal(err)
	}
	recs, err := store.Load(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	job := &Job{Record: recs["null"], Store: store, Table: table, Pool: pool, DSN: dsn,
		Slot: replication.Config{Slot: "unused", Publication: "unused"}, Sink: sink}

	base := rss()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if r := rss() - base; r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	if err := job.Run(ctx); err != nil {
		b.Fatal(err)
	}
	d = time.Since(start)
	close(stop)
	<-sampled
	if got := null.n.Load(); got != int64(n) {
		b.Fatalf("the sink got %d events, want %d", got, n)
	}
	cancel()
	<-done
	return d, peak.Load(), base + peak.Load()
}

// discard is a sink that counts and drops.
type discard struct{ n atomic.Int64 }

func (d *discard) Write(_ context.Context, batch cdc.Batch) error {
	d.n.Add(int64(len(batch.Events)))
	return nil
}
func (d *discard) Close(context.Context) error { return nil }

type sourceFunc func(ctx context.Context, c cdc.Consumer) error

func (f sourceFunc) Run(ctx context.Context, c cdc.Consumer) error { return f(ctx, c) }

// rss returns the process's resident set size in bytes.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
