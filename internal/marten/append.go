package marten

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// DefaultTenantID is the tenant id Marten writes under single tenancy.
const DefaultTenantID = "*DEFAULT*"

// Querier runs a query that returns one row. *pgx.Conn, pgx.Tx and
// *pgxpool.Pool satisfy it.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner starts a transaction (a savepoint when it is itself a
// transaction). *pgx.Conn, pgx.Tx and *pgxpool.Pool satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// NewEvent is an event to append, with the values Marten puts in the
// columns of mt_events.
type NewEvent struct {
	// ID is the event id (mt_events.id), a uuid in canonical text form.
	// Required; Marten generates it client-side, see NewID.
	ID string
	// Type is the event type alias (mt_events.type), e.g. "incident_logged".
	Type string
	// DotnetType is the .NET type name (mt_events.mt_dotnet_type), e.g.
	// "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api".
	DotnetType string
	// Data is the event body as JSON (mt_events.data). Required.
	Data json.RawMessage
	// CausationID is mt_events.causation_id; empty writes NULL.
	CausationID string
	// CorrelationID is mt_events.correlation_id; empty writes NULL.
	CorrelationID string
	// Headers is a JSON object (mt_events.headers); nil writes NULL.
	Headers json.RawMessage
	// Timestamp is mt_events.timestamp for AppendRich, which takes the
	// client's clock; zero means time.Now(). The quick paths ignore it: the
	// server stamps the event.
	Timestamp time.Time
}

// eventColumns holds the events column by column, typed for pgx.
type eventColumns struct {
	ids         []pgtype.UUID
	types       []string
	dotnetTypes []pgtype.Text
	bodies      [][]byte
	causation   []pgtype.Text
	correlation []pgtype.Text
	headers     [][]byte
}

// columns validates events and splits them into columns.
func columns(events []NewEvent) (*eventColumns, error) {
	if len(events) == 0 {
		return nil, errors.New("no events")
	}
	c := &eventColumns{}
	for i, e := range events {
		id, err := parseUUID(e.ID)
		if err != nil {
			return nil, fmt.Errorf("event %d: id: %w", i, err)
		}
		if e.Type == "" {
			return nil, fmt.Errorf("event %d: empty type", i)
		}
		if len(e.Data) == 0 {
			return nil, fmt.Errorf("event %d: empty data", i)
		}
		if !json.Valid(e.Data) {
			return nil, fmt.Errorf("event %d: data is not valid JSON", i)
		}
		if e.Headers != nil && !json.Valid(e.Headers) {
			return nil, fmt.Errorf("event %d: headers are not valid JSON", i)
		}
		c.ids = append(c.ids, pgtype.UUID{Bytes: id, Valid: true})
		c.types = append(c.types, e.Type)
		c.dotnetTypes = append(c.dotnetTypes, text(e.DotnetType))
		c.bodies = append(c.bodies, []byte(e.Data))
		c.causation = append(c.causation, text(e.CausationID))
		c.correlation = append(c.correlation, text(e.CorrelationID))
		c.headers = append(c.headers, []byte(e.Headers)) // nil encodes as NULL
	}
	return c, nil
}

// text is s as a nullable text value: NULL when empty.
func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

// tenant returns tenantID, or DefaultTenantID when it is empty.
func tenant(tenantID string) string {
	if tenantID == "" {
		return DefaultTenantID
	}
	return tenantID
}

