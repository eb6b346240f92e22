// Package deadletter keeps the events a sink rejected permanently, in the
// table cdc_dead_letters, when the sink runs with on_error: dead_letter.
// Each row holds the pipeline and sink, the event's position, id, stream id
// and type, the error the target gave, the event as a JSON envelope (package
// envelope) and when it was written, so an operator can inspect, fix and
// re-send it. A Store is safe for concurrent use.
//
// The cdc deadletters command reads the rows (List, Get), removes them
// (Delete) and re-sends them (Retry) through the sink's own write path,
// rebuilding each event from its envelope (Letter.Event, envelope.Decode).
// Retry removes a row only once the sink accepted its event, and keeps a
// row the sink rejects again with the new error (UpdateError): at least
// once, never lost.
package deadletter

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/internal/pgtable"
)

// TableName is the name of the dead-letter table.
const TableName = "cdc_dead_letters"

// Store writes dead letters into schema.cdc_dead_letters.
type Store struct {
	pool  *pgxpool.Pool
	name  pgx.Identifier // the table
	table string         // the table, quoted, for SQL text
}

// New returns a store for schema.cdc_dead_letters. It does no I/O: call Init
// before the first Write.
func New(pool *pgxpool.Pool, schema string) *Store {
	if schema == "" {
		schema = "public"
	}
	name := pgx.Identifier{schema, TableName}
	return &Store{pool: pool, name: name, table: name.Sanitize()}
}

// Init creates the table if it does not exist.
func (s *Store) Init(ctx context.Context) error {
	_, err := pgtable.Ensure(ctx, s.pool, s.name, `CREATE TABLE IF NOT EXISTS `+s.table+` (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline    text        NOT NULL,
    sink        text        NOT NULL,
    lsn         pg_lsn      NOT NULL,  -- commit LSN of the event's transaction
    tx_index    bigint      NOT NULL,  -- index of the event within it
    event_id    text        NOT NULL,
    stream_id   text        NOT NULL,
    type        text        NOT NULL,
    error       text        NOT NULL,
    payload     jsonb       NOT NULL,  -- the event as a JSON envelope
    created_at  timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return fmt.Errorf("dead-letter table: %w", err)
	}
	return nil
}

// exists reports whether the dead-letter table exists.
func (s *Store) exists(ctx context.Context) (bool, error) {
	return pgtable.Exists(ctx, s.pool, s.name)
}

// Write stores one rejected event with the error that rejected it.
func (s *Store) Write(ctx context.Context, pipeline, sink string, e *cdc.Event, cause error) error {
	msg := "unknown error"
	if cause != nil {
		msg = cause.Error()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+`
    (pipeline, sink, lsn, tx_index, event_id, stream_id, type, error, payload)
VALUES ($1, $2, $3::text::pg_lsn, $4, $5, $6, $7, $8, $9::text::jsonb)`,
		pipeline, sink, e.LSN.String(), int64(e.Index), e.ID, e.StreamID, e.Type, msg, string(envelope.Append(nil, e)))
	if err != nil {
		return fmt.Errorf("write dead letter for event %s of sink %s: %w", e.ID, sink, err)
	}
	return nil
}

// Count returns how many dead letters a pipeline's sink has. A missing table
// counts as none.
func (s *Store) Count(ctx context.Context, pipeline, sink string) (int64, error) {
	if ok, err := s.exists(ctx); err != nil {
		return 0, fmt.Errorf("count dead letters of %s/%s: %w", pipeline, sink, err)
	} else if !ok {
		return 0, nil
	}
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.table+` WHERE pipeline = $1 AND sink = $2`, pipeline, sink).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count dead letters of %s/%s: %w", pipeline, sink, err)
	}
	return n, nil
}
