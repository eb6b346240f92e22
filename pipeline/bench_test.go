package pipeline_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/kafka"
	"github.com/martencdc/cdc/sinks/stdout"
)

// benchTx and benchPerTx size the workload: benchTx transactions of
// benchPerTx helpdesk-sized events, appended through mt_quick_append_events.
const (
	benchTx    = 20000
	benchPerTx = 5
)

// BenchmarkSlotThroughput measures, on one workload, how fast PostgreSQL's
// decoder delivers the slot to a client that does nothing with it (raw), and
// how fast the whole pipeline goes (decode, route, batch, encode JSON
// envelopes to the stdout sink into io.Discard, or produce them to Kafka,
// checkpoint). The ratio of the
// two is what this machine's noise does not change much.
//
//	go test ./pipeline -run '^$' -bench SlotThroughput -benchtime 1x
func BenchmarkSlotThroughput(b *testing.B) {
	b.Run("stdout", func(b *testing.B) {
		benchSlot(b, func(*testing.B) cdc.Sink { return stdout.New(io.Discard) })
	})
	// The Kafka sink into an in-process kfake cluster of 3 brokers, whose
	// CPU time competes with PostgreSQL's and cdc's on the same machine.
	b.Run("kafka", func(b *testing.B) {
		c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(12, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		benchSlot(b, func(b *testing.B) cdc.Sink {
			s, err := kafka.New(kafka.Config{Brokers: c.ListenAddrs(), Topic: route.MustParse("bench"), Compression: kafka.CompressionLZ4})
			if err != nil {
				b.Fatal(err)
			}
			return s
		})
	})
}

// benchSlot is BenchmarkSlotThroughput with the pipeline writing to the
// sinks newSink makes.
func benchSlot(b *testing.B, newSink func(*testing.B) cdc.Sink) {
	dsn := pgtest.NewMartenDatabase(b, pg, "public")
	pool, err := pgxpool.New(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	ctx := b.Context()
	if _, err := pool.Exec(ctx, benchProcedure); err != nil {
		b.Fatal(err)
	}
	store := checkpoint.New(pool, "public")
	if err := store.Init(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		// Four slots over the same WAL, read in the order raw, pipeline,
		// pipeline, raw, so that WAL already in the page cache and drift in
		// the machine's load favour neither side.
		slots := []replication.Config{
			{Slot: "bench_raw1", Publication: "bench"}, {Slot: "bench_full1", Publication: "bench"},
			{Slot: "bench_full2", Publication: "bench"}, {Slot: "bench_raw2", Publication: "bench"},
		}
		for _, c := range slots {
			if _, err := replication.Setup(ctx, pool, c); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		start := time.Now()
		if _, err := pool.Exec(ctx, `CALL bench_append($1, $2)`, benchTx, benchPerTx); err != nil {
			b.Fatal(err)
		}
		appendTime := time.Since(start)
		var walBytes int64
		if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'bench_raw1'`).Scan(&walBytes); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		raw1 := benchRaw(b, dsn, pool, slots[0])
		full1, batches1 := benchFull(b, dsn, pool, store, slots[1], newSink(b))
		full2, batches2 := benchFull(b, dsn, pool, store, slots[2], newSink(b))
		raw2 := benchRaw(b, dsn, pool, slots[3])
		rawDur, fullDur := (raw1+raw2)/2, (full1+full2)/2

		n := float64(benchTx * benchPerTx)
		b.ReportMetric(n/rawDur.Seconds(), "raw_events/s")
		b.ReportMetric(n/fullDur.Seconds(), "pipeline_events/s")
		b.ReportMetric(rawDur.Seconds()/fullDur.Seconds(), "pipeline/raw")
		b.ReportMetric(float64(walBytes)/rawDur.Seconds()/(1<<20), "raw_WAL_MiB/s")
		b.ReportMetric(2*n/float64(batches1+batches2), "events/batch")
		b.Logf("%d events in %d transactions, %.1f MiB of WAL (appended in %v): raw %v %v, pipeline %v %v",
			benchTx*benchPerTx, benchTx, float64(walBytes)/(1<<20), appendTime.Round(time.Millisecond),
			raw1.Round(time.Millisecond), raw2.Round(time.Millisecond), full1.Round(time.Millisecond), full2.Round(time.Millisecond))
		for _, c := range slots {
			if _, _, err := replication.Teardown(context.Background(), pool, c); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := pool.Exec(ctx, `TRUNCATE mt_events, mt_streams CASCADE`); err != nil {
			b.Fatal(err)
		}
	}
}

// benchProcedure appends n transactions of k events each, one commit per
// transaction, server-side so that the client does not limit the rate.
const benchProcedure = `
CREATE PROCEDURE bench_append(n int, k int) LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[]; types varchar[]; dotnet varchar[]; bodies jsonb[]; nulls varchar[]; hdrs jsonb[];
BEGIN
    FOR i IN 1..n LOOP
        SELECT array_agg(gen_random_uuid()),
               array_agg('incident_' || (ARRAY['logged','categorised','prioritised','resolved','closed'])[1 + j % 5]),
               array_agg('Helpdesk.Api.Incidents.Incident' || j || ', Helpdesk.Api'),
               array_agg(jsonb_build_object('IncidentId', gen_random_uuid(), 'CustomerId', gen_random_uuid(),
                   'Description', 'Printer on the third floor prints blank pages since this morning',
                   'Contact', jsonb_build_object('FirstName', 'Han', 'LastName', 'Solo', 'EmailAddress', 'han.solo@example.com'),
                   'LoggedBy', gen_random_uuid(), 'LoggedAt', now())),
               array_agg('corr-' || i), array_agg('{"source":"bench"}'::jsonb)
          INTO ids, types, dotnet, bodies, nulls, hdrs
          FROM generate_series(1, k) j;
        PERFORM mt_quick_append_events(gen_random_uuid(), 'incident', '*DEFAULT*', ids, types, dotnet, bodies, nulls, nulls, hdrs);
        COMMIT;
    END LOOP;
END $$`

// countingConsumer counts commits and ignores the rest: the raw rate of
// the slot as a client sees it.
type countingConsumer struct {
	commits atomic.Int64
	done    chan struct{}
	want    int64
	restart chan struct{}
}

func (c *countingConsumer) Open(context.Context) error { return nil }
func (c *countingConsumer) Message(_ context.Context, data []byte) error {
	if data[0] == 'C' && c.commits.Add(1) == c.want {
		close(c.done)
	}
	return nil
}
func (c *countingConsumer) Keepalive(cdc.LSN)           {}
func (c *countingConsumer) Confirmable() cdc.LSN        { return 0 }
func (c *countingConsumer) Restart() <-chan struct{}    { return c.restart }
func (c *countingConsumer) Drain(context.Context) error { return nil }
func (c *countingConsumer) Abandon(bool)                {}
func (c *countingConsumer) Heard(time.Time)             {}
func (c *countingConsumer) Idle()                       {}
func (c *countingConsumer) Advanced() <-chan struct{}   { return nil }

func benchRaw(b *testing.B, dsn string, pool *pgxpool.Pool, cfg replication.Config) time.Duration {
	s, err := replication.NewStream(dsn, pool, cfg)
	if err != nil {
		b.Fatal(err)
	}
	c := &countingConsumer{done: make(chan struct{}), want: benchTx, restart: make(chan struct{})}
	ctx, cancel := context.WithCancel(b.Context())
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

// batchCounter counts the batches written to the sink it wraps.
type batchCounter struct {
	cdc.Sink
	batches atomic.Int64
}

func (c *batchCounter) Write(ctx context.Context, b cdc.Batch) error {
	c.batches.Add(1)
	return c.Sink.Write(ctx, b)
}

// benchFull runs the pipeline over the slot of cfg into sink until every
// event is delivered, and returns the time it took and the batches written.
func benchFull(b *testing.B, dsn string, pool *pgxpool.Pool, store *checkpoint.Store, cfg replication.Config, sink cdc.Sink) (time.Duration, int64) {
	s, err := replication.NewStream(dsn, pool, cfg)
	if err != nil {
		b.Fatal(err)
	}
	counted := &batchCounter{Sink: sink}
	p, err := pipeline.New(pipeline.Config{
		Name:        "bench",
		Sinks:       []pipeline.SinkConfig{{Name: "out", Sink: counted}},
		Checkpoints: store,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- p.Run(ctx, s) }()
	want := int64(benchTx * benchPerTx)
	for p.Status()[0].Delivered < want {
		select {
		case err := <-errc:
			b.Fatalf("pipeline: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	d := time.Since(start)
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if _, err := store.Delete(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	return d, counted.batches.Load()
}
