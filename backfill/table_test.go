package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

var (
	_ Querier = (*pgx.Conn)(nil)
	_ Querier = pgx.Tx(nil)
)

// layoutSchemas puts some layouts in a schema of their own (one with
// capitals, which must be quoted); the others are in public.
var layoutSchemas = map[marten.Layout]string{
	marten.LayoutStringIDs:            "Helpdesk",
	marten.LayoutMarten7:              "events7",
	marten.LayoutConjoinedPartitioned: "tenancy",
}

// tableFixture is a Marten store of one layout, written through every write path
// while a logical replication slot recorded it, with what the decoder made
// of the slot's changes.
type tableFixture struct {
	layout  marten.Layout
	store   marten.Store
	conn    *pgx.Conn
	tenants []string // tenant ids written ("*DEFAULT*" under single tenancy)
	want    []string // ids of the events the writes committed

	decoded  map[string]*cdc.Event // KindEvent, by id
	archived map[string]*cdc.Event // archived copies (KindSkip, SkipArchived), by id
	skips    map[decoder.SkipReason]int
}

// newTableFixture installs layout, creates a publication and a slot, then writes:
// marten.Store.Exercise for each tenant (every write path, a failed append's
// tombstones, a rollback, a COPY), what is particular to the layout
// (skipped and binary events in Marten 9, a tenant added late under
// per-tenant partitioning), the archiving of a stream, and Exercise once
// more. It then decodes every change of the slot.
func newTableFixture(t *testing.T, layout marten.Layout) *tableFixture {
	t.Helper()
	ctx := t.Context()
	schema := layoutSchemas[layout]
	if schema == "" {
		schema = "public"
	}
	f := &tableFixture{layout: layout, store: marten.Store{Layout: layout, Schema: schema}}
	f.conn = pgtest.Conn(t, pgtest.NewMartenDatabaseLayout(t, pg, layout, schema))
	conn := f.conn

	f.tenants = []string{marten.DefaultTenantID}
	if layout.Conjoined() {
		f.tenants = []string{"tenant-a", "Tenant_B"}
	}
	for _, tenant := range f.tenants {
		if err := f.store.AddTenant(ctx, conn, tenant); err != nil {
			t.Fatal(err)
		}
	}
	slot := "backfill_" + layout.String()
	if _, err := conn.Exec(ctx, `CREATE PUBLICATION backfill_pub FOR TABLE `+pgx.Identifier{schema, "mt_events"}.Sanitize()+
		` WITH (publish = 'insert', publish_via_partition_root = true)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before the database is dropped
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
			t.Errorf("drop slot %s: %v", slot, err)
		}
	})

	exercise := func(tenant string, streams, events int) {
		t.Helper()
		ids, _, err := f.store.Exercise(ctx, conn, tenant, streams, events)
		if err != nil {
			t.Fatal(err)
		}
		f.want = append(f.want, ids...)
	}
	for _, tenant := range f.tenants {
		exercise(tenant, 2, 3)
	}
	switch layout {
	case marten.LayoutMarten9:
		// user_name, an event skipped by projections, binary bodies: one
		// with data {} (delivered with BData), one with a JSON body and
		// bdata too (BData ignored).
		s := f.store.NewStreamID()
		e := marten.SampleEvents(s, "incident_logged", "incident_categorised", "incident_prioritised", "incident_closed")
		e[0].UserName = "alice"
		e[1].Skipped = true
		e[2].Data, e[2].BData = nil, []byte{0x0a, 0x03, 'b', 'i', 'n'}
		e[3].BData = []byte{0xff}
		if _, _, err := f.store.InsertInline(ctx, conn, s, "incident", "", e); err != nil {
			t.Fatal(err)
		}
		f.want = append(f.want, e[0].ID, e[2].ID, e[3].ID)
	case marten.LayoutConjoinedPartitioned:
		// A tenant added after the slot was created: a new partition and
		// sequence, so seq_ids repeat three times.
		if err := f.store.AddTenant(ctx, conn, "tenant-c"); err != nil {
			t.Fatal(err)
		}
		f.tenants = append(f.tenants, "tenant-c")
		exercise("tenant-c", 1, 4)
	}
	// Archive the first stream: flagged in place, or moved to the archived
	// partition (inserts the live stream skips as copies).
	var stream string
	if err := conn.QueryRow(ctx, `SELECT stream_id::text FROM `+pgx.Identifier{schema, "mt_events"}.Sanitize()+` WHERE id = $1`,
		f.want[0]).Scan(&stream); err != nil {
		t.Fatal(err)
	}
	if err := f.store.ArchiveStream(ctx, conn, stream, f.tenants[0]); err != nil {
		t.Fatal(err)
	}
	exercise(f.tenants[0], 1, 2)

	f.decode(t)
	return f
}

// decode reads every change of the slot, without consuming them, and
// decodes them as the live stream does.
func (f *tableFixture) decode(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	tx, err := f.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SET LOCAL DateStyle = ISO; SET LOCAL TimeZone = 'UTC'`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
    'proto_version', '1', 'publication_names', 'backfill_pub')`, "backfill_"+f.layout.String())
	if err != nil {
		t.Fatal(err)
	}
	d := decoder.New(decoder.Config{Schema: f.store.Schema})
	f.decoded, f.archived, f.skips = map[string]*cdc.Event{}, map[string]*cdc.Event{}, map[decoder.SkipReason]int{}
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&data}, func() error {
		m, err := d.Decode(data)
		if err != nil {
			return err
		}
		switch {
		case m.Kind == decoder.KindEvent:
			if f.decoded[m.Event.ID] != nil {
				return fmt.Errorf("event %s decoded twice", m.Event.ID)
			}
			f.decoded[m.Event.ID] = m.Event
		case m.Kind == decoder.KindSkip && m.Skip == decoder.SkipArchived:
			f.archived[m.Event.ID] = m.Event
			f.skips[m.Skip]++
		case m.Kind == decoder.KindSkip:
			f.skips[m.Skip]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("decode the slot's changes: %v", err)
	}
	if len(f.decoded) == 0 || f.skips[decoder.SkipTombstone] == 0 {
		t.Fatalf("the slot gave %d events and %v skips: the tableFixture did not write what it should", len(f.decoded), f.skips)
	}
}

// read runs fn in a transaction as the backfill reads: repeatable read,
// read only.
func (f *tableFixture) read(t *testing.T, fn func(tx pgx.Tx, tbl *Table)) {
	t.Helper()
	ctx := t.Context()
	tx, err := f.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tbl, err := Inspect(ctx, tx, f.store.Schema)
	if err != nil {
		t.Fatal(err)
	}
	fn(tx, tbl)
}

// readAllRows reads every row in scope with one page.
func readAllRows(t *testing.T, q Querier, tbl *Table, scope Scope) []Row {
	t.Helper()
	rows, err := tbl.Page(t.Context(), q, scope, nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// rowEvents returns the events of rows, in order.
func rowEvents(rows []Row) []*cdc.Event {
	var out []*cdc.Event
	for _, r := range rows {
		if r.Event != nil {
			out = append(out, r.Event)
		}
	}
	return out
}

// unpositioned returns a copy of e without the fields the caller of a
// backfill sets: LSN, Index, CommitTime, TxID.
func unpositioned(e *cdc.Event) *cdc.Event {
	c := *e
	c.LSN, c.Index, c.CommitTime, c.TxID = 0, 0, time.Time{}, 0
	return &c
}

// diffEvents names the fields in which two events differ.
func diffEvents(got, want *cdc.Event) string {
	var diffs []string
	g, w := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := range g.NumField() {
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			diffs = append(diffs, fmt.Sprintf("%s: table %#v, decoder %#v", g.Type().Field(i).Name, g.Field(i).Interface(), w.Field(i).Interface()))
		}
	}
	return strings.Join(diffs, "; ")
}

// sortedIDs returns the ids of events, sorted.
func sortedIDs(events []*cdc.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	slices.Sort(out)
	return out
}

// TestTable reads the mt_events of every Marten layout after every write
// path and checks it against what the decoder makes of the same rows from
// the replication stream, then paging, Count, scopes, ByIDs, a read in an
// exported snapshot and the query plans.
func TestTable(t *testing.T) {
	for _, layout := range marten.Layouts() {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			f := newTableFixture(t, layout)
			// In this order: the last two write more rows.
			for _, c := range []struct {
				name string
				fn   func(*testing.T, *tableFixture)
			}{
				{"inspect", testInspect},
				{"decoder", testDecoderAgrees},
				{"paging", testPaging},
				{"scope", testScope},
				{"byids", testByIDs},
				{"snapshot", testSnapshot},
				{"plan", testPlan},
			} {
				if !t.Run(c.name, func(t *testing.T) { c.fn(t, f) }) {
					return
				}
			}
		})
	}
}

// testInspect: the optional columns and the key Inspect finds are the
// layout's.
func testInspect(t *testing.T, f *tableFixture) {
	f.read(t, func(_ pgx.Tx, tbl *Table) {
		cols := f.layout.EventColumns()
		for _, c := range optionalColumns {
			if got, want := tbl.Has(c), slices.Contains(cols, c); got != want {
				t.Errorf("Has(%q) = %v, want %v (columns %v)", c, got, want, cols)
			}
		}
		if got, want := tbl.TenantKeyed(), f.layout.TenantPartitioned(); got != want {
			t.Errorf("TenantKeyed() = %v, want %v", got, want)
		}
		if tbl.Schema() != f.store.Schema {
			t.Errorf("Schema() = %q, want %q", tbl.Schema(), f.store.Schema)
		}
		e := &cdc.Event{SeqID: 3, TenantID: "acme"}
		want := Key{SeqID: 3}
		if f.layout.TenantPartitioned() {
			want.Tenant = "acme"
		}
		if got := tbl.KeyOf(e); got != want {
			t.Errorf("KeyOf(seq 3, tenant acme) = %v, want %v", got, want)
		}
	})
}

// testDecoderAgrees: every event the decoder delivers from the slot is in
// the table read, equal in every field but the position; the table read
// has nothing else (archived events are in it, once); the rows that are
// not events are the tombstones and skipped rows; keys strictly increase.
func testDecoderAgrees(t *testing.T, f *tableFixture) {
	ctx := t.Context()
	f.read(t, func(tx pgx.Tx, tbl *Table) {
		rows := readAllRows(t, tx, tbl, Scope{})
		table := map[string]*cdc.Event{}
		skips := 0
		for i, r := range rows {
			if i > 0 && !rows[i-1].Key.Less(r.Key) {
				t.Errorf("row %d: key %v after %v", i, r.Key, rows[i-1].Key)
			}
			if (r.Key.Tenant != "") != tbl.TenantKeyed() {
				t.Errorf("row %d: key %v in a table keyed by %s", i, r.Key, tbl.keyColumns())
			}
			if r.Event == nil {
				skips++
				continue
			}
			if r.Key != tbl.KeyOf(r.Event) {
				t.Errorf("row %d: key %v, event's key %v", i, r.Key, tbl.KeyOf(r.Event))
			}
			if table[r.Event.ID] != nil {
				t.Errorf("event %s read twice", r.Event.ID)
			}
			table[r.Event.ID] = r.Event
			if r.Event.LSN != 0 || r.Event.Index != 0 || !r.Event.CommitTime.IsZero() || r.Event.TxID != 0 {
				t.Errorf("event %s has a position: %s, commit time %v, txid %d", r.Event.ID, r.Event.Position(), r.Event.CommitTime, r.Event.TxID)
			}
		}
		var total int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+tbl.name).Scan(&total); err != nil {
			t.Fatal(err)
		}
		if len(rows) != total {
			t.Errorf("read %d rows, the table has %d", len(rows), total)
		}

		for id, want := range f.decoded {
			got := table[id]
			if got == nil {
				t.Errorf("event %s (%s, seq_id %d) decoded from the slot is not in the table read", id, want.Type, want.SeqID)
				continue
			}
			if d := diffEvents(got, unpositioned(want)); d != "" {
				t.Errorf("event %s: %s", id, d)
			}
		}
		for id, want := range f.archived {
			if got := table[id]; got == nil {
				t.Errorf("archived event %s is not in the table read", id)
			} else if d := diffEvents(got, unpositioned(want)); d != "" {
				t.Errorf("archived event %s: %s", id, d)
			}
		}
		for id, e := range table {
			if f.decoded[id] == nil {
				t.Errorf("event %s (%s, seq_id %d) of the table read was not decoded from the slot", id, e.Type, e.SeqID)
			}
		}
		for _, id := range f.want {
			if table[id] == nil {
				t.Errorf("event %s, committed by the writes, is not in the table read", id)
			}
		}

		var archived []string
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(id::text), '{}') FROM `+tbl.name+` WHERE is_archived`).Scan(&archived); err != nil {
			t.Fatal(err)
		}
		if len(archived) == 0 {
			t.Error("no archived row: the tableFixture archives a stream")
		}
		for _, id := range archived {
			if table[id] == nil {
				t.Errorf("archived event %s is not in the table read", id)
			}
		}
		if f.layout == marten.LayoutArchivedPartitioned && len(f.archived) != len(archived) {
			t.Errorf("the slot has %d archived copies, the table %d archived rows", len(f.archived), len(archived))
		}
		if want := f.skips[decoder.SkipTombstone] + f.skips[decoder.SkipSkipped]; skips != want {
			t.Errorf("%d rows that are not events, want %d (decoder: %v)", skips, want, f.skips)
		}
		if f.layout == marten.LayoutMarten9 {
			var binary int
			for _, e := range table {
				if e.BData != nil {
					binary++
				}
			}
			if binary != 1 || f.skips[decoder.SkipSkipped] != 1 {
				t.Errorf("%d events with BData and %d skipped, want 1 and 1", binary, f.skips[decoder.SkipSkipped])
			}
		}
		if f.layout.TenantPartitioned() {
			// The point of the layout: seq_id repeats across tenants.
			seen, repeated := map[int64]bool{}, false
			for _, r := range rows {
				repeated = repeated || seen[r.Key.SeqID]
				seen[r.Key.SeqID] = true
			}
			if !repeated {
				t.Error("no seq_id repeats across tenants")
			}
		}
		n, err := tbl.Count(ctx, tx, Scope{}, nil)
		if err != nil || n != int64(len(table)) {
			t.Errorf("Count() = %d, %v; want %d", n, err, len(table))
		}
	})
}

