package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// conformanceDDL is the read model of the projections mode of the
// conformance suite: one row per event applied, in the order applied (seq),
// refusing events of type "poison".
const conformanceDDL = `CREATE TABLE conformance_applied (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id  uuid   NOT NULL,
    stream_id text   NOT NULL,
    version   bigint NOT NULL,
    type      text   NOT NULL CONSTRAINT conformance_not_poison CHECK (type <> 'poison')
)`

// TestConformance runs the sink conformance suite in both modes against a
// fresh database per subtest; both modes are idempotent (the checkpoint in
// the target, and ON CONFLICT (id) DO NOTHING in events mode).
//
//   - events: the default events table, with a check constraint added that
//     refuses events of type "poison"; one ordering unit, read by seq_id.
//   - projections: a SQL projection of every event into
//     conformance_applied, whose check constraint refuses the poison; one
//     ordering unit, read in the order rows were inserted.
//
// The poison is an event of type "poison", which fails the check
// constraint (SQLSTATE 23514). The target hangs by a lock on the table,
// held in access exclusive mode by another transaction.
func TestConformance(t *testing.T) {
	projection, err := SQL("conformance_applied", []string{"*"},
		`insert into conformance_applied (event_id, stream_id, version, type) values ($id, $stream_id, $version, $type)`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode  Mode
		cfg   Config
		ddl   string // run on the fresh database, before the sink's Prepare
		setup string // run after the sink's Prepare
		table string
		read  string
	}{
		{
			mode:  ModeEvents,
			cfg:   Config{Mode: ModeEvents},
			setup: `ALTER TABLE ` + DefaultTable + ` ADD CONSTRAINT conformance_not_poison CHECK (type <> 'poison')`,
			table: DefaultTable,
			read:  `SELECT id::text, stream_id, version FROM ` + DefaultTable + ` ORDER BY seq_id`,
		},
		{
			mode:  ModeProjections,
			cfg:   Config{Routes: []Route{projection}},
			ddl:   conformanceDDL,
			table: "conformance_applied",
			read:  `SELECT event_id::text, stream_id, version FROM conformance_applied ORDER BY seq`,
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			sinktest.Run(t, sinktest.Harness{
				Redelivery: sinktest.Idempotent,
				New: func(t *testing.T) (cdc.Sink, sinktest.Target) {
					pool := newTarget(t, tt.ddl)
					s := newSink(t, pool, tt.cfg)
					if err := s.Prepare(context.Background()); err != nil {
						t.Fatal(err)
					}
					if tt.setup != "" {
						mustExec(t, pool, tt.setup)
					}
					return s, sinktest.Target{
						Read: func(t testing.TB) []sinktest.Unit {
							return []sinktest.Unit{{Name: tt.table, Records: readRecords(t, pool, tt.read)}}
						},
						Block:  func(t testing.TB) (<-chan struct{}, func()) { return lockTable(t, pool, tt.table) },
						Reopen: func(t *testing.T) cdc.Sink { return newSink(t, pool, tt.cfg) },
					}
				},
				Poison: func(e *cdc.Event) { e.Type = "poison" },
			})
		})
	}
}

// readRecords runs query, which selects an event id, a stream id and a
// version, in order.
func readRecords(t testing.TB, pool *pgxpool.Pool, query string) []sinktest.Record {
	t.Helper()
	rows, err := pool.Query(context.Background(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	records, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sinktest.Record, error) {
		var r sinktest.Record
		err := row.Scan(&r.ID, &r.StreamID, &r.Version)
		return r, err
	})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return records
}

// lockTable locks table in access exclusive mode in a transaction of its
// own until unblock is called. hung is closed once another session waits
// for the lock, found by polling pg_locks.
func lockTable(t testing.TB, pool *pgxpool.Pool, table string) (hung <-chan struct{}, unblock func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, `LOCK TABLE `+pgx.Identifier{table}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`)
	}
	if err != nil {
		conn.Release()
		t.Fatalf("lock %s: %v", table, err)
	}

	waiting := make(chan struct{})
	stop := make(chan struct{})
	var polled sync.WaitGroup
	polled.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted`, table).Scan(&n)
			switch {
			case err != nil:
				t.Errorf("look for sessions waiting for the lock on %s: %v", table, err)
				return
			case n > 0:
				close(waiting)
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	})

	var once sync.Once
	return waiting, func() {
		once.Do(func() {
			close(stop)
			polled.Wait()
			if err := tx.Rollback(ctx); err != nil {
				t.Errorf("unlock %s: %v", table, err)
			}
			conn.Release()
		})
	}
}
