package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/decoder"
)

// Querier runs queries: *pgx.Conn and pgx.Tx satisfy it. The backfill's
// reads go through a transaction whose snapshot the caller set (BEGIN
// ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT ...),
// so that every page sees the same rows.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Optional columns of mt_events that become event fields or decide whether
// a row is an event, as in package decoder.
const (
	colDotnetType    = "mt_dotnet_type"
	colCorrelationID = "correlation_id"
	colCausationID   = "causation_id"
	colHeaders       = "headers"
	colUserName      = "user_name"
	colIsSkipped     = "is_skipped"
	colIsArchived    = "is_archived"
	colBData         = "bdata"
)

// optionalColumns are the optional columns a Table reads when present.
var optionalColumns = []string{colDotnetType, colCorrelationID, colCausationID, colHeaders, colUserName, colIsSkipped, colIsArchived, colBData}

// Table is <schema>.mt_events as a backfill reads it: which optional columns
// it has and how its rows are keyed. It is made by [Inspect] and is
// read-only afterwards, so safe for concurrent use (the Querier given to its
// methods need not be).
type Table struct {
	schema      string
	name        string          // pgx.Identifier{schema, "mt_events"}.Sanitize()
	has         map[string]bool // optional columns present
	tenantKeyed bool            // primary key (seq_id, tenant_id): seq_id repeats across tenants

	sel   string // select list, in the order scanRow reads
	order string // ORDER BY clause: key order

	rowFilter string // the publication's row filter (source.filter), SQL from the configuration; "" for none
}

// WithRowFilter returns the table read through a publication row filter
// (source.filter): rows it leaves out never reach the pipeline's slot, so
// a backfill leaves them out too. The filter is SQL the operator wrote in
// the configuration, never event data.
func (t *Table) WithRowFilter(filter string) *Table {
	c := *t
	c.rowFilter = filter
	return &c
}

// Row is one row of mt_events in key order: an event, or a row that is not
// one (a tombstone, type = 'tombstone', or is_skipped = true), which only
// advances the key. Rows with is_archived = true are events: in the table
// each event is there once, archived or not (the live stream, by contrast,
// skips the copies archiving inserts).
type Row struct {
	Key   Key        // where the row is in key order
	Event *cdc.Event // the event, without position (LSN, Index, CommitTime, TxID are zero); nil for a row that is not an event
}

// Inspect reads which columns <schema>.mt_events has and what its primary
// key is. It fails with a clear error when the table does not exist or
// lacks a column an event needs (seq_id, id, stream_id, version, data,
// type, timestamp, tenant_id; a [*decoder.MissingColumnError]). A table
// whose primary key includes tenant_id (Marten 9 per-tenant partitioning,
// (seq_id, tenant_id)) is keyed by seq_id and tenant; any other by seq_id.
func Inspect(ctx context.Context, q Querier, schema string) (*Table, error) {
	const table = "mt_events"
	qualified := schema + "." + table
	var oid uint32
	err := q.QueryRow(ctx, `SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, table).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("inspect %s: the table does not exist (is Marten's event store in schema %q?)", qualified, schema)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", qualified, err)
	}
	rows, err := q.Query(ctx, `SELECT a.attname::text, EXISTS (SELECT 1 FROM pg_catalog.pg_index i
    WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey))
FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, oid)
	if err != nil {
		return nil, fmt.Errorf("inspect the columns of %s: %w", qualified, err)
	}
	present := map[string]bool{}
	primary := map[string]bool{}
	var name string
	var inKey bool
	_, err = pgx.ForEachRow(rows, []any{&name, &inKey}, func() error {
		present[name], primary[name] = true, inKey
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inspect the columns of %s: %w", qualified, err)
	}
	var missing []string
	for _, c := range decoder.RequiredColumns() {
		if !present[c] {
			missing = append(missing, c)
		}
	}
	if missing != nil {
		return nil, fmt.Errorf("inspect %s: %w", qualified, &decoder.MissingColumnError{Relation: qualified, Columns: missing})
	}
	t := &Table{
		schema:      schema,
		name:        pgx.Identifier{schema, table}.Sanitize(),
		has:         map[string]bool{},
		tenantKeyed: primary["tenant_id"],
	}
	for _, c := range optionalColumns {
		t.has[c] = present[c]
	}
	t.sel = t.selectList()
	t.order = `"seq_id"`
	if t.tenantKeyed {
		t.order += `, "tenant_id" COLLATE "C"`
	}
	return t, nil
}

