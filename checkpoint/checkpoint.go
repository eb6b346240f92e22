// Package checkpoint stores the durable position of every sink of every
// pipeline in the table cdc_checkpoints: one row per (pipeline, sink).
//
// A checkpoint says "this sink has durably accepted everything at or below
// Position", and Flush is the end LSN of the last transaction it fully
// accepted, the LSN the replication slot may confirm on the sink's behalf.
// Checkpoints only move forward: Save refuses to store a position older than
// the stored one (cdc.ErrCheckpointBackwards), so an instance that lost the
// slot can neither move a checkpoint back nor overwrite a newer one written by
// the instance that took over. This is the fencing of SPEC §3; it needs no lock or lease.
//
// A Store is safe for concurrent use.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgtable"
)

// TableName is the name of the checkpoint table.
const TableName = "cdc_checkpoints"

// Store reads and writes checkpoints in one schema of one database.
type Store struct {
	pool  *pgxpool.Pool
	name  pgx.Identifier // the table
	table string         // the table, quoted, for SQL text
}

// New returns a store for the table schema.cdc_checkpoints reached through
// pool. It does no I/O: call Init before the first Save.
func New(pool *pgxpool.Pool, schema string) *Store {
	if schema == "" {
		schema = "public"
	}
	name := pgx.Identifier{schema, TableName}
	return &Store{pool: pool, name: name, table: name.Sanitize()}
}

// Init creates the checkpoint table if it does not exist.
func (s *Store) Init(ctx context.Context) error {
	_, err := pgtable.Ensure(ctx, s.pool, s.name, `CREATE TABLE IF NOT EXISTS `+s.table+` (
    pipeline     text        NOT NULL,
    sink         text        NOT NULL,
    lsn          pg_lsn      NOT NULL,  -- commit LSN of the last accepted position
    tx_index     bigint      NOT NULL,  -- row index within that transaction; 4294967295 = the whole transaction
    flush_lsn    pg_lsn      NOT NULL,  -- end LSN of the last fully accepted transaction
    commit_time  timestamptz NULL,
    events       bigint      NOT NULL DEFAULT 0,
    pending      bigint      NOT NULL DEFAULT 0,
    instance     text        NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    state        text        NOT NULL DEFAULT 'ok',  -- ok, failing, detached, stopped
    state_since  timestamptz NULL,
    error        text        NOT NULL DEFAULT '',    -- why it fails, or why it stopped
    PRIMARY KEY (pipeline, sink)
)`)
	if err != nil {
		return fmt.Errorf("checkpoint table: %w", err)
	}
	if err := pgtable.EnsureColumns(ctx, s.pool, s.name, stateColumns); err != nil {
		return fmt.Errorf("checkpoint table: %w", err)
	}
	return nil
}

// stateColumns are the columns added after the first release: the sink's
// state, as the instance holding the slot sees it.
var stateColumns = []pgtable.Column{
	{Name: "state", Def: "text NOT NULL DEFAULT 'ok'"},
	{Name: "state_since", Def: "timestamptz NULL"},
	{Name: "error", Def: "text NOT NULL DEFAULT ''"},
}

// exists reports whether the checkpoint table exists.
func (s *Store) exists(ctx context.Context) (bool, error) {
	return pgtable.Exists(ctx, s.pool, s.name)
}

