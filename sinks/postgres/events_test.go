package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc"
)

// TestModeEvents copies events into a table, again and again: each event
// is there once, with its envelope.
func TestModeEvents(t *testing.T) {
	for _, table := range []string{"", "archive.events"} {
		t.Run("table="+table, func(t *testing.T) {
			pool := newTarget(t, "")
			s := newSink(t, pool, Config{Mode: ModeEvents, Table: table})
			if err := s.Prepare(context.Background()); err != nil {
				t.Fatal(err)
			}
			name := s.events.table.sql()
			events := newFeed(4).next(500)
			sparse := testEvent(1<<20, "incident_logged", `{"Description":"no metadata"}`)
			sparse.LSN = events[len(events)-1].LSN + 0x100
			events = append(events, sparse)
			for i := 0; i < len(events); i += 100 {
				write(t, s, events[i:min(i+100, len(events))])
			}
			write(t, s, events) // again
			if n := count(t, pool, `SELECT count(*) FROM `+name); n != len(events) {
				t.Fatalf("%d rows, want %d", n, len(events))
			}
			// A crash, then a replay from the start through a new sink, and
			// another sink copying into the same table: on conflict do nothing.
			write(t, newSink(t, pool, Config{Mode: ModeEvents, Table: table}), events)
			write(t, newSink(t, pool, Config{Mode: ModeEvents, Table: table, Sink: "other"}), events)
			if n := count(t, pool, `SELECT count(*) FROM `+name); n != len(events) {
				t.Fatalf("%d rows after replays, want %d", n, len(events))
			}
			for _, e := range []*cdc.Event{events[7], sparse} {
				checkEventRow(t, s, name, e)
			}
		})
	}
}

// checkEventRow compares the row of e in table name with e.
func checkEventRow(t *testing.T, s *Sink, name string, e *cdc.Event) {
	t.Helper()
	var (
		id, streamID, typ, tenant, lsn       string
		seq, version                         int64
		dotnet, correlation, causation, user *string
		ts, commit                           *time.Time
		data, headers                        []byte
	)
	err := s.pool.QueryRow(context.Background(), `SELECT id::text, seq_id, stream_id, version, type, dotnet_type, tenant_id,
"timestamp", data, correlation_id, causation_id, headers, user_name, lsn::text, commit_time FROM `+name+` WHERE id = $1`, e.ID).
		Scan(&id, &seq, &streamID, &version, &typ, &dotnet, &tenant, &ts, &data, &correlation, &causation, &headers, &user, &lsn, &commit)
	if err != nil {
		t.Fatal(err)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	tm := func(p *time.Time) time.Time {
		if p == nil {
			return time.Time{}
		}
		return p.UTC()
	}
	got := fmt.Sprint(id, seq, streamID, version, typ, str(dotnet), tenant, tm(ts), str(correlation), str(causation), str(user), lsn, tm(commit))
	want := fmt.Sprint(e.ID, e.SeqID, e.StreamID, e.Version, e.Type, e.DotnetType, e.TenantID, e.Timestamp.UTC().Truncate(time.Microsecond),
		e.CorrelationID, e.CausationID, e.UserName, e.LSN.String(), e.CommitTime.UTC().Truncate(time.Microsecond))
	if got != want {
		t.Errorf("row of %s\n got %s\nwant %s", e.ID, got, want)
	}
	if !jsonEqual(t, data, e.Data) {
		t.Errorf("data %s, want %s", data, e.Data)
	}
	if (headers == nil) != (e.Headers == nil) || (headers != nil && !jsonEqual(t, headers, e.Headers)) {
		t.Errorf("headers %s, want %s", headers, e.Headers)
	}
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// TestModeEventsRejected: a trigger on the events table refuses one event;
// the batch insert fails, the event is found, the ones before it are
// copied.
func TestModeEventsRejected(t *testing.T) {
	pool := newTarget(t, "")
	s := newSink(t, pool, Config{Mode: ModeEvents})
	if err := s.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'poison' THEN RAISE EXCEPTION 'refused %', NEW.id; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON cdc_events FOR EACH ROW EXECUTE FUNCTION refuse()`)
	events := make([]*cdc.Event, 10)
	for i := range events {
		events[i] = testEvent(int64(i), "tick", `{}`)
	}
	events[6].Type = "poison"
	rej := rejected(t, s.Write(context.Background(), cdc.Batch{Events: events}))
	if rej.Index != 6 {
		t.Fatalf("rejected %d, want 6", rej.Index)
	}
	if n := count(t, pool, `SELECT count(*) FROM cdc_events`); n != 6 {
		t.Fatalf("%d rows, want 6", n)
	}
	write(t, s, events[7:])
	ids, err := pgx.CollectRows(must(pool.Query(context.Background(), `SELECT id::text FROM cdc_events ORDER BY seq_id`)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 9 || ids[6] != events[7].ID {
		t.Fatalf("rows %v", ids)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
