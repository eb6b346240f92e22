package checkpoint_test

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

func newStore(t *testing.T, schema string) *checkpoint.Store {
	t.Helper()
	dsn := pgtest.NewDatabase(t, pg)
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if schema != "public" {
		if _, err := pool.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
	}
	s := checkpoint.New(pool, schema)
	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Init(t.Context()); err != nil {
		t.Fatalf("second Init: %v", err)
	}
	return s
}

func TestSaveLoad(t *testing.T) {
	s := newStore(t, "helpdesk")
	ctx := t.Context()
	commit := time.Date(2026, 11, 22, 10, 0, 0, 123000, time.UTC)
	cp := cdc.Checkpoint{
		Position: cdc.Position{LSN: 0x16B3748, Index: 3}, Flush: 0x16B3000,
		CommitTime: commit, Events: 42, Pending: 7, Instance: "host:1",
	}
	if err := s.Save(ctx, "helpdesk", "bus", cp); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "other", "bus", cdc.Checkpoint{Position: cdc.Position{LSN: 1}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, "helpdesk")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("loaded %d checkpoints, want 1: %v", len(got), got)
	}
	g := got["bus"]
	if g.Position != cp.Position || g.Flush != cp.Flush || !g.CommitTime.Equal(commit) || g.Events != 42 || g.Pending != 7 || g.Instance != "host:1" || g.UpdatedAt.IsZero() {
		t.Fatalf("loaded %+v, want %+v", g, cp)
	}
	// A whole transaction (EndOfTx) round-trips.
	whole := cdc.Checkpoint{Position: cdc.Position{LSN: 0x16B3748, Index: cdc.EndOfTx}, Flush: 0x16B3790}
	if err := s.Save(ctx, "helpdesk", "bus", whole); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Load(ctx, "helpdesk")
	if got["bus"].Position != whole.Position || got["bus"].Flush != whole.Flush {
		t.Fatalf("loaded %+v, want %+v", got["bus"], whole)
	}
	if n, err := s.Delete(ctx, "helpdesk"); err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v; want 1 row", n, err)
	}
	if got, _ := s.Load(ctx, "helpdesk"); len(got) != 0 {
		t.Fatalf("after Delete: %v", got)
	}
}

// TestForwardOnly: a checkpoint never moves back, so an instance that lost
// the slot cannot undo the progress of the one that took over.
func TestForwardOnly(t *testing.T) {
	s := newStore(t, "public")
	ctx := t.Context()
	at := func(lsn cdc.LSN, idx uint32) cdc.Checkpoint {
		return cdc.Checkpoint{Position: cdc.Position{LSN: lsn, Index: idx}, Flush: lsn - 1}
	}
	steps := []struct {
		name    string
		cp      cdc.Checkpoint
		refused bool
	}{
		{"first", at(100, 0), false},
		{"later index", at(100, 5), false},
		{"same position (progress figures only)", at(100, 5), false},
		{"earlier index", at(100, 4), true},
		{"later transaction", at(200, 0), false},
		{"earlier transaction", at(150, cdc.EndOfTx), true},
	}
	for _, st := range steps {
		err := s.Save(ctx, "p", "s", st.cp)
		if st.refused != errors.Is(err, cdc.ErrCheckpointBackwards) || (!st.refused && err != nil) {
			t.Fatalf("%s: Save(%s) = %v, refused want %v", st.name, st.cp.Position, err, st.refused)
		}
	}
	got, _ := s.Load(ctx, "p")
	if got["s"].Position != (cdc.Position{LSN: 200}) {
		t.Fatalf("stored %s, want 0/C8#0", got["s"].Position)
	}
}

// TestConcurrentWriters: two instances racing to save end with the newest
// position stored.
func TestConcurrentWriters(t *testing.T) {
	s := newStore(t, "public")
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				cp := cdc.Checkpoint{Position: cdc.Position{LSN: cdc.LSN(i*2 + w + 1)}}
				if err := s.Save(ctx, "p", "s", cp); err != nil && !errors.Is(err, cdc.ErrCheckpointBackwards) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, _ := s.Load(ctx, "p")
	if got["s"].Position.LSN != 400 {
		t.Fatalf("stored %s, want LSN 0/190", got["s"].Position)
	}
}

// TestOlderTable: a checkpoint table made by an older cdc, without the
// state columns, is read as it is (cdc status alters nothing) and gains the
// columns at Init, keeping its rows; the state round-trips.
func TestOlderTable(t *testing.T) {
	dsn := pgtest.NewDatabase(t, pg)
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Exec(t.Context(), `CREATE TABLE cdc_checkpoints (
    pipeline text NOT NULL, sink text NOT NULL, lsn pg_lsn NOT NULL, tx_index bigint NOT NULL, flush_lsn pg_lsn NOT NULL,
    commit_time timestamptz NULL, events bigint NOT NULL DEFAULT 0, pending bigint NOT NULL DEFAULT 0,
    instance text NOT NULL DEFAULT '', updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, sink));
INSERT INTO cdc_checkpoints (pipeline, sink, lsn, tx_index, flush_lsn, events) VALUES ('p', 'bus', '0/16B3748', 2, '0/16B3700', 7)`)
	if err != nil {
		t.Fatal(err)
	}
	s := checkpoint.New(pool, "public")
	cps, err := s.Load(t.Context(), "p")
	if err != nil {
		t.Fatalf("load from an older table: %v", err)
	}
	if cp := cps["bus"]; cp.Events != 7 || cp.State != cdc.SinkOK || cp.Position != (cdc.Position{LSN: 0x16B3748, Index: 2}) {
		t.Fatalf("older row read as %+v", cp)
	}
	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	failing := cdc.Checkpoint{Position: cdc.Position{LSN: 0x16B3748, Index: 2}, Flush: 0x16B3700, Events: 7,
		State: cdc.SinkFailing, Since: since, Error: "broker down"}
	if err := s.Save(t.Context(), "p", "bus", failing); err != nil {
		t.Fatal(err)
	}
	cps, err = s.Load(t.Context(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if cp := cps["bus"]; cp.State != cdc.SinkFailing || !cp.Since.Equal(since) || cp.Error != "broker down" || cp.Events != 7 {
		t.Fatalf("state read back as %+v", cp)
	}
}