// Load returns the checkpoints of a pipeline by sink name. A sink without a
// row is absent from the map; a missing table gives an empty map.
func (s *Store) Load(ctx context.Context, pipeline string) (map[string]cdc.Checkpoint, error) {
	if ok, err := s.exists(ctx); err != nil {
		return nil, fmt.Errorf("load checkpoints of pipeline %s: %w", pipeline, err)
	} else if !ok {
		return map[string]cdc.Checkpoint{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT sink, lsn::text, tx_index, flush_lsn::text, commit_time, events, pending, instance, updated_at,
    state, state_since, error
FROM `+s.table+` WHERE pipeline = $1`, pipeline)
	if pgErrCode(err) == "42703" {
		// A table of an older cdc, not yet given the state columns
		// (cdc status does not alter tables).
		rows, err = s.pool.Query(ctx, `SELECT sink, lsn::text, tx_index, flush_lsn::text, commit_time, events, pending, instance, updated_at,
    'ok', NULL::timestamptz, ''
FROM `+s.table+` WHERE pipeline = $1`, pipeline)
	}
	if err != nil {
		return nil, fmt.Errorf("load checkpoints of pipeline %s: %w", pipeline, err)
	}
	defer rows.Close()
	out := make(map[string]cdc.Checkpoint)
	for rows.Next() {
		var (
			sink, lsn, flush string
			idx              int64
			commit, since    *time.Time
			state            string
			cp               cdc.Checkpoint
		)
		if err := rows.Scan(&sink, &lsn, &idx, &flush, &commit, &cp.Events, &cp.Pending, &cp.Instance, &cp.UpdatedAt,
			&state, &since, &cp.Error); err != nil {
			return nil, fmt.Errorf("load checkpoints of pipeline %s: %w", pipeline, err)
		}
		if cp.Position.LSN, err = cdc.ParseLSN(lsn); err != nil {
			return nil, fmt.Errorf("load checkpoint of %s/%s: %w", pipeline, sink, err)
		}
		if cp.Flush, err = cdc.ParseLSN(flush); err != nil {
			return nil, fmt.Errorf("load checkpoint of %s/%s: %w", pipeline, sink, err)
		}
		cp.Position.Index = uint32(idx)
		if commit != nil {
			cp.CommitTime = *commit
		}
		if since != nil {
			cp.Since = *since
		}
		cp.State = cdc.SinkState(state)
		out[sink] = cp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load checkpoints of pipeline %s: %w", pipeline, err)
	}
	return out, nil
}

// Save stores the checkpoint of one sink. Saving the stored position again
// updates the progress figures; saving an older position than the stored one
// fails with cdc.ErrCheckpointBackwards and changes nothing.
func (s *Store) Save(ctx context.Context, pipeline, sink string, cp cdc.Checkpoint) error {
	var commit, since *time.Time
	if !cp.CommitTime.IsZero() {
		commit = &cp.CommitTime
	}
	if !cp.Since.IsZero() {
		since = &cp.Since
	}
	state := cp.State
	if state == "" {
		state = cdc.SinkOK
	}
	var stored string
	var storedIdx int64
	err := s.pool.QueryRow(ctx, `INSERT INTO `+s.table+` AS c
    (pipeline, sink, lsn, tx_index, flush_lsn, commit_time, events, pending, instance, updated_at, state, state_since, error)
VALUES ($1, $2, $3::text::pg_lsn, $4, $5::text::pg_lsn, $6, $7, $8, $9, now(), $10, $11, $12)
ON CONFLICT (pipeline, sink) DO UPDATE SET
    lsn = excluded.lsn, tx_index = excluded.tx_index,
    flush_lsn = greatest(c.flush_lsn, excluded.flush_lsn),
    commit_time = coalesce(excluded.commit_time, c.commit_time),
    events = greatest(c.events, excluded.events), pending = excluded.pending,
    instance = excluded.instance, updated_at = now(),
    state = excluded.state, state_since = excluded.state_since, error = excluded.error
WHERE (c.lsn, c.tx_index) <= (excluded.lsn, excluded.tx_index)
RETURNING lsn::text, tx_index`,
		pipeline, sink, cp.Position.LSN.String(), int64(cp.Position.Index), cp.Flush.String(),
		commit, cp.Events, cp.Pending, cp.Instance, string(state), since, cp.Error).Scan(&stored, &storedIdx)
	if errors.Is(err, pgx.ErrNoRows) {
		cur, lerr := s.Load(ctx, pipeline)
		if lerr != nil {
			return fmt.Errorf("save checkpoint %s/%s at %s: %w", pipeline, sink, cp.Position, cdc.ErrCheckpointBackwards)
		}
		return fmt.Errorf("save checkpoint %s/%s at %s (stored: %s): %w", pipeline, sink, cp.Position, cur[sink].Position, cdc.ErrCheckpointBackwards)
	}
	if err != nil {
		return fmt.Errorf("save checkpoint %s/%s: %w", pipeline, sink, err)
	}
	return nil
}

// Delete removes the checkpoints of a pipeline and returns how many rows it
// removed. A missing table counts as no rows.
func (s *Store) Delete(ctx context.Context, pipeline string) (int64, error) {
	if ok, err := s.exists(ctx); err != nil {
		return 0, fmt.Errorf("delete checkpoints of pipeline %s: %w", pipeline, err)
	} else if !ok {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE pipeline = $1`, pipeline)
	if err != nil {
		return 0, fmt.Errorf("delete checkpoints of pipeline %s: %w", pipeline, err)
	}
	return tag.RowsAffected(), nil
}

// pgErrCode returns the SQLSTATE of err, or "".
func pgErrCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