// Schema returns the schema of the table.
func (t *Table) Schema() string { return t.schema }

// TenantKeyed reports whether seq_id is unique only per tenant (the primary
// key is (seq_id, tenant_id)), so that keys carry the tenant.
func (t *Table) TenantKeyed() bool { return t.tenantKeyed }

// Has reports whether the table has the optional column (mt_dotnet_type,
// correlation_id, causation_id, headers, user_name, is_skipped,
// is_archived, bdata). Absent columns leave their event field empty.
func (t *Table) Has(column string) bool { return t.has[column] }

// KeyOf returns the key of an event of this table, e.g. one of the live
// stream: its seq_id, and its tenant when the table is tenant-keyed.
func (t *Table) KeyOf(e *cdc.Event) Key {
	if t.tenantKeyed {
		return Key{SeqID: e.SeqID, Tenant: e.TenantID}
	}
	return Key{SeqID: e.SeqID}
}

// selectList returns the columns a row is read from, in scanRow's order.
// Values are read as the text PostgreSQL prints (::text), which is what
// pgoutput sends the decoder; absent optional columns are NULL.
func (t *Table) selectList() string {
	opt := func(col, typ string) string {
		if !t.has[col] {
			return "NULL::" + typ
		}
		if typ == "text" {
			return quoteColumn(col) + "::text"
		}
		return quoteColumn(col)
	}
	return strings.Join([]string{
		`"seq_id"`, `"id"::text`, `"stream_id"::text`, `"version"`, `"data"::text`, `"type"::text`,
		`"timestamp"`, `"tenant_id"::text`,
		opt(colDotnetType, "text"), opt(colCorrelationID, "text"), opt(colCausationID, "text"),
		opt(colHeaders, "text"), opt(colUserName, "text"), opt(colIsSkipped, "boolean"), opt(colBData, "bytea"),
	}, ", ")
}

// keyColumns names the columns of the key, for messages.
func (t *Table) keyColumns() string {
	if t.tenantKeyed {
		return "seq_id, tenant_id"
	}
	return "seq_id"
}

func quoteColumn(c string) string { return pgx.Identifier{c}.Sanitize() }

// filter builds the WHERE conditions of a read: the scope, and key > after.
// Every value is a bound parameter, appended to args.
func (t *Table) filter(scope Scope, after *Key, args []any) ([]string, []any) {
	var conds []string
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if after != nil {
		conds = append(conds, t.afterCond(*after, param))
	}
	if t.rowFilter != "" {
		conds = append(conds, "("+t.rowFilter+")")
	}
	if scope.FromSeq > 0 {
		conds = append(conds, `"seq_id" >= `+param(scope.FromSeq))
	}
	if !scope.FromTime.IsZero() {
		conds = append(conds, `"timestamp" >= `+param(scope.fromTime()))
	}
	if len(scope.Tenants) > 0 {
		// One parameter per tenant, not an array: PostgreSQL prunes the
		// partitions of other tenants for a list of parameters only.
		ps := make([]string, len(scope.Tenants))
		for i, tenant := range scope.Tenants {
			ps[i] = param(tenant)
		}
		conds = append(conds, `"tenant_id" IN (`+strings.Join(ps, ", ")+`)`)
	}
	return conds, args
}

// afterCond is the condition key > after. The seq_id bound is written on
// its own so that it is an index condition; the tenant compares in the "C"
// collation, as Key.Less does.
func (t *Table) afterCond(after Key, param func(any) string) string {
	if !t.tenantKeyed {
		return `"seq_id" > ` + param(after.SeqID)
	}
	seq := param(after.SeqID)
	return `"seq_id" >= ` + seq + ` AND ("seq_id" > ` + seq + ` OR "tenant_id" COLLATE "C" > ` + param(after.Tenant) + `)`
}