// scopes returns the scopes the tests read with, from the table's events
// (in key order): each kind of bound alone, at the edges and inside, and
// combined with tenants.
func (f *tableFixture) scopes(evs []*cdc.Event) map[string]Scope {
	seqs := make([]int64, len(evs))
	times := make([]time.Time, len(evs))
	for i, e := range evs {
		seqs[i], times[i] = e.SeqID, e.Timestamp
	}
	slices.Sort(seqs)
	slices.SortFunc(times, time.Time.Compare)
	mid := times[len(times)/2]
	s := map[string]Scope{
		"all":                          {},
		"from seq 1":                   {FromSeq: 1},
		"from the middle seq_id":       {FromSeq: seqs[len(seqs)/2]},
		"from past the last seq_id":    {FromSeq: seqs[len(seqs)-1] + 1},
		"from the middle time":         {FromTime: mid},
		"from just after the middle":   {FromTime: mid.Add(time.Nanosecond)},
		"from a microsecond later":     {FromTime: mid.Add(time.Microsecond)},
		"from the first time, offset":  {FromTime: times[0].In(time.FixedZone("UTC+2", 7200))},
		"from after the last time":     {FromTime: times[len(times)-1].Add(time.Microsecond)},
		"an unknown tenant":            {Tenants: []string{"nobody"}},
		"the first tenant":             {Tenants: f.tenants[:1]},
		"every tenant and an unknown":  {Tenants: append([]string{"nobody"}, f.tenants...)},
		"the first tenant, from seq":   {FromSeq: seqs[len(seqs)/3], Tenants: f.tenants[:1]},
		"the first tenant, from time":  {FromTime: mid, Tenants: f.tenants[:1]},
		"the last tenants, from seq 3": {FromSeq: 3, Tenants: f.tenants[1:]},
	}
	if len(f.tenants) == 1 {
		delete(s, "the last tenants, from seq 3") // no tenant
	}
	return s
}