// QuickAppend appends events to a stream the way Marten's Quick append mode
// does: one call of <schema>.mt_quick_append_events with the ten parameters
// bound positionally as Marten binds them (stream, stream type, tenant, then
// the arrays of event ids, type aliases, .NET types, bodies, causation ids,
// correlation ids and headers). The function creates the stream row on first
// use, draws one seq_id per event from mt_events_sequence and stamps the
// events with the server clock.
//
// streamID is the stream id as text (a uuid for [LayoutDefault]);
// streamType is the aggregate alias (e.g. "incident"), empty for NULL;
// tenantID empty means [DefaultTenantID]. It returns the stream's new
// version and the seq_ids assigned, in event order. It works for
// [LayoutDefault], [LayoutStringIDs] and [LayoutArchivedPartitioned] (the
// Marten 8.x function signature).
func QuickAppend(ctx context.Context, q Querier, schema, streamID, streamType, tenantID string, events []NewEvent) (version int64, seqIDs []int64, err error) {
	if err := ValidateSchema(schema); err != nil {
		return 0, nil, fmt.Errorf("quick append to stream %s: %w", streamID, err)
	}
	c, err := columns(events)
	if err != nil {
		return 0, nil, fmt.Errorf("quick append to stream %s: %w", streamID, err)
	}
	sql := "select " + quoteSchema(schema) + ".mt_quick_append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	var ret []int64
	err = q.QueryRow(ctx, sql,
		streamID, text(streamType), tenant(tenantID),
		c.ids, c.types, c.dotnetTypes, c.bodies, c.causation, c.correlation, c.headers,
	).Scan(&ret)
	if err != nil {
		return 0, nil, fmt.Errorf("quick append %d events to stream %s: %w", len(events), streamID, err)
	}
	if len(ret) != len(events)+1 {
		return 0, nil, fmt.Errorf("quick append %d events to stream %s: mt_quick_append_events returned %d values, want %d",
			len(events), streamID, len(ret), len(events)+1)
	}
	return ret[0], ret[1:], nil
}

// insertEventColumns is the column list of Marten 8.x's per-event INSERT.
const insertEventColumns = "(data, type, mt_dotnet_type, id, stream_id, version, timestamp, tenant_id, correlation_id, causation_id, headers, seq_id)"

// StartStreamQuick starts a new stream the way Marten 8.x Quick mode does
// for StartStream (and for appends with a known expected version): in one
// transaction, it inserts the stream row with its final version, then one
// INSERT per event with the seq_id drawn inline by nextval and the server
// clock as timestamp. It returns the seq_ids assigned, in event order. It
// fails if the stream exists.
func StartStreamQuick(ctx context.Context, db Beginner, schema, streamID, streamType, tenantID string, events []NewEvent) (seqIDs []int64, err error) {
	if err := ValidateSchema(schema); err != nil {
		return nil, fmt.Errorf("start stream %s: %w", streamID, err)
	}
	c, err := columns(events)
	if err != nil {
		return nil, fmt.Errorf("start stream %s: %w", streamID, err)
	}
	s := quoteSchema(schema)
	insertStream := "insert into " + s + ".mt_streams (id, type, version, tenant_id) values ($1, $2, $3, $4)"
	insertEvent := "insert into " + s + ".mt_events " + insertEventColumns +
		" values ($1, $2, $3, $4, $5, $6, now(), $7, $8, $9, $10, nextval('" + s + ".mt_events_sequence')) returning seq_id"

	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tenantID := tenant(tenantID)
		if _, err := tx.Exec(ctx, insertStream, streamID, text(streamType), int64(len(events)), tenantID); err != nil {
			return fmt.Errorf("insert stream row: %w", err)
		}
		for i := range events {
			var seq int64
			err := tx.QueryRow(ctx, insertEvent,
				c.bodies[i], c.types[i], c.dotnetTypes[i], c.ids[i], streamID, int64(i+1), tenantID,
				c.correlation[i], c.causation[i], c.headers[i],
			).Scan(&seq)
			if err != nil {
				return fmt.Errorf("insert event %d: %w", i, err)
			}
			seqIDs = append(seqIDs, seq)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start stream %s with %d events: %w", streamID, len(events), err)
	}
	return seqIDs, nil
}

// ErrVersionConflict is wrapped by AppendRich's error when the stream's
// version changed between reading and updating it.
var ErrVersionConflict = errors.New("stream version changed concurrently")

