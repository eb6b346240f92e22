package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/martencdc/cdc/internal/marten"
)

// TestLayoutDefault: Marten 8's default store in the public schema, written
// through every path (see writeEveryPath), then a Marten upgrade adding
// columns while cdc runs (a second Relation message), and updates that are
// not events: exactly the committed events, in commit order, every field as
// in mt_events.
func TestLayoutDefault(t *testing.T) {
	t.Parallel()
	r := startLayout(t, marten.LayoutDefault, "public", "", "")
	ctx := t.Context()
	want, copied := r.writeEveryPath("")

	// Updates and deletes are not events.
	_, err := r.pool.Exec(ctx, `UPDATE public.mt_events SET is_archived = true WHERE id = $1`, want[0])
	mustDo(t, "update", err)

	// A Marten upgrade while cdc runs: user_name appears (and a column cdc
	// does not know), and the next insert carries it.
	_, err = r.pool.Exec(ctx, `ALTER TABLE public.mt_events ADD COLUMN user_name varchar NULL, ADD COLUMN extra_flag int DEFAULT 7`)
	mustDo(t, "alter table", err)
	s := r.store.NewStreamID()
	e := marten.SampleEvents(s, "incident_logged")
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO public.mt_streams (id, type, version, tenant_id) VALUES ($1, 'incident', 1, '*DEFAULT*')`, s); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
INSERT INTO public.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, user_name)
VALUES (nextval('public.mt_events_sequence'), $1, $2, 1, $3, $4, now(), '*DEFAULT*', $5, 'alice')`,
			e[0].ID, s, e[0].Data, e[0].Type, e[0].DotnetType)
		return err
	})
	mustDo(t, "insert after upgrade", err)
	want = append(want, marten.IDs(e)...)

	got := r.finish(want[len(want)-1])
	checkExact(t, "out", got, want, tableEvents(t, r.pool, "public"))
	checkOneTransaction(t, got, copied)
	if u := got[len(got)-1].UserName; u == nil || *u != "alice" {
		t.Fatalf("user_name after the upgrade = %v, want alice", u)
	}
}

// TestLayoutStringIDs: StreamIdentity.AsString (varchar stream ids) in a
// non-public schema, with a decoy mt_events in public that must be ignored.
func TestLayoutStringIDs(t *testing.T) {
	t.Parallel()
	r := startLayout(t, marten.LayoutStringIDs, "helpdesk", "", "")
	ctx := t.Context()
	_, err := r.pool.Exec(ctx, `CREATE TABLE public.mt_events (LIKE helpdesk.mt_events)`)
	mustDo(t, "decoy table", err)
	want, copied := r.writeEveryPath("")
	_, err = r.pool.Exec(ctx, `INSERT INTO public.mt_events SELECT * FROM helpdesk.mt_events`)
	mustDo(t, "decoy insert", err)
	e := marten.SampleEvents("Ticket/ü 42", "incident_logged")
	_, _, err = r.store.QuickAppend(ctx, r.pool, "Ticket/ü 42", "incident", "", e)
	mustDo(t, "append", err)
	want = append(want, marten.IDs(e)...)

	got := r.finish(want[len(want)-1])
	checkExact(t, "out", got, want, tableEvents(t, r.pool, "helpdesk"))
	checkOneTransaction(t, got, copied)
}

// TestLayoutMarten7: Marten 7's column set (no correlation_id, causation_id
// or headers; the 7-parameter quick-append function) in a named schema.
func TestLayoutMarten7(t *testing.T) {
	t.Parallel()
	r := startLayout(t, marten.LayoutMarten7, "events7", "", "")
	want, copied := r.writeEveryPath("")
	got := r.finish(want[len(want)-1])
	checkExact(t, "out", got, want, tableEvents(t, r.pool, "events7"))
	checkOneTransaction(t, got, copied)
	for _, e := range got {
		if e.CorrelationID != nil || e.CausationID != nil || compactJSON(e.Headers) != "<null>" {
			t.Fatalf("event %s has metadata the table has no column for: %+v", e.ID, e)
		}
	}
}