// between is the condition after < key <= last.
func (t *Table) between(after *Key, last Key, args []any) ([]string, []any) {
	conds, args := t.filter(Scope{}, after, args)
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !t.tenantKeyed {
		return append(conds, `"seq_id" <= `+param(last.SeqID)), args
	}
	seq := param(last.SeqID)
	return append(conds, `"seq_id" <= `+seq+` AND ("seq_id" < `+seq+` OR "tenant_id" COLLATE "C" <= `+param(last.Tenant)+`)`), args
}

// sqlWhere joins conditions into a WHERE clause, empty for none.
func sqlWhere(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// pageSQL returns the query [Table.Page] runs and its arguments.
func (t *Table) pageSQL(scope Scope, after *Key, n int) (string, []any) {
	conds, args := t.filter(scope, after, nil)
	args = append(args, n)
	return "SELECT " + t.sel + " FROM " + t.name + sqlWhere(conds) + " ORDER BY " + t.order + " LIMIT $" + strconv.Itoa(len(args)), args
}

// Page returns up to n rows in scope whose key is after after (nil: from
// the first row), in key order: events, and rows that are not events (with
// a nil Event) so that the key still advances. Fewer than n rows means the
// table has no more. It reads through the primary key's index, row by row:
// memory is bounded by n, not by the table.
func (t *Table) Page(ctx context.Context, q Querier, scope Scope, after *Key, n int) ([]Row, error) {
	what := func() string {
		if after == nil {
			return fmt.Sprintf("read the first %d rows of %s.mt_events in scope %s", n, t.schema, scope)
		}
		return fmt.Sprintf("read %d rows of %s.mt_events after key %s in scope %s", n, t.schema, after, scope)
	}
	if n <= 0 {
		return nil, fmt.Errorf("%s: the page size must be 1 or more", what())
	}
	if err := scope.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", what(), err)
	}
	sql, args := t.pageSQL(scope, after, n)
	out, err := t.read(ctx, q, sql, args, after, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what(), err)
	}
	return out, nil
}

// ByIDs returns, in key order, the rows whose event id (mt_events.id as
// text) is one of ids and whose key is in (after, last] (after nil: from the
// first row): a page read again after a crash, from the ids saved when it
// was first read. Rows outside the range are not returned, whatever their
// id; ids no row has are ignored.
func (t *Table) ByIDs(ctx context.Context, q Querier, ids []string, after *Key, last Key) ([]Row, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	conds, args := t.between(after, last, nil)
	args = append(args, ids)
	conds = append(conds, `"id"::text = ANY ($`+strconv.Itoa(len(args))+`::text[])`)
	sql := "SELECT " + t.sel + " FROM " + t.name + sqlWhere(conds) + " ORDER BY " + t.order
	out, err := t.read(ctx, q, sql, args, after, len(ids))
	if err != nil {
		from := "the first row"
		if after != nil {
			from = "key " + after.String()
		}
		return nil, fmt.Errorf("read %d rows of %s.mt_events by id, after %s up to key %s: %w", len(ids), t.schema, from, last, err)
	}
	return out, nil
}

// Count returns how many events (not tombstones or skipped rows) in scope
// have a key after after (nil: all of them).
func (t *Table) Count(ctx context.Context, q Querier, scope Scope, after *Key) (int64, error) {
	if err := scope.Validate(); err != nil {
		return 0, fmt.Errorf("count the events of %s.mt_events: %w", t.schema, err)
	}
	conds, args := t.filter(scope, after, nil)
	conds = append(conds, `"type" <> 'tombstone'`)
	if t.has[colIsSkipped] {
		conds = append(conds, `"is_skipped" IS NOT TRUE`)
	}
	var n int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM "+t.name+sqlWhere(conds), args...).Scan(&n); err != nil {
		from := ""
		if after != nil {
			from = " after key " + after.String()
		}
		return 0, fmt.Errorf("count the events of %s.mt_events%s in scope %s: %w", t.schema, from, scope, err)
	}
	return n, nil
}

