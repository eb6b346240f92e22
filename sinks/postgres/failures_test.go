package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
)

// itemsDDL is the target of the failure tests: items whose n may not be
// negative, and refs to items checked at commit.
const itemsDDL = `
CREATE TABLE items (id uuid PRIMARY KEY, n int NOT NULL CHECK (n >= 0), label text);
CREATE TABLE refs (id uuid PRIMARY KEY, item uuid NOT NULL REFERENCES items DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE fail_switch (code text);
INSERT INTO fail_switch VALUES (NULL);
CREATE FUNCTION fail_if_set() RETURNS int LANGUAGE plpgsql AS $$
DECLARE c text;
BEGIN
    SELECT code INTO c FROM fail_switch;
    IF c IS NOT NULL THEN
        RAISE EXCEPTION 'failing with %', c USING ERRCODE = c;
    END IF;
    RETURN 0;
END $$;`

// itemRoutes are SQL projections of the item events.
func itemRoutes(t testing.TB) []Route {
	t.Helper()
	add, err := SQL("items", []string{"item_added"},
		`INSERT INTO items (id, n, label) VALUES ($id, ($data->>'N')::int + fail_if_set(), $data->>'Label')`)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := SQL("refs", []string{"ref_added"}, `INSERT INTO refs (id, item) VALUES ($id, ($data->>'Item')::uuid)`)
	if err != nil {
		t.Fatal(err)
	}
	return []Route{add, ref}
}

// applyOnly hides the Batcher of a projection: the sink applies it event by
// event.
type applyOnly struct{ p Projection }

func (a applyOnly) Apply(ctx context.Context, tx pgx.Tx, e *cdc.Event) error {
	return a.p.Apply(ctx, tx, e)
}

// items returns n item_added events, n = 1, 2, 3...
func items(n int) []*cdc.Event {
	out := make([]*cdc.Event, n)
	for i := range out {
		out[i] = testEvent(int64(i), "item_added", fmt.Sprintf(`{"N":%d,"Label":"item %d"}`, i+1, i))
	}
	return out
}

