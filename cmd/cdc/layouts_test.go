package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

// envelope is one line of the stdout (or file) sink, every field of SPEC §5.
type envelope struct {
	ID            string          `json:"id"`
	SeqID         int64           `json:"seq_id"`
	StreamID      string          `json:"stream_id"`
	Version       int64           `json:"version"`
	Type          string          `json:"type"`
	DotnetType    *string         `json:"dotnet_type"`
	TenantID      *string         `json:"tenant_id"`
	Timestamp     time.Time       `json:"timestamp"`
	Data          json.RawMessage `json:"data"`
	CorrelationID *string         `json:"correlation_id"`
	CausationID   *string         `json:"causation_id"`
	Headers       json.RawMessage `json:"headers"`
	UserName      *string         `json:"user_name"`
	LSN           string          `json:"lsn"`
	CommitTime    time.Time       `json:"commit_time"`
}

// readEnvelopes parses every line of a sink's output file, strictly.
func readEnvelopes(t *testing.T, path string) []envelope {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []envelope
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for n := 1; sc.Scan(); n++ {
		var e envelope
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("%s:%d: %v: %s", path, n, err, sc.Bytes())
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// tableEvent is a row of mt_events as the table holds it, in the envelope's
// terms: what cdc must have delivered for that row.
type tableEvent struct {
	envelope
	archived, skipped bool
}

// tableEvents reads every row of schema.mt_events (all partitions), keyed by
// event id.
func tableEvents(t *testing.T, pool *pgxpool.Pool, schema string) map[string]tableEvent {
	t.Helper()
	ctx := t.Context()
	rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'mt_events'`, schema)
	if err != nil {
		t.Fatal(err)
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	col := func(name, cast string) string {
		if slices.Contains(present, name) {
			return name + cast
		}
		return "NULL" + cast
	}
	q := fmt.Sprintf(`SELECT id::text, seq_id, coalesce(stream_id::text, ''), version, type, %s, tenant_id, timestamp, data::text, %s, %s, %s, %s,
		coalesce(%s, false), coalesce(%s, false) FROM %s.mt_events`,
		col("mt_dotnet_type", "::text"), col("correlation_id", "::text"), col("causation_id", "::text"), col("headers", "::text"),
		col("user_name", "::text"), col("is_archived", "::bool"), col("is_skipped", "::bool"), pgx.Identifier{schema}.Sanitize())
	rows, err = pool.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]tableEvent{}
	for rows.Next() {
		var e tableEvent
		var tenant string
		var data string
		var headers *string
		if err := rows.Scan(&e.ID, &e.SeqID, &e.StreamID, &e.Version, &e.Type, &e.DotnetType, &tenant, &e.Timestamp, &data,
			&e.CorrelationID, &e.CausationID, &headers, &e.UserName, &e.archived, &e.skipped); err != nil {
			t.Fatal(err)
		}
		e.TenantID = &tenant
		e.Data = json.RawMessage(data)
		if headers != nil {
			e.Headers = json.RawMessage(*headers)
		}
		if prev, ok := out[e.ID]; ok && !prev.archived && !e.archived {
			t.Fatalf("event id %s twice in mt_events", e.ID)
		}
		out[e.ID] = e
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// layoutRun is a running `cdc run` over one Marten store, for a layout test.
type layoutRun struct {
	t      *testing.T
	dir    string
	dsn    string
	pool   *pgxpool.Pool
	schema string
	store  marten.Store
	slot   string
	cdc    *child
}

// startLayout makes a database with layout installed in schema, writes a
// configuration with one pipeline "p" (its slot named after the test) whose source has the
// extra keys source and whose sinks are a stdout sink "out" plus sinks, and
// starts `cdc run` on it. It returns once cdc streams from the slot: every
// commit after that is delivered.
func startLayout(t *testing.T, layout marten.Layout, schema, source, sinks string) *layoutRun {
	t.Helper()
	return startLayoutWith(t, layoutConfig{layout: layout, schema: schema, source: source, sinks: sinks})
}

// layoutConfig is what startLayoutWith makes and runs.
type layoutConfig struct {
	layout  marten.Layout
	schema  string
	tenants []string // added before cdc starts (per-tenant partitioning)
	source  string   // extra keys under source
	out     string   // extra keys of the stdout sink "out"
	sinks   string   // more sinks
	setup   string   // SQL run before cdc starts
}

// startLayoutWith is startLayout with every option.
func startLayoutWith(t *testing.T, lc layoutConfig) *layoutRun {
	t.Helper()
	layout, schema, source, sinks := lc.layout, lc.schema, lc.source, lc.sinks
	dsn := pgtest.NewMartenDatabaseLayout(t, pg, layout, schema)
	pool := storePool(t, dsn)
	dir := t.TempDir()
	// Slots are global to the cluster and the tests run in parallel.
	// -count=N may run iterations of a parallel test at once: the slot name
	// carries a random part too.
	slot := fmt.Sprintf("cdc_%s_%04x", strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())), mrand.Uint32N(1<<16))
	cfg := fmt.Sprintf(`pipelines:
  - name: p
    source:
      dsn: ${CDC_TEST_DSN}
      schema: %s
      slot: %s
%s    standby_retry: 100ms
    status_interval: 200ms
    sinks:
      - name: out
        kind: stdout
        batch: {max_events: 100, max_wait: 5ms}
%s%s`, schema, slot, indent(source, "      "), indent(lc.out, "        "), sinks)
	path := filepath.Join(dir, "cdc.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &layoutRun{t: t, dir: dir, dsn: dsn, pool: pool, schema: schema, slot: slot, store: marten.Store{Layout: layout, Schema: schema}}
	for _, tenant := range lc.tenants {
		mustDo(t, "add tenant", r.store.AddTenant(t.Context(), pool, tenant))
	}
	if lc.setup != "" {
		_, err := pool.Exec(t.Context(), lc.setup)
		mustDo(t, "setup", err)
	}
	r.cdc = startCDC(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, "run", "--config", path)
	pgtest.Eventually(t, 15*time.Second, func() bool {
		var n int
		// Not just active: the backend creating the slot holds it too,
		// before its consistent point. A walsender holds it once it streams.
		_ = pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = $1 AND s.database = current_database()`, slot).Scan(&n)
		return n == 1 || r.cdc.exited()
	}, "cdc creates and holds its slot")
	if r.cdc.exited() {
		t.Fatalf("cdc exited: %s", r.cdc.stderr())
	}
	return r
}

