package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/examples/helpdesk"
)

// TestHelpdeskReadModels applies Helpdesk events through the example's SQL
// projections, in batches of various sizes, pipelined or applied one event
// at a time (a Go projection among the routes), and compares the read
// models with a recomputation in Go.
func TestHelpdeskReadModels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		batch   int
		applied bool // add a Go projection: no pipelining
	}{
		{"one event per batch", 1, false},
		{"batches of 7", 7, false},
		{"batches of 250", 250, false},
		{"one batch", 1500, false},
		{"batches of 100 applied", 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool, _ := helpdeskSink(t)
			routes, err := helpdeskRoutes()
			if err != nil {
				t.Fatal(err)
			}
			if tc.applied {
				mustExec(t, pool, `CREATE TABLE seen (n int NOT NULL)`)
				mustExec(t, pool, `INSERT INTO seen VALUES (0)`)
				routes = append(routes, Route{Name: "seen", On: []string{"*"}, Projection: countEvents{}})
			}
			s := newSink(t, pool, Config{Routes: routes})
			events := newFeed(1).next(1500)
			for i := 0; i < len(events); i += tc.batch {
				write(t, s, events[i:min(i+tc.batch, len(events))])
			}
			checkModels(t, pool, events)
			if tc.applied {
				if n := count(t, pool, `SELECT n FROM seen`); n != len(events) {
					t.Errorf("Go projection saw %d events, want %d", n, len(events))
				}
			}
			if p, ok := checkpointOf(t, s); !ok || p != events[len(events)-1].Position() {
				t.Errorf("checkpoint %v %v, want %v", p, ok, events[len(events)-1].Position())
			}
		})
	}
}

// countEvents is a Go projection (not a Batcher) counting the events it
// sees in table seen.
type countEvents struct{}