// testPaging: pages of 1, 2 and 7 rows give what one page gives, for
// several scopes, and Count after any key agrees.
func testPaging(t *testing.T, f *tableFixture) {
	ctx := t.Context()
	f.read(t, func(tx pgx.Tx, tbl *Table) {
		scopes := f.scopes(rowEvents(readAllRows(t, tx, tbl, Scope{})))
		for _, name := range []string{"all", "the first tenant", "the last tenants, from seq 3", "from the middle time"} {
			scope, ok := scopes[name]
			if !ok {
				continue
			}
			whole := readAllRows(t, tx, tbl, scope)
			for _, n := range []int{1, 2, 7} {
				var got []Row
				var after *Key
				for pages := 0; ; pages++ {
					page, err := tbl.Page(ctx, tx, scope, after, n)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > n || pages > len(whole)+1 {
						t.Fatalf("scope %s, pages of %d: a page of %d rows, page %d", scope, n, len(page), pages)
					}
					got = append(got, page...)
					if len(page) < n {
						break
					}
					after = &page[len(page)-1].Key
				}
				if !reflect.DeepEqual(got, whole) {
					t.Errorf("scope %s, pages of %d: %d rows, unlike one page of %d rows", scope, n, len(got), len(whole))
				}
			}
			// Count after each key: the events after it.
			for i, r := range whole {
				after := r.Key
				n, err := tbl.Count(ctx, tx, scope, &after)
				if err != nil {
					t.Fatal(err)
				}
				if want := int64(len(rowEvents(whole[i+1:]))); n != want {
					t.Errorf("scope %s: Count after %v = %d, want %d", scope, after, n, want)
				}
			}
		}
		if _, err := tbl.Page(ctx, tx, Scope{}, nil, 0); err == nil {
			t.Error("Page with n = 0 succeeded")
		}
		bad := Scope{FromSeq: 1, FromTime: time.Now()}
		if _, err := tbl.Page(ctx, tx, bad, nil, 10); err == nil || !strings.Contains(err.Error(), "both") {
			t.Errorf("Page(%+v): error %v, want one about both bounds", bad, err)
		}
		if _, err := tbl.Count(ctx, tx, bad, nil); err == nil {
			t.Errorf("Count(%+v) succeeded", bad)
		}
	})
}

