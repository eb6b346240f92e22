package marten

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc"
)

// Queryer runs a query that returns rows. *pgx.Conn, pgx.Tx and
// *pgxpool.Pool satisfy it.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Events reads the events of schema.mt_events (every partition, archived
// rows included; tombstones left out) ordered by stream and version, with
// the fields tests and the demo recompute read models from: ID, SeqID,
// StreamID, Version, Type, TenantID, Timestamp and Data.
func Events(ctx context.Context, db Queryer, schema string) ([]*cdc.Event, error) {
	if err := ValidateSchema(schema); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	rows, err := db.Query(ctx, `SELECT id::text, seq_id, stream_id::text, version, type, tenant_id, timestamp, data::text
FROM `+quoteSchema(schema)+`.mt_events WHERE type <> 'tombstone' ORDER BY stream_id, version`)
	if err != nil {
		return nil, fmt.Errorf("read events of %s.mt_events: %w", schema, err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*cdc.Event, error) {
		e := &cdc.Event{}
		var data string
		err := r.Scan(&e.ID, &e.SeqID, &e.StreamID, &e.Version, &e.Type, &e.TenantID, &e.Timestamp, &data)
		e.Data = []byte(data)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read events of %s.mt_events: %w", schema, err)
	}
	return events, nil
}