func (countEvents) Apply(ctx context.Context, tx pgx.Tx, e *cdc.Event) error {
	var n int
	if err := tx.QueryRow(ctx, `SELECT n FROM seen FOR UPDATE`).Scan(&n); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE seen SET n = $1`, n+1)
	return err
}

// TestExactlyOnce delivers batches again, overlapping, and through a new
// sink after a simulated crash: the read models (whose counters are not
// idempotent) stay those of each event applied once.
func TestExactlyOnce(t *testing.T) {
	pool, s := helpdeskSink(t)
	events := newFeed(2).next(600)

	write(t, s, events[:200])
	before := readModels(t, pool)
	write(t, s, events[:200]) // the same batch again
	if after := readModels(t, pool); !equalModels(before, after) {
		t.Fatal("writing the same batch twice changed the read models")
	}
	write(t, s, events[100:300]) // overlapping: only 200..299 are new
	checkModels(t, pool, events[:300])

	// A crash after the target committed and before the pipeline saved its
	// own checkpoint: a new sink on the same target gets the events again.
	s2 := newSink(t, pool, Config{Routes: s.routes})
	if p, ok := checkpointOf(t, s2); !ok || p != events[299].Position() {
		t.Fatalf("new sink reads checkpoint %v %v, want %v", p, ok, events[299].Position())
	}
	write(t, s2, events[:400])
	checkModels(t, pool, events[:400])
	write(t, s2, events[150:600])
	checkModels(t, pool, events)

	// The first sink's view of the checkpoint is stale now: its batch is
	// rolled back (a statement fails on state it does not expect, or the
	// compare-and-set of the checkpoint refuses it), and skipped once it
	// has read the checkpoint again.
	if err := s.Write(context.Background(), cdc.Batch{Events: events[300:600]}); err != nil && !errors.Is(err, errCheckpointMoved) {
		t.Fatalf("stale sink: got %v, want nil or errCheckpointMoved", err)
	}
	checkModels(t, pool, events)
	write(t, s, events[300:600])
	checkModels(t, pool, events)
}

// TestCheckpointCompareAndSet: two sinks with the same names on one target
// (an instance that lost the slot and the one that took over) never apply
// an event twice, even with statements that would succeed twice.
func TestCheckpointCompareAndSet(t *testing.T) {
	pool := newTarget(t, `CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0)`)
	r, err := SQL("counter", []string{"*"}, `UPDATE counter SET n = n + 1`)
	if err != nil {
		t.Fatal(err)
	}
	a := newSink(t, pool, Config{Routes: []Route{r}})
	b := newSink(t, pool, Config{Routes: []Route{r}})
	events := make([]*cdc.Event, 30)
	for i := range events {
		events[i] = testEvent(int64(i), "tick", `{}`)
	}
	write(t, a, events[:10])
	write(t, b, events[:20]) // b reads the checkpoint first: applies 10..19
	// a believes the checkpoint is at event 9.
	if err := a.Write(context.Background(), cdc.Batch{Events: events[:30]}); !errors.Is(err, errCheckpointMoved) {
		t.Fatalf("stale sink: got %v, want errCheckpointMoved", err)
	}
	if n := count(t, pool, `SELECT n FROM counter`); n != 20 {
		t.Fatalf("counter %d after the refused batch, want 20", n)
	}
	write(t, a, events[:30]) // reads the checkpoint again: applies 20..29
	// Now b is stale.
	if err := b.Write(context.Background(), cdc.Batch{Events: events[:30]}); !errors.Is(err, errCheckpointMoved) {
		t.Fatalf("stale sink: got %v, want errCheckpointMoved", err)
	}
	write(t, b, events[:30]) // nothing new
	if n := count(t, pool, `SELECT n FROM counter`); n != 30 {
		t.Fatalf("counter %d, want 30", n)
	}
}

// equalModels reports whether two readings of the read models are equal.
func equalModels(a, b helpdesk.Models) bool {
	return helpdesk.Diff(a, b) == ""
}

// TestCanceledWrite: a Write whose context ends before the commit leaves
// nothing behind, like a process killed in the middle of a batch.
func TestCanceledWrite(t *testing.T) {
	pool, s := helpdeskSink(t)
	mustExec(t, pool, `CREATE TABLE slow (id uuid PRIMARY KEY)`)
	slow, err := SQL("slow", []string{"incident_closed"}, `INSERT INTO slow SELECT $id FROM pg_sleep(10)`)
	if err != nil {
		t.Fatal(err)
	}
	s = newSink(t, pool, Config{Routes: append(append([]Route(nil), s.routes...), slow)})
	events := newFeed(3).next(300)
	closed := 0
	for _, e := range events {
		if e.Type == "incident_closed" {
			closed++
		}
	}
	if closed == 0 {
		t.Fatal("no incident_closed event in the feed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Write(ctx, cdc.Batch{Events: events}); err == nil {
		t.Fatal("Write succeeded despite the deadline")
	}
	if got := readModels(t, pool); len(got.Details)+len(got.Short)+len(got.Summary) != 0 {
		t.Fatalf("a canceled Write left rows behind: %d incidents", len(got.Details))
	}
	if _, ok := checkpointOf(t, s); ok {
		t.Fatal("a canceled Write moved the checkpoint")
	}
	fast, err := SQL("slow", []string{"incident_closed"}, `INSERT INTO slow VALUES ($id)`)
	if err != nil {
		t.Fatal(err)
	}
	s = newSink(t, pool, Config{Routes: append(append([]Route(nil), s.routes[:len(s.routes)-1]...), fast)})
	write(t, s, events)
	checkModels(t, pool, events)
	if n := count(t, pool, `SELECT count(*) FROM slow`); n != closed {
		t.Fatalf("%d rows in slow, want %d", n, closed)
	}
}

// TestQueryExecModes runs the Helpdesk projections, a rejected event and
// Check through pools in every pgx query execution mode (pgbouncer setups
// use the simple protocol or exec mode).
func TestQueryExecModes(t *testing.T) {
	for _, mode := range []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
	} {
		t.Run(mode.String(), func(t *testing.T) {
			admin := newTarget(t, helpdesk.DDL)
			cfg := admin.Config().Copy()
			cfg.ConnConfig.DefaultQueryExecMode = mode
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			routes, err := helpdeskRoutes()
			if err != nil {
				t.Fatal(err)
			}
			s := newSink(t, pool, Config{Routes: routes})
			if problems := s.Check(context.Background()); len(problems) > 0 {
				t.Fatalf("Check:\n%v", problems)
			}
			events := newFeed(5).next(400)
			for i := 0; i < 300; i += 50 {
				write(t, s, events[i:i+50])
			}
			checkModels(t, pool, events[:300])
			rest := events[300:]
			var poison int
			for i, e := range rest {
				if e.Type == "incident_logged" {
					poison = i
					break
				}
			}
			good := rest[poison].Data
			rest[poison].Data = []byte(`{"CustomerId":"not a uuid"}`)
			rej := rejected(t, s.Write(context.Background(), cdc.Batch{Events: rest}))
			if rej.Index != poison || !strings.Contains(rej.Error(), "22P02") {
				t.Fatalf("got %v, want event %d rejected with 22P02", rej, poison)
			}
			rest[poison].Data = good
			write(t, s, events)
			checkModels(t, pool, events)
		})
	}
}
