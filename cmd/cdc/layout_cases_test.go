package main

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc/internal/marten"
)

// TestLayoutDefault: Marten 8's default store in the public schema, written
// through every path Marten uses (quick-append function, per-event INSERT
// with inline nextval, Rich mode), with tombstones and a rolled-back append
// that must not be delivered, and a Marten upgrade adding columns while cdc
// runs (a second Relation message): exactly the committed events, in commit
// order, every field as in mt_events.
func TestLayoutDefault(t *testing.T) {
	t.Parallel()
	r := startLayout(t, marten.LayoutDefault, "public", "", "")
	ctx := t.Context()
	s1, s2 := marten.NewID(), marten.NewID()
	var want []string

	e := newEvents(s1, "incident_logged", "incident_categorised")
	_, _, err := marten.QuickAppend(ctx, r.pool, "public", s1, "incident", "", e)
	mustDo(t, "quick append", err)
	want = append(want, idsOf(e)...)

	e = newEvents(s2, "incident_logged", "incident_prioritised", "agent_assigned_to_incident")
	_, err = marten.StartStreamQuick(ctx, r.pool, "public", s2, "incident", "", e)
	mustDo(t, "inline-nextval inserts", err)
	want = append(want, idsOf(e)...)

	e = newEvents(s1, "agent_responded_to_incident", "incident_resolved")
	_, _, err = marten.AppendRich(ctx, r.pool, "public", s1, "incident", "", e)
	mustDo(t, "rich append", err)
	want = append(want, idsOf(e)...)

	// A Rich append that failed after taking seq_ids: Marten fills them
	// with tombstones, which are not events.
	_, err = r.pool.Exec(ctx, `
INSERT INTO public.mt_events (data, type, mt_dotnet_type, id, stream_id, version, timestamp, tenant_id, seq_id)
SELECT '{}', 'tombstone', 'Marten.Events.Tombstone, Marten', gen_random_uuid(), NULL, n, now(), '*DEFAULT*',
       nextval('public.mt_events_sequence')
  FROM generate_series(1, 2) n`)
	mustDo(t, "tombstones", err)

	// A rolled-back append is never seen.
	tx, err := r.pool.Begin(ctx)
	mustDo(t, "begin", err)
	_, _, err = marten.QuickAppend(ctx, tx, "public", s2, "incident", "", newEvents(s2, "incident_closed"))
	mustDo(t, "quick append to roll back", err)
	mustDo(t, "rollback", tx.Rollback(ctx))

	// Updates and deletes are not events.
	_, err = r.pool.Exec(ctx, `UPDATE public.mt_events SET is_archived = true WHERE stream_id = $1`, s2)
	mustDo(t, "update", err)

	// A Marten upgrade while cdc runs: user_name appears (and a column cdc
	// does not know), and the next insert carries it.
	_, err = r.pool.Exec(ctx, `ALTER TABLE public.mt_events ADD COLUMN user_name varchar NULL, ADD COLUMN extra_flag int DEFAULT 7`)
	mustDo(t, "alter table", err)
	e = newEvents(s2, "incident_closed")
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
INSERT INTO public.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, user_name)
VALUES (nextval('public.mt_events_sequence'), $1, $2, 4, $3, $4, now(), '*DEFAULT*', $5, 'alice')`,
			e[0].ID, s2, e[0].Data, e[0].Type, e[0].DotnetType)
		return err
	})
	mustDo(t, "insert after upgrade", err)
	want = append(want, idsOf(e)...)

	got := r.finish(want[len(want)-1])
	checkExact(t, "out", got, want, tableEvents(t, r.pool, "public"))
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
	var want []string
	for i, s := range []string{"incident-1", "Ticket/ü 42", "incident-1"} {
		e := newEvents(s, "incident_logged", "incident_categorised")
		switch i {
		case 0:
			_, _, err = marten.QuickAppend(ctx, r.pool, "helpdesk", s, "incident", "", e)
		case 1:
			_, err = marten.StartStreamQuick(ctx, r.pool, "helpdesk", s, "incident", "", e)
		case 2:
			_, _, err = marten.AppendRich(ctx, r.pool, "helpdesk", s, "incident", "", e)
		}
		mustDo(t, "append", err)
		want = append(want, idsOf(e)...)
	}
	_, err = r.pool.Exec(ctx, `INSERT INTO public.mt_events SELECT * FROM helpdesk.mt_events`)
	mustDo(t, "decoy insert", err)
	e := newEvents("incident-1", "incident_closed")
	_, _, err = marten.QuickAppend(ctx, r.pool, "helpdesk", "incident-1", "incident", "", e)
	mustDo(t, "append", err)
	want = append(want, idsOf(e)...)

	got := r.finish(want[len(want)-1])
	checkExact(t, "out", got, want, tableEvents(t, r.pool, "helpdesk"))
}

// TestLayoutArchivedPartitioned: under archived-stream partitioning,
// archiving a stream moves its rows into the archived partition, which the
// WAL shows as new inserts with is_archived = true: they are never
// delivered, and the events appended before and after are, exactly once.
func TestLayoutArchivedPartitioned(t *testing.T) {
	t.Parallel()
	r := startLayout(t, marten.LayoutArchivedPartitioned, "public", "", "")
	ctx := t.Context()
	s1, s2 := marten.NewID(), marten.NewID()
	var want []string
	e := newEvents(s1, "incident_logged", "incident_categorised", "incident_resolved")
	_, err := marten.StartStreamQuick(ctx, r.pool, "public", s1, "incident", "", e)
	mustDo(t, "start stream 1", err)
	want = append(want, idsOf(e)...)
	e = newEvents(s2, "incident_logged")
	_, _, err = marten.AppendRich(ctx, r.pool, "public", s2, "incident", "", e)
	mustDo(t, "start stream 2", err)
	want = append(want, idsOf(e)...)
	e = newEvents(s1, "incident_closed")
	_, _, err = marten.QuickAppend(ctx, r.pool, "public", s1, "incident", "", e)
	mustDo(t, "append stream 1", err)
	want = append(want, idsOf(e)...)

	mustDo(t, "archive", marten.ArchiveStream(ctx, r.pool, "public", s1))
	var archived int
	mustDo(t, "count", r.pool.QueryRow(ctx, `SELECT count(*) FROM public.mt_events_archived WHERE stream_id = $1`, s1).Scan(&archived))
	if archived != 4 {
		t.Fatalf("%d rows in the archived partition, want 4", archived)
	}

	e = newEvents(s2, "incident_categorised", "incident_closed")
	_, _, err = marten.QuickAppend(ctx, r.pool, "public", s2, "incident", "", e)
	mustDo(t, "append stream 2", err)
	want = append(want, idsOf(e)...)

	got := r.finish(want[len(want)-1])
	checkExact(t, "out", got, want, tableEvents(t, r.pool, "public"))
}