// read runs a query of rows in key order and converts them; sizeHint sizes
// the result. It checks that keys strictly increase from after: a key seen
// twice would make keyset paging skip rows.
func (t *Table) read(ctx context.Context, q Querier, sql string, args []any, after *Key, sizeHint int) ([]Row, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]Row, 0, min(sizeHint, 1024))
	var r rawRow
	dest := r.dest()
	var prev Key
	hasPrev := after != nil
	if hasPrev {
		prev = *after
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row, err := t.convert(&r)
		if err != nil {
			return nil, err
		}
		if hasPrev && !prev.Less(row.Key) {
			return nil, fmt.Errorf("row with key %s after key %s: the rows of %s.mt_events are not in key order, or their key (%s) is not unique",
				row.Key, prev, t.schema, t.keyColumns())
		}
		out = append(out, row)
		prev, hasPrev = row.Key, true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// rawRow is one row as selectList reads it.
type rawRow struct {
	seqID       int64
	id          pgtype.Text
	streamID    pgtype.Text
	version     pgtype.Int8
	data        pgtype.Text
	typ         pgtype.Text
	timestamp   pgtype.Timestamptz
	tenantID    pgtype.Text
	dotnetType  pgtype.Text
	correlation pgtype.Text
	causation   pgtype.Text
	headers     pgtype.Text
	userName    pgtype.Text
	isSkipped   pgtype.Bool
	bdata       []byte
}

func (r *rawRow) dest() []any {
	return []any{&r.seqID, &r.id, &r.streamID, &r.version, &r.data, &r.typ, &r.timestamp, &r.tenantID,
		&r.dotnetType, &r.correlation, &r.causation, &r.headers, &r.userName, &r.isSkipped, &r.bdata}
}

// convert turns a row into a Row exactly as package decoder turns the same
// row, inserted, into an event: a tombstone or a skipped row is not an
// event; required columns must not be NULL; NULL optional columns leave
// their field empty; bdata is kept only when data is empty ({} or null).
func (t *Table) convert(r *rawRow) (Row, error) {
	row := Row{Key: Key{SeqID: r.seqID}}
	fail := func(col string, err error) (Row, error) {
		return Row{}, fmt.Errorf("row seq_id %d: column %q: %w", r.seqID, col, err)
	}
	errNull := errors.New("NULL in a required column")
	if !r.typ.Valid {
		return fail("type", errNull)
	}
	if t.tenantKeyed {
		if !r.tenantID.Valid {
			return fail("tenant_id", errNull)
		}
		row.Key.Tenant = r.tenantID.String
	}
	if r.typ.String == "tombstone" || r.isSkipped.Valid && r.isSkipped.Bool {
		return row, nil
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{{"id", r.id.Valid}, {"stream_id", r.streamID.Valid}, {"version", r.version.Valid}, {"data", r.data.Valid},
		{"timestamp", r.timestamp.Valid}, {"tenant_id", r.tenantID.Valid}} {
		if !c.ok {
			return fail(c.name, errNull)
		}
	}
	if r.timestamp.InfinityModifier != pgtype.Finite {
		return fail("timestamp", fmt.Errorf("%v is not an instant", r.timestamp.InfinityModifier))
	}
	e := &cdc.Event{
		ID:            r.id.String,
		SeqID:         r.seqID,
		StreamID:      r.streamID.String,
		Version:       r.version.Int64,
		Type:          r.typ.String,
		DotnetType:    r.dotnetType.String,
		TenantID:      r.tenantID.String,
		Timestamp:     r.timestamp.Time.UTC(),
		Data:          json.RawMessage(r.data.String),
		CorrelationID: r.correlation.String,
		CausationID:   r.causation.String,
		UserName:      r.userName.String,
	}
	if r.headers.Valid {
		e.Headers = json.RawMessage(r.headers.String)
	}
	if len(r.bdata) > 0 && emptyBody(e.Data) {
		e.BData = slices.Clone(r.bdata)
	}
	row.Event = e
	return row, nil
}

// emptyBody reports whether a data value carries no body: {} or null, what
// Marten 9 writes in data for an event whose body is binary (bdata). It is
// the decoder's rule.
func emptyBody(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "{}" || string(b) == "null"
}