// testScope: each scope reads exactly the events of mt_events (as
// marten.Events reads them, less skipped rows) that its rule selects, Count
// counts them, and Covers says yes to those and no to the others.
func testScope(t *testing.T, f *tableFixture) {
	ctx := t.Context()
	stored, err := marten.Events(ctx, f.conn, f.store.Schema)
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]bool{}
	if slices.Contains(f.layout.EventColumns(), "is_skipped") {
		var list []string
		if err := f.conn.QueryRow(ctx, `SELECT coalesce(array_agg(id::text), '{}') FROM `+pgx.Identifier{f.store.Schema, "mt_events"}.Sanitize()+
			` WHERE is_skipped`).Scan(&list); err != nil {
			t.Fatal(err)
		}
		for _, id := range list {
			skipped[id] = true
		}
	}
	f.read(t, func(tx pgx.Tx, tbl *Table) {
		everything := rowEvents(readAllRows(t, tx, tbl, Scope{}))
		for name, scope := range f.scopes(everything) {
			var want []string
			for _, e := range stored {
				if skipped[e.ID] || scope.FromSeq > 0 && e.SeqID < scope.FromSeq ||
					!scope.FromTime.IsZero() && e.Timestamp.Before(scope.FromTime) ||
					len(scope.Tenants) > 0 && !slices.Contains(scope.Tenants, e.TenantID) {
					continue
				}
				want = append(want, e.ID)
			}
			slices.Sort(want)
			rows := readAllRows(t, tx, tbl, scope)
			got := sortedIDs(rowEvents(rows))
			if !slices.Equal(got, want) {
				t.Errorf("%s (%s): read %d events, want %d\n got %v\nwant %v", name, scope, len(got), len(want), got, want)
			}
			if name == "all" && len(want) != len(everything) {
				t.Errorf("marten.Events has %d events, the table read %d", len(want), len(everything))
			}
			n, err := tbl.Count(ctx, tx, scope, nil)
			if err != nil || n != int64(len(want)) {
				t.Errorf("%s (%s): Count = %d, %v; want %d", name, scope, n, err, len(want))
			}
			in := map[string]bool{}
			for _, id := range got {
				in[id] = true
			}
			for _, e := range everything {
				if scope.Covers(e) != in[e.ID] {
					t.Errorf("%s (%s): Covers(seq %d, %s, %s) = %v, but Page read it: %v", name, scope, e.SeqID,
						e.Timestamp.Format(time.RFC3339Nano), e.TenantID, scope.Covers(e), in[e.ID])
				}
			}
			for _, r := range rows {
				if r.Event != nil && !scope.Covers(r.Event) {
					t.Errorf("%s: event %s read but not covered", name, r.Event.ID)
				}
			}
		}
	})
}

