package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/examples/helpdesk"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

// newTarget returns a pool on a fresh database, running ddl first if set.
func newTarget(t testing.TB, ddl string) *pgxpool.Pool {
	t.Helper()
	dsn := pgtest.NewDatabase(t, pg)
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if ddl != "" {
		mustExec(t, pool, ddl)
	}
	return pool
}

// exec runs sql on pool and fails the test on error.
func mustExec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newSink returns a sink on pool; Pipeline and Sink default to "test" and
// "readmodel".
func newSink(t testing.TB, pool *pgxpool.Pool, cfg Config) *Sink {
	t.Helper()
	cfg.Pool = pool
	if cfg.Pipeline == "" {
		cfg.Pipeline = "test"
	}
	if cfg.Sink == "" {
		cfg.Sink = "readmodel"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// tWriter sends logs to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// helpdeskSink returns a target with the Helpdesk read models and a sink
// keeping them.
func helpdeskSink(t testing.TB) (*pgxpool.Pool, *Sink) {
	t.Helper()
	pool := newTarget(t, helpdesk.DDL)
	routes, err := helpdeskRoutes()
	if err != nil {
		t.Fatal(err)
	}
	return pool, newSink(t, pool, Config{Routes: routes})
}

// write writes the events and fails the test on error.
func write(t testing.TB, s *Sink, events []*cdc.Event) {
	t.Helper()
	if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
		t.Fatalf("write %d events: %v", len(events), err)
	}
}

// rejected returns the RejectedError of err, failing the test if it is not
// one.
func rejected(t testing.TB, err error) *cdc.RejectedError {
	t.Helper()
	var rej *cdc.RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("got %v, want a RejectedError", err)
	}
	return rej
}

// feed turns the Helpdesk generator into events as the replication stream
// delivers them: each call of Next is one transaction.
type feed struct {
	hd       *marten.Helpdesk
	lsn      cdc.LSN
	seq      int64
	versions map[string]int64
	pending  []*cdc.Event
}

func newFeed(seed uint64) *feed {
	return &feed{
		hd:       marten.NewHelpdesk(mrand.New(mrand.NewPCG(seed, 6))),
		lsn:      0x16B0000,
		versions: map[string]int64{},
	}
}

// next returns the next n events.
func (f *feed) next(n int) []*cdc.Event {
	for len(f.pending) < n {
		stream, evs := f.hd.Next()
		f.lsn += 0x100
		for i, ne := range evs {
			f.seq++
			f.versions[stream]++
			f.pending = append(f.pending, &cdc.Event{
				ID: ne.ID, SeqID: f.seq, StreamID: stream, Version: f.versions[stream],
				Type: ne.Type, DotnetType: ne.DotnetType, TenantID: "*DEFAULT*",
				Timestamp: ne.Timestamp, Data: ne.Data, CorrelationID: ne.CorrelationID,
				CausationID: ne.CausationID, Headers: ne.Headers,
				LSN: f.lsn, Index: uint32(i), CommitTime: ne.Timestamp, TxID: uint32(f.seq),
			})
		}
	}
	out := f.pending[:n:n]
	f.pending = f.pending[n:]
	return out
}

// helpdeskRoutes returns the projections of the helpdesk example.
func helpdeskRoutes() ([]Route, error) {
	var out []Route
	for _, p := range helpdesk.Projections() {
		r, err := SQL(p.Name, p.On, p.SQL...)
		if err != nil {
			return nil, fmt.Errorf("helpdesk example: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// readModels reads the Helpdesk read models back.
func readModels(t testing.TB, pool *pgxpool.Pool) helpdesk.Models {
	t.Helper()
	m, err := helpdesk.Read(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkModels fails the test unless the read models in pool are those
// recomputed from events.
func checkModels(t testing.TB, pool *pgxpool.Pool, events []*cdc.Event) {
	t.Helper()
	if diff := helpdesk.Diff(helpdesk.Recompute(events), readModels(t, pool)); diff != "" {
		t.Fatalf("read models differ from the recomputation:\n%s", diff)
	}
}

// testEvent returns an event of type typ with data, at position seq (four
// events per transaction).
func testEvent(seq int64, typ, data string) *cdc.Event {
	return &cdc.Event{
		ID:        fmt.Sprintf("00000000-0000-4000-8000-%012x", seq),
		SeqID:     seq,
		StreamID:  fmt.Sprintf("a1b2c3d4-0000-4000-8000-%012d", seq%5),
		Version:   seq/5 + 1,
		Type:      typ,
		TenantID:  "*DEFAULT*",
		Timestamp: time.Date(2026, 11, 22, 10, 0, 0, int(seq)*1000, time.UTC),
		Data:      json.RawMessage(data),
		LSN:       cdc.LSN(0x16B0000 + seq/4*0x100),
		Index:     uint32(seq % 4),
	}
}

// count returns the result of a count query.
func count(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// checkpointOf returns the sink's checkpoint in the target, failing the
// test on error.
func checkpointOf(t testing.TB, s *Sink) (cdc.Position, bool) {
	t.Helper()
	p, ok, err := s.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p, ok
}
