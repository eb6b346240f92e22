package progression

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/martencdc/cdc"
)

// TableName is Marten's progression table.
const TableName = "mt_event_progression"

// Querier runs queries: *pgx.Conn, pgx.Tx and *pgxpool.Pool satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Execer runs a statement: *pgx.Conn, pgx.Tx and *pgxpool.Pool satisfy it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Table is a store's mt_event_progression, with the columns it has.
type Table struct {
	name   pgx.Identifier
	upsert string
}

// ErrNoTable is wrapped by Detect's error when the table is missing.
var ErrNoTable = errors.New("Marten's mt_event_progression table is missing")

// Detect reads the columns of schema.mt_event_progression.
func Detect(ctx context.Context, q Querier, schema string) (*Table, error) {
	name := pgx.Identifier{schema, TableName}
	rows, err := q.Query(ctx, `SELECT a.attname::text FROM pg_catalog.pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, name.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("inspect %s.%s: %w", schema, TableName, err)
	}
	cols := map[string]bool{}
	var col string
	if _, err := pgx.ForEachRow(rows, []any{&col}, func() error { cols[col] = true; return nil }); err != nil {
		return nil, fmt.Errorf("inspect %s.%s: %w", schema, TableName, err)
	}
	switch {
	case len(cols) == 0:
		return nil, fmt.Errorf("%w in schema %q (marten_progress writes into it; is Marten's event store there?)", ErrNoTable, schema)
	case !cols["name"] || !cols["last_seq_id"]:
		return nil, fmt.Errorf("%s.%s has no name or last_seq_id column: not a Marten progression table", schema, TableName)
	}
	return &Table{name: name, upsert: upsertSQL(name, cols)}, nil
}

// upsertSQL is the statement that records progress rows: $1 the names,
// $2 their last_seq_ids. It never lowers last_seq_id and touches only rows
// named cdc:*.
func upsertSQL(name pgx.Identifier, cols map[string]bool) string {
	insert := []string{"name", "last_seq_id"}
	values := []string{"r.name", "r.seq"}
	var set []string
	set = append(set, "last_seq_id = greatest(p.last_seq_id, excluded.last_seq_id)")
	for _, c := range []struct{ col, value string }{
		{"last_updated", "transaction_timestamp()"},
		{"heartbeat", "now()"},
		{"agent_status", "'Running'"},
	} {
		if cols[c.col] {
			insert = append(insert, c.col)
			values = append(values, c.value)
			set = append(set, c.col+" = excluded."+c.col)
		}
	}
	return `INSERT INTO ` + name.Sanitize() + ` AS p (` + strings.Join(insert, ", ") + `)
SELECT ` + strings.Join(values, ", ") + ` FROM unnest($1::text[], $2::bigint[]) AS r(name, seq)
WHERE r.name LIKE 'cdc:%'
ON CONFLICT (name) DO UPDATE SET ` + strings.Join(set, ", ") + `
WHERE p.name LIKE 'cdc:%'`
}

// RowName returns the name of a sink's row: "cdc:<pipeline>:<sink>", and
// with a tenant (per-tenant sequences) "cdc:<pipeline>:<sink>:<tenant>".
func RowName(pipeline, sink, tenant string) string {
	if tenant == "" {
		return "cdc:" + pipeline + ":" + sink
	}
	return "cdc:" + pipeline + ":" + sink + ":" + tenant
}

// Writer keeps one sink's marks: the highest seq_id delivered, per tenant
// when the store has per-tenant sequences, and what the table holds of
// them. Safe for concurrent use; Statement and Committed are called in
// turn by the sink's goroutine.
type Writer struct {
	table     *Table
	pipeline  string
	sink      string
	perTenant bool
	pending   func(sink string, after cdc.Position) map[string]int64

	mu       sync.Mutex
	want     map[string]int64 // highest delivered, by tenant ("" without per-tenant sequences)
	last     cdc.Position     // the last event delivered
	recorded map[string]int64 // committed into the table
	stated   map[string]int64 // the values of the last Statement
}

// NewWriter returns the writer of sink's rows in table; perTenant when the
// store has a sequence per tenant. pending, when set, returns by tenant the
// lowest seq_id of the events received after the sink's last written event
// and not yet written (pipeline.Pipeline.PendingSeq): a row stays below
// them.
func NewWriter(table *Table, pipeline, sink string, perTenant bool, pending func(sink string, after cdc.Position) map[string]int64) *Writer {
	return &Writer{table: table, pipeline: pipeline, sink: sink, perTenant: perTenant, pending: pending,
		want: map[string]int64{}, recorded: map[string]int64{}}
}

// Statement returns the statement (and its arguments) that records the
// delivery of events (and of earlier deliveries not recorded yet), and
// false when it would change nothing. Queue it in the transaction that
// makes events durable, and call Committed with the same events once it
// has committed.
func (w *Writer) Statement(events []*cdc.Event) (string, []any, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cand, last := w.candidate(events)
	marks := w.capped(cand, last)
	w.stated = map[string]int64{}
	var names []string
	var seqs []int64
	for _, tenant := range sortedKeys(marks) {
		if r, ok := w.recorded[tenant]; ok && r >= marks[tenant] {
			continue
		}
		names = append(names, RowName(w.pipeline, w.sink, tenant))
		seqs = append(seqs, marks[tenant])
		w.stated[tenant] = marks[tenant]
	}
	if len(names) == 0 {
		return "", nil, false
	}
	return w.table.upsert, []any{names, seqs}, true
}

// Committed records that events are durable and the statement Statement
// returned for them last committed.
func (w *Writer) Committed(events []*cdc.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want, w.last = w.candidate(events)
	for t, s := range w.stated {
		w.recorded[t] = max(w.recorded[t], s)
	}
	w.stated = nil
}

// Delivered records that events are durable, without recording them in
// the table yet (Write does).
func (w *Writer) Delivered(events []*cdc.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want, w.last = w.candidate(events)
}

// Write records that events are durable and records every delivery not
// yet in the table, in its own statement on db.
func (w *Writer) Write(ctx context.Context, db Execer, events []*cdc.Event) error {
	w.Delivered(events)
	sql, args, ok := w.Statement(nil)
	if !ok {
		return nil
	}
	if _, err := db.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("record progress of %s/%s in %s: %w", w.pipeline, w.sink, w.table.name.Sanitize(), err)
	}
	w.Committed(nil)
	return nil
}

// candidate returns the delivered marks raised by events, and the
// position of the last event delivered. w.mu is held.
func (w *Writer) candidate(events []*cdc.Event) (map[string]int64, cdc.Position) {
	out := make(map[string]int64, len(w.want)+1)
	for t, s := range w.want {
		out[t] = s
	}
	last := w.last
	for _, e := range events {
		if p := e.Position(); p.Compare(last) > 0 {
			last = p
		}
		t := w.key(e.TenantID)
		if cur, ok := out[t]; !ok || e.SeqID > cur {
			out[t] = e.SeqID
		}
	}
	return out, last
}

// capped returns marks kept below the seq_ids still pending after last:
// a row's last_seq_id is the highest delivered seq_id below which nothing
// received is pending. w.mu is held.
func (w *Writer) capped(marks map[string]int64, last cdc.Position) map[string]int64 {
	if w.pending == nil {
		return marks
	}
	floors := map[string]int64{}
	for tenant, seq := range w.pending(w.sink, last) {
		t := w.key(tenant)
		if cur, ok := floors[t]; !ok || seq < cur {
			floors[t] = seq
		}
	}
	out := make(map[string]int64, len(marks))
	for t, s := range marks {
		if f, ok := floors[t]; ok && f <= s {
			s = f - 1
		}
		out[t] = s
	}
	return out
}

// key is the mark a tenant's events count in.
func (w *Writer) key(tenant string) string {
	if w.perTenant {
		return tenant
	}
	return ""
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Sink wraps a sink (any kind but a Postgres sink writing into the Marten
// database, which records progress in its own transaction): after each
// durable write it records the batch's progress on DB. A failure to record
// it is logged, not returned (the batch is durable; writing it again would
// not help), and the next write records it.
type Sink struct {
	cdc.Sink
	Writer *Writer
	DB     Execer
	Log    *slog.Logger
}

// Write implements cdc.Sink.
func (s *Sink) Write(ctx context.Context, b cdc.Batch) error {
	if err := s.Sink.Write(ctx, b); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Writer.Write(wctx, s.DB, b.Events); err != nil && s.Log != nil {
		s.Log.Warn("could not record progress in mt_event_progression; the next write records it", "err", err)
	}
	return nil
}