// testByIDs: ByIDs returns exactly the rows of the given ids whose key is in
// (after, last], in key order, for ranges at every place, including
// boundaries between tenants that share a seq_id.
func testByIDs(t *testing.T, f *tableFixture) {
	ctx := t.Context()
	f.read(t, func(tx pgx.Tx, tbl *Table) {
		rows := readAllRows(t, tx, tbl, Scope{})
		var asked []string
		for i, e := range rowEvents(rows) {
			if i%2 == 0 || i%5 == 0 {
				asked = append(asked, e.ID)
			}
		}
		asked = append(asked, "00000000-0000-0000-0000-000000000000", asked[0]) // unknown, and a repeat
		wanted := map[string]bool{}
		for _, id := range asked {
			wanted[id] = true
		}
		type span struct{ after, last int } // indexes into rows; after -1: nil
		var spans []span
		for _, step := range []int{1, 2, 3, 7, len(rows)} {
			for i := -1; i+step < len(rows); i += max(step, 5) {
				spans = append(spans, span{i, i + step})
			}
		}
		spans = append(spans, span{-1, len(rows) - 1}, span{3, 3}) // all; empty range
		for _, sp := range spans {
			var after *Key
			if sp.after >= 0 {
				after = &rows[sp.after].Key
			}
			last := rows[sp.last].Key
			var want []Row
			for i := sp.after + 1; i <= sp.last; i++ {
				if rows[i].Event != nil && wanted[rows[i].Event.ID] {
					want = append(want, rows[i])
				}
			}
			got, err := tbl.ByIDs(ctx, tx, asked, after, last)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || len(want) > 0 && !reflect.DeepEqual(got, want) {
				t.Errorf("ByIDs(after %v, last %v): %d rows, want %d", after, last, len(got), len(want))
			}
		}
		// Every id of the table, nothing outside the range.
		var all []string
		for _, e := range rowEvents(rows) {
			all = append(all, e.ID)
		}
		got, err := tbl.ByIDs(ctx, tx, all, nil, rows[len(rows)-1].Key)
		if err != nil || !reflect.DeepEqual(got, slices.DeleteFunc(slices.Clone(rows), func(r Row) bool { return r.Event == nil })) {
			t.Errorf("ByIDs(every id, whole table) = %d rows, %v; want every event", len(got), err)
		}
		if got, err := tbl.ByIDs(ctx, tx, nil, nil, rows[len(rows)-1].Key); err != nil || len(got) != 0 {
			t.Errorf("ByIDs(no ids) = %v, %v", got, err)
		}
	})
}

