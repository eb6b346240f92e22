package marten

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// streamKey returns streamID typed for the layout's stream id column: a
// uuid, or text for string stream ids.
func (t traits) streamKey(streamID string) (any, error) {
	if t.stringIDs {
		if streamID == "" {
			return nil, errors.New("empty stream id")
		}
		return streamID, nil
	}
	u, err := parseUUID(streamID)
	if err != nil {
		return nil, fmt.Errorf("stream id: %w", err)
	}
	return pgtype.UUID{Bytes: u, Valid: true}, nil
}

// sqlExpr is an SQL expression written into a statement in place of a
// parameter, e.g. now() or nextval('...').
type sqlExpr string

// nextval is a value drawn from the named sequence (regclass text) by the
// statement itself; the name is bound as a parameter.
type nextval string

// eventRow returns the columns and values of one mt_events row in the
// order Marten's append operation writes them: data, type,
// mt_dotnet_type, bdata (9.x), id, stream_id, version, timestamp,
// tenant_id, the metadata columns, user_name, then is_skipped (written here
// only for NewEvent.Skipped) and seq_id last. ts and seq may be sqlExprs.
func (t traits) eventRow(e *event, stream any, version int64, tenantID string, ts, seq any) (cols []string, vals []any) {
	cols = append(cols, "data", "type", "mt_dotnet_type")
	vals = append(vals, e.data, e.typ, e.dotnetType)
	if t.bdata() {
		cols = append(cols, "bdata")
		vals = append(vals, e.bdata)
	}
	cols = append(cols, "id", "stream_id", "version", "timestamp", "tenant_id")
	vals = append(vals, e.id, stream, version, ts, tenantID)
	if t.metadata {
		cols = append(cols, "correlation_id", "causation_id", "headers")
		vals = append(vals, e.correlation, e.causation, e.headers)
	}
	if t.userName {
		cols = append(cols, "user_name")
		vals = append(vals, e.userName)
	}
	if t.skipping {
		cols = append(cols, "is_skipped")
		vals = append(vals, e.skipped)
	}
	return append(cols, "seq_id"), append(vals, seq)
}

// insertSQL returns an INSERT of one row into table, with a parameter for
// every value but the sqlExprs, which are written in place.
func insertSQL(table string, cols []string, vals []any) (sql string, args []any) {
	var b strings.Builder
	b.WriteString("insert into " + table + " (" + strings.Join(cols, ", ") + ") values (")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		switch x := v.(type) {
		case sqlExpr:
			b.WriteString(string(x))
			continue
		case nextval:
			args = append(args, string(x))
			b.WriteString("nextval($" + strconv.Itoa(len(args)) + "::regclass)")
			continue
		}
		args = append(args, v)
		b.WriteString("$" + strconv.Itoa(len(args)))
	}
	b.WriteString(")")
	return b.String(), args
}

// table returns the quoted name of one of the store's tables.
func (s Store) table(name string) string { return quoteSchema(s.Schema) + "." + name }

// sequence returns the name (as regclass text) of the sequence the events
// of tenantID draw their seq_id from: mt_events_sequence, or under per-tenant
// partitioning the tenant's mt_events_sequence_<suffix>, looked up in
// mt_tenant_partitions as mt_quick_append_events does.
func (s Store) sequence(ctx context.Context, q Querier, t traits, tenantID string) (string, error) {
	if !t.perTenant {
		return s.table("mt_events_sequence"), nil
	}
	var suffix *string
	err := q.QueryRow(ctx, "select partition_suffix from "+s.table("mt_tenant_partitions")+" where partition_value = $1", tenantID).Scan(&suffix)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && suffix == nil {
		return "", fmt.Errorf("tenant %q: %w", tenantID, ErrUnknownTenant)
	} else if err != nil {
		return "", fmt.Errorf("look up the sequence of tenant %q: %w", tenantID, err)
	}
	return pgx.Identifier{s.Schema, "mt_events_sequence_" + *suffix}.Sanitize(), nil
}

// nextSeqIDs draws n seq_ids from sequence ahead of the inserts, as Rich
// mode does: select nextval(...) from generate_series(1, n). They are
// returned in ascending order.
func nextSeqIDs(ctx context.Context, tx pgx.Tx, sequence string, n int) ([]int64, error) {
	rows, err := tx.Query(ctx, "select nextval($1::regclass) from generate_series(1, $2)", sequence, n)
	if err != nil {
		return nil, fmt.Errorf("fetch seq_ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("fetch seq_ids: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// streamWhere is the condition selecting one stream row: by id, and by
// tenant too under conjoined tenancy. It uses parameters $i and $i+1.
func (t traits) streamWhere(i int) string {
	w := "id = $" + strconv.Itoa(i)
	if t.conjoined {
		w += " and tenant_id = $" + strconv.Itoa(i+1)
	}
	return w
}

// streamArgs are the arguments of streamWhere.
func (t traits) streamArgs(stream any, tenantID string) []any {
	if t.conjoined {
		return []any{stream, tenantID}
	}
	return []any{stream}
}

// claimVersions makes room for n events in a stream, as Marten's Rich mode
// and its quick appends with an expected version do: it reads the stream's
// version, then inserts the stream row with version n (new stream) or
// moves the version on by n with an optimistic check (existing stream). It
// returns the stream's new version.
func (s Store) claimVersions(ctx context.Context, tx pgx.Tx, t traits, stream any, streamType, tenantID string, n int64) (int64, error) {
	var current *int64
	var archived *bool
	err := tx.QueryRow(ctx, "select version, is_archived from "+s.table("mt_streams")+" where "+t.streamWhere(1),
		t.streamArgs(stream, tenantID)...).Scan(&current, &archived)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return n, s.insertStream(ctx, tx, stream, streamType, tenantID, n)
	case err != nil:
		return 0, fmt.Errorf("read stream version: %w", err)
	case archived != nil && *archived:
		return 0, ErrStreamArchived
	}
	var from int64
	if current != nil {
		from = *current
	}
	var version int64
	args := append([]any{from + n, from}, t.streamArgs(stream, tenantID)...)
	err = tx.QueryRow(ctx, "update "+s.table("mt_streams")+" set version = $1 where "+t.streamWhere(3)+" and version = $2 returning version",
		args...).Scan(&version)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("update stream version from %d: %w", from, ErrVersionConflict)
	} else if err != nil {
		return 0, fmt.Errorf("update stream version: %w", err)
	}
	return version, nil
}

// insertStream inserts a stream row with its final version, as Marten's
// InsertStream operation does.
func (s Store) insertStream(ctx context.Context, tx pgx.Tx, stream any, streamType, tenantID string, version int64) error {
	_, err := tx.Exec(ctx, "insert into "+s.table("mt_streams")+" (id, type, version, tenant_id) values ($1, $2, $3, $4)",
		stream, text(streamType), version, tenantID)
	if err != nil {
		return fmt.Errorf("insert stream row: %w", err)
	}
	return nil
}
