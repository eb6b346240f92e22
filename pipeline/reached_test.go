package pipeline_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
)

// TestReached: the LSN read with pg_current_wal_lsn() right after a commit,
// on the committing connection, is passed by a sink's reached LSN once the
// sink has durably written that commit's events, and not before, even when
// nothing else is committed after it; Config.Reached reports every move.
func TestReached(t *testing.T) {
	h := newHarness(t)
	rec, held := &recorder{}, &gate{blocked: make(chan struct{}), release: make(chan struct{})}
	var (
		mu    sync.Mutex
		moves = map[string][]cdc.LSN{}
	)
	r := h.start(pipeline.Config{
		Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: rec}, {Name: "held", Sink: held}},
		Reached: func(sink string, lsn cdc.LSN) {
			mu.Lock()
			defer mu.Unlock()
			moves[sink] = append(moves[sink], lsn)
		},
	})
	reached := func(sink string) cdc.LSN {
		for _, s := range r.p.Status() {
			if s.Name == sink {
				return s.Reached
			}
		}
		t.Fatalf("no sink %s", sink)
		return 0
	}
	hd := marten.NewHelpdesk(rand.New(rand.NewPCG(7, 7)))
	ctx := t.Context()
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for i := range 5 {
		stream, events := hd.Next()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := marten.QuickAppend(ctx, tx, "public", stream, "incident", marten.DefaultTenantID, events); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var text string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&text); err != nil {
			t.Fatal(err)
		}
		lsn, err := cdc.ParseLSN(text)
		if err != nil {
			t.Fatal(err)
		}
		pgtest.Eventually(t, 10*time.Second, func() bool { return reached("rec") >= lsn }, "append %d: sink rec reaches %s", i, lsn)
		// Reached implies written: the append's last event is in the sink.
		if got := rec.snapshot(); len(got) == 0 || got[len(got)-1].ID != events[len(events)-1].ID {
			t.Fatalf("append %d: reached %s before the append's events were written", i, reached("rec"))
		}
		if i == 0 {
			<-held.blocked
		}
		if got := reached("held"); got >= lsn {
			t.Fatalf("append %d: the held sink reached %s past %s while its write is blocked", i, got, lsn)
		}
	}
	close(held.release)
	var text string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	last, _ := cdc.ParseLSN(text)
	pgtest.Eventually(t, 10*time.Second, func() bool { return reached("held") >= last }, "sink held reaches %s once released", last)
	if held.count() != rec.count() {
		t.Fatalf("held has %d events, rec %d", held.count(), rec.count())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, sink := range []string{"rec", "held"} {
		m := moves[sink]
		if len(m) == 0 || m[len(m)-1] != reached(sink) {
			t.Fatalf("sink %s: moves %v, reached %s", sink, m, reached(sink))
		}
		for i := 1; i < len(m); i++ {
			if m[i] <= m[i-1] {
				t.Fatalf("sink %s: reached moved from %s to %s", sink, m[i-1], m[i])
			}
		}
	}
}