// itemIDs returns the ids in items, in id order.
func itemIDs(t testing.TB, pool *pgxpool.Pool, table string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id::text FROM `+table+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// idsOf returns the ids of events.
func idsOf(events []*cdc.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.ID)
	}
	slices.Sort(out)
	return out
}

// TestPoisonEvent: an event a statement refuses is rejected with its index;
// the events before it are committed with the checkpoint just before it;
// writing the events after it goes on.
func TestPoisonEvent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		at      int    // index of the poison event in a batch of 8
		data    string // its data
		typ     string
		applied bool   // projections applied one by one (not pipelined)
		code    string // SQLSTATE of the rejection
	}{
		{"check constraint in the middle", 3, `{"N":-5}`, "item_added", false, "23514"},
		{"first event", 0, `{"N":-5}`, "item_added", false, "23514"},
		{"last event", 7, `{"N":-5}`, "item_added", false, "23514"},
		{"invalid cast of event data", 5, `{"N":"five"}`, "item_added", false, "22P02"},
		{"duplicate key", 4, `{"N":1}`, "dup", false, "23505"},
		{"deferred foreign key fails at commit", 6, `{"Item":"4d2c6a3e-8f1b-4c55-9a9e-0d1f2e3a4b5c"}`, "ref_added", false, "23503"},
		{"applied: check constraint", 3, `{"N":-5}`, "item_added", true, "23514"},
		{"applied: deferred foreign key", 2, `{"Item":"4d2c6a3e-8f1b-4c55-9a9e-0d1f2e3a4b5c"}`, "ref_added", true, "23503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := newTarget(t, itemsDDL)
			routes := itemRoutes(t)
			if tc.applied {
				for i := range routes {
					routes[i].Projection = applyOnly{routes[i].Projection}
				}
			}
			s := newSink(t, pool, Config{Routes: routes})
			events := items(8)
			bad := events[tc.at]
			bad.Type, bad.Data = tc.typ, []byte(tc.data)
			if tc.typ == "dup" {
				bad.Type, bad.ID = "item_added", events[0].ID
				if tc.at == 0 {
					t.Fatal("dup needs an event before it")
				}
			}
			if tc.at > 1 {
				// A ref to an item of the batch before it.
				events[1].Type, events[1].Data = "ref_added", []byte(fmt.Sprintf(`{"Item":%q}`, events[0].ID))
			}

			err := s.Write(context.Background(), cdc.Batch{Events: events})
			rej := rejected(t, err)
			if rej.Index != tc.at {
				t.Fatalf("rejected index %d, want %d (%v)", rej.Index, tc.at, err)
			}
			var pe *ProjectionError
			if !errors.As(err, &pe) {
				t.Fatalf("%v: not a ProjectionError", err)
			}
			var pge *pgconn.PgError
			if !errors.As(err, &pge) || pge.Code != tc.code {
				t.Fatalf("%v: want SQLSTATE %s", err, tc.code)
			}
			wantProj := "items"
			if tc.typ == "ref_added" {
				wantProj = "refs"
			}
			wantStmt := 1 // deferred constraints fail at the end of the event, no statement in particular
			if tc.typ == "ref_added" {
				wantStmt = 0
			}
			if pe.Projection != wantProj || pe.EventID != bad.ID || pe.Position != bad.Position() || pe.Statement != wantStmt {
				t.Errorf("ProjectionError %+v, want projection %s, event %s at %s, statement %d", pe, wantProj, bad.ID, bad.Position(), wantStmt)
			}
			if msg := err.Error(); !strings.Contains(msg, "projection "+wantProj) || !strings.Contains(msg, bad.ID) || !strings.Contains(msg, tc.code) {
				t.Errorf("message %q should name the projection, the event and the SQLSTATE", msg)
			}

			before := events[:tc.at]
			var wantItems, wantRefs []*cdc.Event
			for _, e := range before {
				if e.Type == "ref_added" {
					wantRefs = append(wantRefs, e)
				} else {
					wantItems = append(wantItems, e)
				}
			}
			if got := itemIDs(t, pool, "items"); !slices.Equal(got, idsOf(wantItems)) {
				t.Errorf("items %v, want %v", got, idsOf(wantItems))
			}
			if got := itemIDs(t, pool, "refs"); !slices.Equal(got, idsOf(wantRefs)) {
				t.Errorf("refs %v, want %v", got, idsOf(wantRefs))
			}
			p, ok := checkpointOf(t, s)
			if tc.at == 0 {
				if ok {
					t.Errorf("checkpoint %v after rejecting the first event, want none", p)
				}
			} else if !ok || p != events[tc.at-1].Position() {
				t.Errorf("checkpoint %v %v, want %v", p, ok, events[tc.at-1].Position())
			}

			// on_error: dead_letter: the pipeline writes the events after it.
			write(t, s, events[tc.at+1:])
			var rest []*cdc.Event
			for i, e := range events {
				if i != tc.at && e.Type != "ref_added" {
					rest = append(rest, e)
				}
			}
			if got := itemIDs(t, pool, "items"); !slices.Equal(got, idsOf(rest)) {
				t.Errorf("after the rest: items %v, want %v", got, idsOf(rest))
			}
			last := events[7]
			if tc.at == 7 {
				last = events[6] // nothing after the poison event to write
			}
			if p, _ := checkpointOf(t, s); p != last.Position() {
				t.Errorf("checkpoint %v, want %v", p, last.Position())
			}
		})
	}
}

// TestRetryableErrors: connection, serialization, deadlock, shutdown and
// configuration errors are plain errors that leave nothing behind, and the
// batch succeeds once the cause is gone; errors of the event are
// rejections.
func TestRetryableErrors(t *testing.T) {
	for _, tc := range []struct {
		code   string
		reject bool
	}{
		{"40001", false}, // serialization_failure
		{"40P01", false}, // deadlock_detected
		{"57P01", false}, // admin_shutdown
		{"08006", false}, // connection_failure
		{"53300", false}, // too_many_connections
		{"55P03", false}, // lock_not_available
		{"42703", false}, // undefined_column: configuration
		{"23514", true},  // check_violation
		{"22P02", true},  // invalid_text_representation
		{"P0001", true},  // raise_exception
	} {
		for _, applied := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s applied=%v", tc.code, applied), func(t *testing.T) {
				pool := newTarget(t, itemsDDL)
				routes := itemRoutes(t)
				if applied {
					routes[0].Projection = applyOnly{routes[0].Projection}
				}
				s := newSink(t, pool, Config{Routes: routes})
				events := items(5)
				write(t, s, events[:1])
				mustExec(t, pool, `UPDATE fail_switch SET code = $1`, tc.code)
				err := s.Write(context.Background(), cdc.Batch{Events: events[1:]})
				var rej *cdc.RejectedError
				if errors.As(err, &rej) != tc.reject {
					t.Fatalf("got %v, want rejected=%v", err, tc.reject)
				}
				if !strings.Contains(fmt.Sprint(err), tc.code) {
					t.Errorf("error %v does not name SQLSTATE %s", err, tc.code)
				}
				if tc.reject {
					if rej.Index != 0 {
						t.Fatalf("rejected index %d, want 0", rej.Index)
					}
					return
				}
				if n := count(t, pool, `SELECT count(*) FROM items`); n != 1 {
					t.Fatalf("%d items after a failed batch, want 1", n)
				}
				if p, _ := checkpointOf(t, s); p != events[0].Position() {
					t.Fatalf("checkpoint %v after a failed batch, want %v", p, events[0].Position())
				}
				mustExec(t, pool, `UPDATE fail_switch SET code = NULL`)
				write(t, s, events[1:])
				if n := count(t, pool, `SELECT count(*) FROM items`); n != 5 {
					t.Fatalf("%d items, want 5", n)
				}
			})
		}
	}
}

// TestConnectionKilled: the server ends the connection in the middle of a
// batch; Write returns a plain error and the next Write succeeds.
func TestConnectionKilled(t *testing.T) {
	pool := newTarget(t, `CREATE TABLE items (id uuid PRIMARY KEY)`)
	kill, err := SQL("items", []string{"*"},
		`INSERT INTO items VALUES ($id)`,
		`SELECT CASE WHEN $type = 'kill' AND $data->>'Killed' IS NULL THEN pg_terminate_backend(pg_backend_pid()) END`)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, pool, Config{Routes: []Route{kill}})
	events := items(4)
	events[2].Type = "kill"
	err = s.Write(context.Background(), cdc.Batch{Events: events})
	var rej *cdc.RejectedError
	if err == nil || errors.As(err, &rej) {
		t.Fatalf("got %v, want a plain error", err)
	}
	t.Logf("killed: %v", err)
	if n := count(t, pool, `SELECT count(*) FROM items`); n != 0 {
		t.Fatalf("%d items after a failed batch, want 0", n)
	}
	events[2].Data = []byte(`{"Killed":true}`)
	write(t, s, events)
	if n := count(t, pool, `SELECT count(*) FROM items`); n != 4 {
		t.Fatalf("%d items, want 4", n)
	}
}

// TestInjectionStaysData: event fields holding SQL are stored as data.
func TestInjectionStaysData(t *testing.T) {
	pool := newTarget(t, `CREATE TABLE notes (id text PRIMARY KEY, stream text, type text, tenant text, "user" text, label text, literal text)`)
	r, err := SQL("notes", []string{"*"}, `INSERT INTO notes VALUES ($id, $stream_id, $type, $tenant_id, $user_name, $data->>'Label', '$data')`)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, pool, Config{Routes: []Route{r}})
	attacks := []string{
		`'); DROP TABLE notes; --`,
		`x', 'y'); DROP TABLE notes; --`,
		`$1`, `$data`, `$$; DROP TABLE notes; $$`,
		`\'; DROP TABLE notes; --`,
		`"; DROP TABLE notes; --`,
		"*/ DROP TABLE notes; /*",
	}
	var events []*cdc.Event
	for i, a := range attacks {
		e := testEvent(int64(i), "x'); DROP TABLE notes; --", "")
		e.ID = a + fmt.Sprint(i)
		e.StreamID, e.TenantID, e.UserName = a, a, a
		e.Data = []byte(fmt.Sprintf(`{"Label":%q}`, a))
		events = append(events, e)
	}
	write(t, s, events)
	rows, err := pool.Query(context.Background(), `SELECT id, stream, type, tenant, "user", label, literal FROM notes ORDER BY id`)
	if err != nil {
		t.Fatalf("the notes table is gone? %v", err)
	}
	got := map[string][]string{}
	for rows.Next() {
		v := make([]string, 7)
		if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]); err != nil {
			t.Fatal(err)
		}
		got[v[0]] = v[1:]
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i, a := range attacks {
		want := []string{a, "x'); DROP TABLE notes; --", a, a, a, "$data"}
		if g := got[a+fmt.Sprint(i)]; !slices.Equal(g, want) {
			t.Errorf("event %d: got %q, want %q", i, g, want)
		}
	}
}