// AppendRich appends events the way Marten 7/8's Rich append mode does: it
// fetches the seq_ids ahead (select nextval(...) from generate_series(1, n)),
// then, in the same transaction, inserts the stream row (new stream) or
// bumps its version with an optimistic check (existing stream), and inserts
// every event with its seq_id and the client's timestamp as parameters. It
// returns the stream's new version and the seq_ids, in event order.
//
// seq_ids drawn by a transaction that then fails are lost (Marten would
// fill them with tombstone rows); callers see gaps in seq_id.
func AppendRich(ctx context.Context, db Beginner, schema, streamID, streamType, tenantID string, events []NewEvent) (version int64, seqIDs []int64, err error) {
	if err := ValidateSchema(schema); err != nil {
		return 0, nil, fmt.Errorf("rich append to stream %s: %w", streamID, err)
	}
	c, err := columns(events)
	if err != nil {
		return 0, nil, fmt.Errorf("rich append to stream %s: %w", streamID, err)
	}
	s := quoteSchema(schema)
	n := int64(len(events))
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "select nextval('"+s+".mt_events_sequence') from generate_series(1, $1)", n)
		if err != nil {
			return fmt.Errorf("fetch seq_ids: %w", err)
		}
		seqIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("fetch seq_ids: %w", err)
		}
		slices.Sort(seqIDs)

		var current int64
		err = tx.QueryRow(ctx, "select version from "+s+".mt_streams where id = $1", streamID).Scan(&current)
		tenantID := tenant(tenantID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			version = n
			_, err = tx.Exec(ctx, "insert into "+s+".mt_streams (id, type, version, tenant_id) values ($1, $2, $3, $4)",
				streamID, text(streamType), version, tenantID)
			if err != nil {
				return fmt.Errorf("insert stream row: %w", err)
			}
		case err != nil:
			return fmt.Errorf("read stream version: %w", err)
		default:
			version = current + n
			err = tx.QueryRow(ctx, "update "+s+".mt_streams set version = $1 where id = $2 and version = $3 returning version",
				version, streamID, current).Scan(&version)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("update stream version from %d: %w", current, ErrVersionConflict)
			} else if err != nil {
				return fmt.Errorf("update stream version: %w", err)
			}
		}

		insertEvent := "insert into " + s + ".mt_events " + insertEventColumns +
			" values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
		for i, e := range events {
			ts := e.Timestamp
			if ts.IsZero() {
				ts = time.Now()
			}
			_, err := tx.Exec(ctx, insertEvent,
				c.bodies[i], c.types[i], c.dotnetTypes[i], c.ids[i], streamID, version-n+int64(i)+1, ts, tenantID,
				c.correlation[i], c.causation[i], c.headers[i], seqIDs[i])
			if err != nil {
				return fmt.Errorf("insert event %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("rich append %d events to stream %s: %w", len(events), streamID, err)
	}
	return version, seqIDs, nil
}

// ArchiveStream archives a stream as Marten's ArchiveStream does:
// select <schema>.mt_archive_stream($1). Under
// [LayoutArchivedPartitioned] this moves the rows to the archived
// partitions. It does not apply to [LayoutConjoinedPartitioned], whose
// function also takes the tenant.
func ArchiveStream(ctx context.Context, db Execer, schema, streamID string) error {
	if err := ValidateSchema(schema); err != nil {
		return fmt.Errorf("archive stream %s: %w", streamID, err)
	}
	if _, err := db.Exec(ctx, "select "+quoteSchema(schema)+".mt_archive_stream($1)", streamID); err != nil {
		return fmt.Errorf("archive stream %s: %w", streamID, err)
	}
	return nil
}

// MarkEventProgression records a progression row (the async daemon's
// "HighWaterMark" or a projection shard "<Name>:All") as Marten does:
// select <schema>.mt_mark_event_progression($1, $2).
func MarkEventProgression(ctx context.Context, db Execer, schema, name string, lastSeqID int64) error {
	if err := ValidateSchema(schema); err != nil {
		return fmt.Errorf("mark event progression %q: %w", name, err)
	}
	if _, err := db.Exec(ctx, "select "+quoteSchema(schema)+".mt_mark_event_progression($1, $2)", name, lastSeqID); err != nil {
		return fmt.Errorf("mark event progression %q at %d: %w", name, lastSeqID, err)
	}
	return nil
}