// TestLayoutMarten9: Marten 9's column set (bdata, user_name, is_skipped,
// the 9.x quick-append function with client timestamps) plus a column cdc
// does not know. A skipped row is not delivered; an event whose body is
// only in bdata goes to the dead-letter table with a clear error, and the
// sink goes on.
func TestLayoutMarten9(t *testing.T) {
	t.Parallel()
	r := startLayoutWith(t, layoutConfig{layout: marten.LayoutMarten9, schema: "public", out: "on_error: dead_letter\n"})
	ctx := t.Context()
	_, err := r.pool.Exec(ctx, `ALTER TABLE public.mt_events ADD COLUMN tracking_note text DEFAULT 'not for cdc'`)
	mustDo(t, "extra column", err)
	want, copied := r.writeEveryPath("")

	s := r.store.NewStreamID()
	e := marten.SampleEvents(s, "incident_logged", "incident_categorised", "incident_prioritised", "incident_closed")
	e[0].UserName = "alice"
	e[1].Skipped = true
	e[2].Data, e[2].BData = nil, []byte{0x0a, 0x03, 'b', 'i', 'n'}
	e[3].BData = []byte{0xff} // a JSON body too: bdata is ignored
	_, _, err = r.store.InsertInline(ctx, r.pool, s, "incident", "", e)
	mustDo(t, "inline insert with Marten 9 columns", err)
	want = append(want, e[0].ID, e[3].ID)

	got := r.finish(want[len(want)-1])
	checkExact(t, "out", got, want, tableEvents(t, r.pool, "public"))
	checkOneTransaction(t, got, copied)
	if u := got[len(got)-2].UserName; u == nil || *u != "alice" {
		t.Fatalf("user_name = %v, want alice", u)
	}
	var id, msg string
	var n int
	mustDo(t, "dead letters", r.pool.QueryRow(ctx, `SELECT count(*) OVER (), event_id, error FROM public.cdc_dead_letters`).Scan(&n, &id, &msg))
	if n != 1 || id != e[2].ID || !strings.Contains(msg, "bdata") {
		t.Fatalf("dead letters: %d, %s %q; want one, the binary event %s, naming bdata", n, id, msg, e[2].ID)
	}
}

// TestLayoutArchivedPartitioned: under archived-stream partitioning,
// archiving a stream moves its rows into the archived partition, which the
// WAL shows as new inserts with is_archived = true: they are never
// delivered, and the events appended before and after are, exactly once.
func TestLayoutArchivedPartitioned(t *testing.T) {
	t.Parallel()
	r := startLayout(t, marten.LayoutArchivedPartitioned, "public", "", "")
	ctx := t.Context()
	want, copied := r.writeEveryPath("")
	var stream string
	mustDo(t, "stream", r.pool.QueryRow(ctx, `SELECT stream_id::text FROM public.mt_events WHERE id = $1`, want[0]).Scan(&stream))
	mustDo(t, "archive", r.store.ArchiveStream(ctx, r.pool, stream, ""))
	var archived int
	mustDo(t, "count", r.pool.QueryRow(ctx, `SELECT count(*) FROM public.mt_events_archived WHERE stream_id = $1`, stream).Scan(&archived))
	if archived != 4 {
		t.Fatalf("%d rows in the archived partition, want 4", archived)
	}
	s := r.store.NewStreamID()
	e := marten.SampleEvents(s, "incident_logged", "incident_closed")
	_, _, err := r.store.QuickAppend(ctx, r.pool, s, "incident", "", e)
	mustDo(t, "append after archiving", err)
	want = append(want, marten.IDs(e)...)

	got := r.finish(want[len(want)-1])
	checkExact(t, "out", got, want, tableEvents(t, r.pool, "public"))
	checkOneTransaction(t, got, copied)
}