// testSnapshot: Inspect and Page in a transaction that imported a snapshot
// see the table as it was when the snapshot was exported, not the events
// committed since.
func testSnapshot(t *testing.T, f *tableFixture) {
	ctx := t.Context()
	exporter, err := pgtest.Conn(t, f.conn.Config().ConnString()).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exporter.Rollback(context.WithoutCancel(ctx)) }()
	var snapshot string
	if err := exporter.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		t.Fatal(err)
	}
	var before []Row
	f.read(t, func(tx pgx.Tx, tbl *Table) { before = readAllRows(t, tx, tbl, Scope{}) })

	writer := pgtest.Conn(t, f.conn.Config().ConnString())
	s := f.store.NewStreamID()
	added := marten.SampleEvents(s, "incident_logged", "incident_closed")
	if _, _, err := f.store.QuickAppend(ctx, writer, s, "incident", f.tenants[len(f.tenants)-1], added); err != nil {
		t.Fatal(err)
	}

	reader := pgtest.Conn(t, f.conn.Config().ConnString())
	tx, err := reader.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// As the backfill's caller does: the snapshot is named by the server,
	// never event data, and SET TRANSACTION SNAPSHOT takes no parameter.
	if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+strings.ReplaceAll(snapshot, "'", "''")+`'`); err != nil {
		t.Fatal(err)
	}
	tbl, err := Inspect(ctx, tx, f.store.Schema)
	if err != nil {
		t.Fatal(err)
	}
	in := readAllRows(t, tx, tbl, Scope{})
	if !reflect.DeepEqual(in, before) {
		t.Errorf("in the snapshot: %d rows, want the %d of before the appends", len(in), len(before))
	}
	f.read(t, func(tx pgx.Tx, tbl *Table) {
		now := sortedIDs(rowEvents(readAllRows(t, tx, tbl, Scope{})))
		for _, e := range added {
			if _, found := slices.BinarySearch(now, e.ID); !found {
				t.Errorf("event %s appended after the snapshot is not read outside it", e.ID)
			}
		}
	})
}