// indent prefixes every non-empty line of s.
func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

// storePool opens a pool on dsn that drops the database's slots when the
// test ends (a database with a slot cannot be dropped).
func storePool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			var n int
			_ = pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = current_database() AND active`).Scan(&n)
			if n == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, _ = pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()`)
		pool.Close()
	})
	return pool
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// finish waits until the stdout sink has written the event lastID (every
// event committed before it is then written too: delivery is in commit
// order), stops cdc with SIGTERM and returns the stdout sink's lines.
func (r *layoutRun) finish(lastID string) []envelope {
	r.t.Helper()
	pgtest.Eventually(r.t, 20*time.Second, func() bool {
		if r.cdc.exited() {
			return true
		}
		b, _ := os.ReadFile(r.cdc.out)
		return bytes.Contains(b, []byte(`{"id":"`+lastID+`"`))
	}, "cdc delivers the last event %s", lastID)
	// "out" has it; a clean stop flushes only what each sink was handed,
	// and another sink's queue may have been full when the stop came (it
	// would get the transaction on the next start). Wait until the slot
	// is confirmed past it: every sink has it.
	var last cdc.LSN
	for _, e := range readEnvelopes(r.t, r.cdc.out) {
		if e.ID == lastID {
			l, err := cdc.ParseLSN(e.LSN)
			mustDo(r.t, "parse the last event's lsn", err)
			last = l
		}
	}
	pgtest.Eventually(r.t, 20*time.Second, func() bool {
		if r.cdc.exited() {
			return true
		}
		var confirmed string
		err := r.pool.QueryRow(r.t.Context(), `SELECT coalesce(confirmed_flush_lsn::text, '0/0') FROM pg_replication_slots WHERE slot_name = $1`, r.slot).Scan(&confirmed)
		c, perr := cdc.ParseLSN(confirmed)
		return err == nil && perr == nil && c > last
	}, "every sink has the last event %s (the slot is confirmed past %s)", lastID, last)
	if code := r.cdc.stop(); code != 0 {
		r.t.Fatalf("cdc exited with %d: %s", code, r.cdc.stderr())
	}
	return readEnvelopes(r.t, r.cdc.out)
}