// TestLayoutConjoined: conjoined tenancy (tenant_id set per session) with
// the sink filters and templates of SPEC §4: a publication row filter
// (source.filter) keeps one tenant out of the stream altogether; a file
// sink splits events by {{.TenantID}}/{{.Type}}; a sink with tenants: gets
// one tenant's events; a sink with include/exclude gets the matching types.
func TestLayoutConjoined(t *testing.T) {
	t.Parallel()
	r := startLayoutWith(t, layoutConfig{
		layout: marten.LayoutConjoined, schema: "tenancy",
		source: "filter: \"tenant_id::text in ('acme', 'globex')\"\n",
		sinks: `      - name: by-tenant
        kind: file
        path: "split/{{.TenantID}}/{{.Type}}.jsonl"
      - name: acme
        kind: file
        path: acme.jsonl
        tenants: [acme]
      - name: incidents
        kind: file
        path: incidents.jsonl
        include: ["incident_*"]
        exclude: ["incident_closed"]
`})
	byTenant := map[string][]string{}
	var want []string
	for _, tenant := range []string{"acme", "initech", "globex", "acme"} {
		ids, _ := r.writeEveryPath(tenant)
		if tenant != "initech" {
			want = append(want, ids...)
			byTenant[tenant] = append(byTenant[tenant], ids...)
		}
	}
	got := r.finish(want[len(want)-1])
	table := tableEvents(t, r.pool, "tenancy")
	checkExact(t, "out", got, want, table)

	// Every other sink holds exactly what its filter or template selects,
	// in commit order.
	selected := func(keep func(e tableEvent) bool) []string {
		var out []string
		for _, id := range want {
			if keep(table[id]) {
				out = append(out, id)
			}
		}
		return out
	}
	checkExact(t, "acme", readEnvelopes(t, filepath.Join(r.dir, "acme.jsonl")), byTenant["acme"], table)
	checkExact(t, "incidents", readEnvelopes(t, filepath.Join(r.dir, "incidents.jsonl")), selected(func(e tableEvent) bool {
		return strings.HasPrefix(e.Type, "incident_") && e.Type != "incident_closed"
	}), table)
	files, err := filepath.Glob(filepath.Join(r.dir, "split", "*", "*.jsonl"))
	mustDo(t, "glob", err)
	seen := 0
	for _, f := range files {
		tenant, typ := filepath.Base(filepath.Dir(f)), strings.TrimSuffix(filepath.Base(f), ".jsonl")
		wantHere := selected(func(e tableEvent) bool { return *e.TenantID == tenant && e.Type == typ })
		checkExact(t, "by-tenant "+tenant+"/"+typ, readEnvelopes(t, f), wantHere, table)
		seen += len(wantHere)
	}
	if seen != len(want) {
		t.Fatalf("split files hold %d events, want %d", seen, len(want))
	}
	if _, err := os.Stat(filepath.Join(r.dir, "split", "initech")); !os.IsNotExist(err) {
		t.Fatalf("initech is filtered out by the publication, yet split/initech exists (%v)", err)
	}
}

// TestLayoutConjoinedPartitioned: Marten 9 per-tenant partitioning (LIST by
// tenant_id, one sequence per tenant, so seq_id repeats across tenants).
// Events of every partition arrive through the root in commit order, and a
// tenant added while cdc runs is picked up without a restart.
func TestLayoutConjoinedPartitioned(t *testing.T) {
	t.Parallel()
	r := startLayoutWith(t, layoutConfig{
		layout: marten.LayoutConjoinedPartitioned, schema: "public",
		tenants: []string{"tenant-a", "tenant_b"},
		sinks: `      - name: by-tenant
        kind: file
        path: "{{.TenantID}}.jsonl"
`})
	ctx := t.Context()
	var want []string
	byTenant := map[string][]string{}
	write := func(tenant string) {
		ids, _ := r.writeEveryPath(tenant)
		want = append(want, ids...)
		byTenant[tenant] = append(byTenant[tenant], ids...)
	}
	write("tenant-a")
	write("tenant_b")
	mustDo(t, "add a tenant while cdc runs", r.store.AddTenant(ctx, r.pool, "tenant-c"))
	write("tenant-c")
	var stream string
	mustDo(t, "stream", r.pool.QueryRow(ctx, `SELECT stream_id::text FROM public.mt_events WHERE id = $1`, byTenant["tenant_b"][0]).Scan(&stream))
	mustDo(t, "archive", r.store.ArchiveStream(ctx, r.pool, stream, "tenant_b"))
	write("tenant-a")

	got := r.finish(want[len(want)-1])
	table := tableEvents(t, r.pool, "public")
	checkExact(t, "out", got, want, table)
	seqTenants := map[int64]map[string]bool{}
	for _, e := range got {
		if seqTenants[e.SeqID] == nil {
			seqTenants[e.SeqID] = map[string]bool{}
		}
		seqTenants[e.SeqID][*e.TenantID] = true
	}
	if len(seqTenants[1]) != 3 {
		t.Fatalf("seq_id 1 delivered for tenants %v, want all three (a sequence per tenant)", seqTenants[1])
	}
	for tenant, ids := range byTenant {
		checkExact(t, "by-tenant "+tenant, readEnvelopes(t, filepath.Join(r.dir, tenant+".jsonl")), ids, table)
	}
}