// testPlan: with a table of a few thousand rows, analyzed, a page is read
// through the primary key's index, in the custom plan and in the generic
// one: no sequential scan, no Sort of the table (an Incremental Sort on the
// index's order is fine), and, run (EXPLAIN ANALYZE), no scan returns much
// more than the page; a page of one tenant under per-tenant partitioning
// reads that tenant's partition only.
func testPlan(t *testing.T, f *tableFixture) {
	ctx := t.Context()
	var bulk []marten.StreamEvents
	for _, tenant := range f.tenants {
		for range 8 {
			id := f.store.NewStreamID()
			names := make([]string, 250)
			for i := range names {
				names[i] = marten.HelpdeskEventTypes()[i%len(marten.HelpdeskEventTypes())]
			}
			bulk = append(bulk, marten.StreamEvents{StreamID: id, StreamType: "incident", TenantID: tenant, Events: marten.SampleEvents(id, names...)})
		}
	}
	if _, err := f.store.CopyEvents(ctx, f.conn, bulk); err != nil {
		t.Fatal(err)
	}
	if _, err := f.conn.Exec(ctx, `ANALYZE `+pgx.Identifier{f.store.Schema, "mt_events"}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	f.read(t, func(tx pgx.Tx, tbl *Table) {
		first, err := tbl.Page(ctx, tx, Scope{}, nil, 1000)
		if err != nil || len(first) != 1000 {
			t.Fatalf("Page(1000) = %d rows, %v", len(first), err)
		}
		mid := first[len(first)-1].Key
		cases := []struct {
			name  string
			scope Scope
			after *Key
			n     int
		}{
			{"first page", Scope{}, nil, 500},
			{"next page", Scope{}, &mid, 500},
			{"from seq", Scope{FromSeq: mid.SeqID}, &mid, 500},
			{"a tenant", Scope{Tenants: f.tenants[:1]}, &mid, 500},
			{"a tenant from seq", Scope{FromSeq: 100, Tenants: f.tenants[len(f.tenants)-1:]}, nil, 500},
			{"from time", Scope{FromTime: time.Now().Add(-time.Hour)}, &mid, 500},
		}
		for _, c := range cases {
			for _, generic := range []bool{false, true} {
				checkPlan(t, f, tx, tbl, c.name, c.scope, c.after, c.n, generic)
			}
		}
	})
}

// checkPlan checks the plan of a page: the custom plan PostgreSQL makes for
// the values, or the generic plan it may switch to for a prepared
// statement run again and again (as pgx's statement cache does).
func checkPlan(t *testing.T, f *tableFixture, tx pgx.Tx, tbl *Table, name string, scope Scope, after *Key, n int, generic bool) {
	t.Helper()
	sql, args := tbl.pageSQL(scope, after, n)
	nodes := explain(t, tx, sql, args, generic)
	if generic {
		name += " (generic plan)"
	}
	var seen []string
	for _, node := range nodes {
		seen = append(seen, strings.TrimSpace(node.NodeType+" "+node.Relation+" "+node.Index))
	}
	used, scanned := false, 0
	for _, node := range nodes {
		switch node.NodeType {
		case "Seq Scan", "Sort", "Bitmap Heap Scan":
			t.Errorf("%s: the plan has a %s %s: %v", name, node.NodeType, node.Relation, seen)
		case "Index Scan", "Index Only Scan":
			used = true
			if !strings.Contains(node.Index, "pkey") {
				t.Errorf("%s: index scan of %s, not of the primary key: %v", name, node.Index, seen)
			}
		}
		if node.Relation != "" {
			scanned++
			// Run: the scan stops soon after the page is full (the
			// Incremental Sort finishes the group of the last seq_id).
			if node.Rows > float64(n+len(f.tenants)+1) {
				t.Errorf("%s: the scan of %s returned %.0f rows for a page of %d: %v", name, node.Relation, node.Rows, n, seen)
			}
		}
	}
	if !used {
		t.Errorf("%s: no index scan: %v", name, seen)
	}
	if f.layout.TenantPartitioned() && len(scope.Tenants) == 1 && scanned != 1 {
		t.Errorf("%s: a page of one tenant scans %d partitions: %v", name, scanned, seen)
	}
}

// planNode is a node of EXPLAIN (FORMAT JSON), flattened.
type planNode struct {
	NodeType string  `json:"Node Type"`
	Relation string  `json:"Relation Name"`
	Index    string  `json:"Index Name"`
	Rows     float64 `json:"Actual Rows"`
	Plans    []planNode
}

// explain returns the nodes of the plan of sql, depth first: its custom
// plan, or with generic its generic plan (as a prepared statement, run with
// plan_cache_mode = force_generic_plan).
func explain(t *testing.T, tx pgx.Tx, sql string, args []any, generic bool) []planNode {
	t.Helper()
	ctx := t.Context()
	var out []struct{ Plan planNode }
	var raw []byte
	query := "EXPLAIN (ANALYZE, FORMAT JSON) " + sql
	if generic {
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan; PREPARE backfill_page AS "+sql); err != nil {
			t.Fatalf("prepare %s: %v", sql, err)
		}
		defer func() {
			if _, err := tx.Exec(ctx, "DEALLOCATE backfill_page; SET LOCAL plan_cache_mode = auto"); err != nil {
				t.Fatal(err)
			}
		}()
		// EXECUTE takes no parameters of the outer statement: the test's
		// own values are written as literals.
		lits := make([]string, len(args))
		for i, a := range args {
			switch v := a.(type) {
			case string:
				lits[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
			case time.Time:
				lits[i] = "'" + v.Format(time.RFC3339Nano) + "'"
			case int, int64:
				lits[i] = fmt.Sprint(v)
			default:
				t.Fatalf("explain: no literal for %T", a)
			}
		}
		query, args = "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE backfill_page("+strings.Join(lits, ", ")+")", nil
	}
	if err := tx.QueryRow(ctx, query, args...).Scan(&raw); err != nil {
		t.Fatalf("explain %s: %v", sql, err)
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
		t.Fatalf("explain %s: %v: %s", sql, err, raw)
	}
	var nodes []planNode
	var walk func(n planNode)
	walk = func(n planNode) {
		nodes = append(nodes, n)
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(out[0].Plan)
	return nodes
}

// TestInspectErrors: a missing table, and a table without the columns an
// event needs, are errors that name the table and the columns.
func TestInspectErrors(t *testing.T) {
	ctx := t.Context()
	conn := pgtest.Conn(t, pgtest.NewDatabase(t, pg))
	if _, err := conn.Exec(ctx, `CREATE SCHEMA "Bare"; CREATE SCHEMA partial;
CREATE TABLE partial.mt_events (seq_id bigint PRIMARY KEY, id uuid, stream_id uuid, version bigint, tenant_id varchar);
CREATE VIEW public.mt_events AS SELECT 1 AS seq_id`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		schema string
		says   []string
	}{
		{"Bare", []string{"Bare.mt_events", "does not exist"}},
		{"nowhere", []string{"nowhere.mt_events", "does not exist"}},
		{"public", []string{"public.mt_events", "does not exist"}}, // a view is not the table
		{"partial", []string{"partial.mt_events", "data, type, timestamp"}},
	} {
		_, err := Inspect(ctx, conn, tc.schema)
		if err == nil {
			t.Errorf("Inspect(%q) succeeded", tc.schema)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Inspect(%q) = %q, want it to say %q", tc.schema, err, s)
			}
		}
	}
	_, err := Inspect(ctx, conn, "partial")
	var missing *decoder.MissingColumnError
	if !errors.As(err, &missing) || !slices.Equal(missing.Columns, []string{"data", "type", "timestamp"}) {
		t.Errorf("Inspect(partial) = %v, want a MissingColumnError for data, type, timestamp", err)
	}
}

// TestRowErrors: a NULL in a required column of an event is an error naming
// the row and the column, as the decoder's is; the same NULL in a tombstone
// is not (the decoder skips tombstones before it reads the other columns).
func TestRowErrors(t *testing.T) {
	ctx := t.Context()
	conn := pgtest.Conn(t, pgtest.NewMartenDatabase(t, pg, "public"))
	s := marten.Store{Schema: "public"}
	if _, _, err := s.QuickAppend(ctx, conn, s.NewStreamID(), "incident", "", marten.SampleEvents(s.NewStreamID(), "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE mt_events SET stream_id = NULL WHERE version = 2;
UPDATE mt_events SET type = 'tombstone', tenant_id = NULL WHERE version = 3`); err != nil {
		t.Fatal(err)
	}
	tbl, err := Inspect(ctx, conn, "public")
	if err != nil {
		t.Fatal(err)
	}
	page, err := tbl.Page(ctx, conn, Scope{}, nil, 1)
	if err != nil || len(page) != 1 || page[0].Event == nil {
		t.Fatalf("first row: %v, %v", page, err)
	}
	_, err = tbl.Page(ctx, conn, Scope{}, &page[0].Key, 10)
	if err == nil || !strings.Contains(err.Error(), `column "stream_id": NULL`) || !strings.Contains(err.Error(), "public.mt_events") {
		t.Errorf("a NULL stream_id: %v", err)
	}
	after := Key{SeqID: page[0].Key.SeqID + 1}
	rows, err := tbl.Page(ctx, conn, Scope{}, &after, 10)
	if err != nil || len(rows) != 1 || rows[0].Event != nil {
		t.Errorf("a tombstone with a NULL tenant_id: %v, %v; want one row that is not an event", rows, err)
	}
}

// TestTenantKeyCollation: under a tenant-keyed table whose tenant_id has a
// collation that orders tenants unlike bytes (ICU: a < ä < B < c), the keys
// still come in Key.Less order, and paging by them neither skips nor
// repeats a row.
func TestTenantKeyCollation(t *testing.T) {
	ctx := t.Context()
	conn := pgtest.Conn(t, pgtest.NewDatabase(t, pg))
	if _, err := conn.Exec(ctx, `CREATE SCHEMA coll;
CREATE TABLE coll.mt_events (seq_id bigint NOT NULL, id uuid NOT NULL, stream_id uuid, version bigint NOT NULL, data jsonb NOT NULL,
    type varchar NOT NULL, "timestamp" timestamptz NOT NULL, tenant_id varchar COLLATE "und-x-icu" NOT NULL,
    PRIMARY KEY (seq_id, tenant_id)) PARTITION BY LIST (tenant_id);
CREATE TABLE coll.mt_events_1 PARTITION OF coll.mt_events FOR VALUES IN ('a', 'B', 'Z');
CREATE TABLE coll.mt_events_2 PARTITION OF coll.mt_events DEFAULT;
INSERT INTO coll.mt_events
SELECT s, gen_random_uuid(), gen_random_uuid(), s, '{"n": 1}', CASE WHEN s % 4 = 0 THEN 'tombstone' ELSE 'e' END, now(), tenant
FROM generate_series(1, 6) s, unnest(ARRAY['a', 'ä', 'B', 'c', 'é', 'Z', 'b']) tenant`); err != nil {
		t.Fatal(err)
	}
	tbl, err := Inspect(ctx, conn, "coll")
	if err != nil {
		t.Fatal(err)
	}
	if !tbl.TenantKeyed() {
		t.Fatal("a primary key (seq_id, tenant_id) is not tenant-keyed")
	}
	whole := readAllRows(t, conn, tbl, Scope{})
	if len(whole) != 42 {
		t.Fatalf("%d rows, want 42", len(whole))
	}
	for i := 1; i < len(whole); i++ {
		if !whole[i-1].Key.Less(whole[i].Key) {
			t.Errorf("key %v after %v", whole[i].Key, whole[i-1].Key)
		}
	}
	for _, scope := range []Scope{{}, {Tenants: []string{"ä", "B", "Z"}}, {FromSeq: 3, Tenants: []string{"b", "c"}}} {
		want := readAllRows(t, conn, tbl, scope)
		for _, n := range []int{1, 2, 5} {
			var got []Row
			var after *Key
			for {
				page, err := tbl.Page(ctx, conn, scope, after, n)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page...)
				if len(page) < n {
					break
				}
				after = &page[len(page)-1].Key
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("scope %s, pages of %d: %d rows, unlike one page of %d", scope, n, len(got), len(want))
			}
		}
	}
	got, err := tbl.ByIDs(ctx, conn, []string{whole[9].Event.ID, whole[10].Event.ID, whole[13].Event.ID, whole[14].Event.ID}, &whole[9].Key, whole[13].Key)
	if err != nil || len(got) != 2 || got[0].Key != whole[10].Key || got[1].Key != whole[13].Key {
		t.Errorf("ByIDs over (%v, %v] = %v, %v; want the rows %v and %v", whole[9].Key, whole[13].Key, got, err, whole[10].Key, whole[13].Key)
	}
}