// checkExact fails unless got holds exactly the events want, in that order,
// each equal field by field to its row in mt_events, with the commit LSNs
// of transactions in increasing order.
func checkExact(t *testing.T, sink string, got []envelope, want []string, table map[string]tableEvent) {
	t.Helper()
	gotIDs := make([]string, len(got))
	for i, e := range got {
		gotIDs[i] = e.ID
	}
	if !slices.Equal(gotIDs, want) {
		i := 0
		for i < len(gotIDs) && i < len(want) && gotIDs[i] == want[i] {
			i++
		}
		gotRest, wantRest := gotIDs[i:min(len(gotIDs), i+3)], want[i:min(len(want), i+3)]
		t.Fatalf("%s delivered %d events, want %d; they differ from event %d on: got %v, want %v", sink, len(gotIDs), len(want), i, gotRest, wantRest)
	}
	var prev cdc.LSN
	for i, e := range got {
		row, ok := table[e.ID]
		if !ok {
			t.Fatalf("%s: event %s is not in mt_events", sink, e.ID)
		}
		if row.skipped || row.Type == "tombstone" {
			t.Fatalf("%s: delivered a row that is not an event: %+v", sink, row)
		}
		if diff := envelopeDiff(e, row.envelope); diff != "" {
			t.Fatalf("%s: event %d (%s) differs from its mt_events row: %s", sink, i, e.ID, diff)
		}
		lsn, err := cdc.ParseLSN(e.LSN)
		if err != nil {
			t.Fatalf("%s: event %s: lsn %q: %v", sink, e.ID, e.LSN, err)
		}
		if lsn < prev {
			t.Fatalf("%s: event %d (%s) at lsn %s after %s: not in commit order", sink, i, e.ID, lsn, prev)
		}
		if e.CommitTime.IsZero() {
			t.Fatalf("%s: event %s without commit_time", sink, e.ID)
		}
		prev = lsn
	}
}

// envelopeDiff compares the fields that come from the row (not lsn and
// commit_time) and says what differs.
func envelopeDiff(got, want envelope) string {
	var diffs []string
	check := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	str := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}
	nullIfEmpty := func(p *string) string {
		if p == nil || *p == "" {
			return "<null>"
		}
		return *p
	}
	check("seq_id", got.SeqID, want.SeqID)
	check("stream_id", got.StreamID, want.StreamID)
	check("version", got.Version, want.Version)
	check("type", got.Type, want.Type)
	check("dotnet_type", str(got.DotnetType), nullIfEmpty(want.DotnetType))
	check("tenant_id", str(got.TenantID), nullIfEmpty(want.TenantID))
	if !got.Timestamp.Equal(want.Timestamp) {
		diffs = append(diffs, fmt.Sprintf("timestamp = %v, want %v", got.Timestamp, want.Timestamp))
	}
	check("data", compactJSON(got.Data), compactJSON(want.Data))
	check("correlation_id", str(got.CorrelationID), nullIfEmpty(want.CorrelationID))
	check("causation_id", str(got.CausationID), nullIfEmpty(want.CausationID))
	check("headers", compactJSON(got.Headers), compactJSON(want.Headers))
	check("user_name", str(got.UserName), nullIfEmpty(want.UserName))
	return strings.Join(diffs, "; ")
}

func compactJSON(b json.RawMessage) string {
	if len(b) == 0 || string(b) == "null" {
		return "<null>"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return "invalid JSON " + string(b)
	}
	return buf.String()
}

// mustDo fails the test on err.
func mustDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// writeEveryPath appends events for tenant through every way Marten writes
// them (see marten.Store.Exercise, with a COPY of 3 streams × 40 events) and
// returns the ids of the events cdc must deliver, in commit order, and the
// ids of the COPY's events (one transaction).
func (r *layoutRun) writeEveryPath(tenant string) (want, copied []string) {
	r.t.Helper()
	want, copied, err := r.store.Exercise(r.t.Context(), r.pool, tenant, 3, 40)
	mustDo(r.t, "write", err)
	return want, copied
}

// checkOneTransaction fails unless the events ids were delivered with one
// commit LSN (one transaction), in the given order.
func checkOneTransaction(t *testing.T, got []envelope, ids []string) {
	t.Helper()
	at := map[string]int{}
	for i, e := range got {
		at[e.ID] = i
	}
	first, ok := at[ids[0]]
	if !ok {
		t.Fatalf("event %s not delivered", ids[0])
	}
	for i, id := range ids {
		j, ok := at[id]
		if !ok || j != first+i || got[j].LSN != got[first].LSN {
			t.Fatalf("event %d of the transaction (%s) at line %d with lsn %s; want line %d, lsn %s", i, id, j, got[j].LSN, first+i, got[first].LSN)
		}
	}
}
