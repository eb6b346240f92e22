package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/deadletter"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

// harness is one Marten database with a slot, a publication and checkpoint
// and dead-letter tables, ready for pipelines.
type harness struct {
	t     *testing.T
	dsn   string
	pool  *pgxpool.Pool
	store *checkpoint.Store
	dead  *deadletter.Store
	rcfg  replication.Config
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dsn := pgtest.NewMartenDatabase(t, pg, "public")
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, dsn: dsn, pool: pool,
		store: checkpoint.New(pool, "public"),
		dead:  deadletter.New(pool, "public"),
		rcfg:  replication.Config{Slot: "cdc_test", Publication: "cdc_test", StatusInterval: 100 * time.Millisecond, StandbyRetry: 100 * time.Millisecond},
	}
	if _, err := replication.Setup(ctx, pool, h.rcfg); err != nil {
		t.Fatal(err)
	}
	if err := h.store.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.dead.Init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The slot must go before the database can be dropped; it frees
		// once the test's pipelines have stopped.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			if _, _, err := replication.Teardown(ctx, pool, h.rcfg); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		pool.Close()
	})
	return h
}

// running is a pipeline running in the background.
type running struct {
	p      *pipeline.Pipeline
	stream *replication.Stream
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs a pipeline over the harness's slot and waits until it streams.
func (h *harness) start(cfg pipeline.Config) *running {
	h.t.Helper()
	cfg.Name = "test"
	cfg.Checkpoints = h.store
	if cfg.DeadLetters == nil {
		cfg.DeadLetters = h.dead
	}
	cfg.Logger = testLogger(h.t)
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 100*time.Millisecond
	}
	cfg.CheckpointInterval = 50 * time.Millisecond
	p, err := pipeline.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	rcfg := h.rcfg
	rcfg.Logger = cfg.Logger
	stream, err := replication.NewStream(h.dsn, h.pool, rcfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, stream: stream, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx, stream) }()
	h.t.Cleanup(func() { _ = r.stop() })
	pgtest.Eventually(h.t, 10*time.Second, func() bool { return stream.State() == replication.StateStreaming }, "pipeline streams")
	return r
}

// stop shuts the pipeline down cleanly and returns Run's error.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	return r.err
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// tWriter sends logs to t.Log so they show with the failing test only.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// recorder is a test sink: it records what it receives, can be made to fail
// on command and to reject events.
type recorder struct {
	mu     sync.Mutex
	events []*cdc.Event
	writes int
	fail   atomic.Bool
	reject func(*cdc.Event) bool
}

func (r *recorder) Write(ctx context.Context, b cdc.Batch) error {
	if r.fail.Load() {
		return errors.New("target unavailable (test)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	for i, e := range b.Events {
		if r.reject != nil && r.reject(e) {
			return &cdc.RejectedError{Index: i, Err: fmt.Errorf("event %s refused (test)", e.ID)}
		}
		r.events = append(r.events, e)
	}
	return nil
}

func (r *recorder) Close(context.Context) error { return nil }

func (r *recorder) snapshot() []*cdc.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) writeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// ids returns the event ids in delivery order.
func ids(events []*cdc.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// checkOrdered fails unless positions strictly increase (commit order, then
// WAL order within a transaction) and no event repeats.
func checkOrdered(t *testing.T, name string, events []*cdc.Event) {
	t.Helper()
	seen := make(map[string]bool, len(events))
	for i, e := range events {
		if seen[e.ID] {
			t.Fatalf("%s: event %s delivered twice", name, e.ID)
		}
		seen[e.ID] = true
		if i > 0 && e.Position().Compare(events[i-1].Position()) <= 0 {
			t.Fatalf("%s: event %d at %s after %s: not in commit order", name, i, e.Position(), events[i-1].Position())
		}
	}
}
