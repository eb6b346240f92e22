package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/martencdc/cdc"
)

// eventsColumns are the columns of the events table, in field order, with
// their types.
var eventsColumns = [numFields]struct{ name, typ string }{
	fieldID:            {"id", "uuid"},
	fieldSeqID:         {"seq_id", "bigint"},
	fieldStreamID:      {"stream_id", "text"},
	fieldVersion:       {"version", "bigint"},
	fieldType:          {"type", "text"},
	fieldDotnetType:    {"dotnet_type", "text"},
	fieldTenantID:      {"tenant_id", "text"},
	fieldTimestamp:     {"timestamp", "timestamptz"},
	fieldData:          {"data", "jsonb"},
	fieldCorrelationID: {"correlation_id", "text"},
	fieldCausationID:   {"causation_id", "text"},
	fieldHeaders:       {"headers", "jsonb"},
	fieldUserName:      {"user_name", "text"},
	fieldLSN:           {"lsn", "pg_lsn"},
	fieldCommitTime:    {"commit_time", "timestamptz"},
}

// eventsNotNull are the columns of the events table that are never NULL.
var eventsNotNull = map[field]bool{
	fieldID: true, fieldSeqID: true, fieldStreamID: true, fieldVersion: true,
	fieldType: true, fieldTenantID: true, fieldData: true, fieldLSN: true,
}

// eventsProjection is the projection of ModeEvents: it copies events into
// a table, idempotent on the event id. It is a Batcher (one row per event,
// for finding a failing event); Write sends a whole batch with writeEvents.
type eventsProjection struct {
	table  table
	insert string // inserts the rows of 15 text arrays, skipping known ids
}

func newEventsProjection(t table) *eventsProjection {
	cols := make([]string, numFields)
	params := make([]string, numFields)
	casts := make([]string, numFields)
	for i, c := range eventsColumns {
		cols[i] = pgx.Identifier{c.name}.Sanitize()
		params[i] = fmt.Sprintf("$%d::text[]", i+1)
		casts[i] = cols[i]
		if c.typ != "text" {
			casts[i] += "::" + c.typ
		}
	}
	list := strings.Join(cols, ", ")
	return &eventsProjection{
		table: t,
		insert: `INSERT INTO ` + t.sql() + ` (` + list + `)
SELECT ` + strings.Join(casts, ", ") + `
FROM unnest(` + strings.Join(params, ", ") + `) AS u(` + list + `)
ON CONFLICT (id) DO NOTHING`,
	}
}

// ddl creates the events table.
func (p *eventsProjection) ddl() string {
	var b strings.Builder
	b.WriteString(`CREATE TABLE IF NOT EXISTS ` + p.table.sql() + ` (`)
	for i, c := range eventsColumns {
		fmt.Fprintf(&b, "\n    %-16s %s", pgx.Identifier{c.name}.Sanitize(), c.typ)
		if field(i) == fieldID {
			b.WriteString(" PRIMARY KEY")
		} else if eventsNotNull[field(i)] {
			b.WriteString(" NOT NULL")
		}
		if i < len(eventsColumns)-1 {
			b.WriteByte(',')
		}
	}
	b.WriteString("\n)")
	return b.String()
}

// args returns the arguments of the insert for events: one text array per
// column.
func (p *eventsProjection) args(events []*cdc.Event) []any {
	var cols [numFields][]pgtype.Text
	for f := range cols {
		cols[f] = make([]pgtype.Text, len(events))
		for i, e := range events {
			if v, ok := field(f).value(e).(string); ok {
				cols[f][i] = pgtype.Text{String: v, Valid: true}
			}
		}
	}
	out := make([]any, numFields)
	for f := range cols {
		out[f] = cols[f]
	}
	return out
}

// Queue queues the insert of e.
func (p *eventsProjection) Queue(b *pgx.Batch, e *cdc.Event) error {
	b.Queue(p.insert, p.args([]*cdc.Event{e})...)
	return nil
}

// Apply inserts e.
func (p *eventsProjection) Apply(ctx context.Context, tx pgx.Tx, e *cdc.Event) error {
	_, err := tx.Exec(ctx, p.insert, p.args([]*cdc.Event{e})...)
	return err
}
