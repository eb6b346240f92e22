package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgtable"
)

// checkpointDDL creates the checkpoint table t.
func checkpointDDL(t table) string {
	return `CREATE TABLE IF NOT EXISTS ` + t.sql() + ` (
    pipeline   text        NOT NULL,
    sink       text        NOT NULL,
    lsn        pg_lsn      NOT NULL,  -- commit LSN of the last event written
    tx_index   bigint      NOT NULL,  -- row index of that event within its transaction
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, sink)
)`
}

// checkpointSQL is the statement that moves the checkpoint in the batch's
// transaction: $1 pipeline, $2 sink, $3 and $4 the new position, $5 and $6
// the position the sink read or committed last (NULL when there was no
// row). It inserts the row, or updates it only if it still holds $5/$6 (a
// compare-and-set: no other writer moved it meanwhile) and the new position
// is further (checkpoints only move forward). It affects one row when the
// checkpoint moved, none otherwise.
func checkpointSQL(t table) string {
	return `INSERT INTO ` + t.sql() + ` AS t (pipeline, sink, lsn, tx_index, updated_at)
VALUES ($1, $2, $3::text::pg_lsn, $4::bigint, now())
ON CONFLICT (pipeline, sink) DO UPDATE
SET lsn = excluded.lsn, tx_index = excluded.tx_index, updated_at = excluded.updated_at
WHERE (t.lsn, t.tx_index) = ($5::text::pg_lsn, $6::bigint)
  AND (excluded.lsn, excluded.tx_index) > (t.lsn, t.tx_index)`
}

// errCheckpointMoved is why a batch is rolled back when the stored
// checkpoint is not the one the sink last saw: another writer (an instance
// that took over, or a second sink configured with the same names) moved
// it. Write returns it as a plain error; the retry reads the checkpoint
// again and skips what it covers.
var errCheckpointMoved = errors.New("the sink's checkpoint in the target moved while writing (another writer with the same pipeline and sink names?); the batch was rolled back")

// checkpointArgs returns the arguments of checkpointSQL for moving the
// checkpoint to p.
func (s *Sink) checkpointArgs(p cdc.Position) []any {
	var floorLSN, floorIdx any
	if s.hasFloor {
		floorLSN, floorIdx = s.floor.LSN.String(), int64(s.floor.Index)
	}
	return []any{s.pipeline, s.sink, p.LSN.String(), int64(p.Index), floorLSN, floorIdx}
}

// readCheckpoint reads the sink's row of the checkpoint table. A missing
// row or table gives ok false.
func (s *Sink) readCheckpoint(ctx context.Context) (pos cdc.Position, ok bool, err error) {
	var lsn string
	var idx int64
	err = s.pool.QueryRow(ctx, `SELECT lsn::text, tx_index FROM `+s.cpTable.sql()+` WHERE pipeline = $1 AND sink = $2`,
		s.pipeline, s.sink).Scan(&lsn, &idx)
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pe) && pe.Code == "42P01":
		return cdc.Position{}, false, nil
	case err != nil:
		return cdc.Position{}, false, fmt.Errorf("read checkpoint %s/%s from %s: %w", s.pipeline, s.sink, s.cpTable, err)
	}
	l, err := cdc.ParseLSN(lsn)
	if err != nil {
		return cdc.Position{}, false, fmt.Errorf("read checkpoint %s/%s from %s: %w", s.pipeline, s.sink, s.cpTable, err)
	}
	if idx < 0 || idx > int64(cdc.EndOfTx) {
		return cdc.Position{}, false, fmt.Errorf("read checkpoint %s/%s from %s: tx_index %d out of range", s.pipeline, s.sink, s.cpTable, idx)
	}
	return cdc.Position{LSN: l, Index: uint32(idx)}, true, nil
}

// loadFloor reads the stored checkpoint into the floor.
func (s *Sink) loadFloor(ctx context.Context) error {
	pos, ok, err := s.readCheckpoint(ctx)
	if err != nil {
		return err
	}
	s.floor, s.hasFloor, s.floorKnown = pos, ok, true
	return nil
}

// setFloor records a checkpoint the sink committed.
func (s *Sink) setFloor(p cdc.Position) {
	s.floor, s.hasFloor, s.floorKnown = p, true, true
}

// Checkpoint returns the position committed with the last batch written to
// the target, as stored in the target's checkpoint table: everything at or
// below it has been applied, exactly once. ok is false when the sink has
// never committed a batch (no row, or no table yet). The pipeline resumes
// the sink from there after a crash: the target's checkpoint may be ahead
// of the pipeline's own, which is saved after Write returns.
func (s *Sink) Checkpoint(ctx context.Context) (cdc.Position, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return cdc.Position{}, false, errClosed
	}
	if err := s.loadFloor(ctx); err != nil {
		s.floorKnown = false
		return cdc.Position{}, false, err
	}
	return s.floor, s.hasFloor, nil
}

// ResetCheckpoint deletes the sink's checkpoint row in the target, so that
// the next Write applies every event it is given instead of skipping those
// the target already has: for a replay of the sink (cdc replay) after its
// read models have been emptied. Only the instance running the sink should
// call it; a missing table or row is fine.
func (s *Sink) ResetCheckpoint(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM `+s.cpTable.sql()+` WHERE pipeline = $1 AND sink = $2`, s.pipeline, s.sink)
	var pe *pgconn.PgError
	if err != nil && !(errors.As(err, &pe) && pe.Code == "42P01") {
		s.floorKnown = false
		return fmt.Errorf("reset checkpoint %s/%s in %s: %w", s.pipeline, s.sink, s.cpTable, err)
	}
	s.floor, s.hasFloor, s.floorKnown = cdc.Position{}, false, true
	return nil
}

// querier runs statements: a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ensureTable creates table t with ddl (and its schema) if it does not
// exist, and reports whether it did (see package pgtable).
func ensureTable(ctx context.Context, q querier, t table, ddl string) (bool, error) {
	if ok, err := pgtable.Exists(ctx, q, t.ident()); err != nil || ok {
		return false, err
	}
	if t.schema != "" {
		if err := pgtable.EnsureSchema(ctx, q, t.schema); err != nil {
			return false, err
		}
	}
	return pgtable.Ensure(ctx, q, t.ident(), ddl)
}

// Prepare creates the checkpoint table, and in ModeEvents the events table
// (and their schemas), if they do not exist; the tables of projections are
// the user's to create. Write prepares the sink itself when Prepare was not
// called. Two instances preparing at once is fine.
func (s *Sink) Prepare(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return s.prepare(ctx)
}

// prepare is Prepare with s.mu held.
func (s *Sink) prepare(ctx context.Context) error {
	tables := []struct {
		t   table
		ddl string
	}{{s.cpTable, checkpointDDL(s.cpTable)}}
	if s.events != nil {
		tables = append(tables, struct {
			t   table
			ddl string
		}{s.events.table, s.events.ddl()})
	}
	for _, tb := range tables {
		created, err := ensureTable(ctx, s.pool, tb.t, tb.ddl)
		if err != nil {
			return fmt.Errorf("postgres sink %s: %w", s.sink, err)
		}
		if created {
			s.log.Info("table created", "table", tb.t.String())
		}
	}
	s.prepared = true
	return nil
}

// Close makes the sink refuse further calls. It does not close the pool,
// which belongs to the caller. Every Write that returned nil is committed:
// there is nothing to flush.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
