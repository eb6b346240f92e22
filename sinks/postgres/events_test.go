package postgres

import (
	"context"
	"encoding/json"
	"errors"
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
// copied. In a batch of several chunks, the chunks before the one that
// failed are rolled back with it and then copied too.
func TestModeEventsRejected(t *testing.T) {
	for _, tc := range []struct{ events, poison int }{
		{10, 6},
		{3*eventsChunk + 7, 2*eventsChunk + 3},
	} {
		t.Run(fmt.Sprintf("%d_events", tc.events), func(t *testing.T) {
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
			events := make([]*cdc.Event, tc.events)
			for i := range events {
				events[i] = testEvent(int64(i), "tick", `{}`)
			}
			events[tc.poison].Type = "poison"
			rej := rejected(t, s.Write(context.Background(), cdc.Batch{Events: events}))
			if rej.Index != tc.poison {
				t.Fatalf("rejected %d, want %d", rej.Index, tc.poison)
			}
			if n := count(t, pool, `SELECT count(*) FROM cdc_events`); n != tc.poison {
				t.Fatalf("%d rows, want %d", n, tc.poison)
			}
			if got, ok, err := s.readCheckpoint(context.Background()); err != nil || !ok || got != events[tc.poison-1].Position() {
				t.Fatalf("checkpoint %v (%v, %v), want %v", got, ok, err, events[tc.poison-1].Position())
			}
			write(t, s, events[tc.poison+1:])
			ids, err := pgx.CollectRows(must(pool.Query(context.Background(), `SELECT id::text FROM cdc_events ORDER BY seq_id`)), pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != tc.events-1 || ids[tc.poison] != events[tc.poison+1].ID {
				t.Fatalf("%d rows, row %d %s", len(ids), tc.poison, ids[min(tc.poison, len(ids)-1)])
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestModeEventsCompareAndSet: in ModeEvents too, a sink whose idea of
// the checkpoint is stale has its whole batch, every chunk of it, rolled
// back.
func TestModeEventsCompareAndSet(t *testing.T) {
	pool := newTarget(t, "")
	a := newSink(t, pool, Config{Mode: ModeEvents})
	b := newSink(t, pool, Config{Mode: ModeEvents})
	events := make([]*cdc.Event, 3*eventsChunk)
	for i := range events {
		events[i] = testEvent(int64(i), "tick", `{}`)
	}
	write(t, a, events[:10])
	write(t, b, events[:20]) // b reads the checkpoint first: copies 10..19
	if err := a.Write(context.Background(), cdc.Batch{Events: events}); !errors.Is(err, errCheckpointMoved) {
		t.Fatalf("stale sink: got %v, want errCheckpointMoved", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM cdc_events`); n != 20 {
		t.Fatalf("%d rows after the refused batch, want 20", n)
	}
	write(t, a, events) // reads the checkpoint again
	if n := count(t, pool, `SELECT count(*) FROM cdc_events`); n != len(events) {
		t.Fatalf("%d rows, want %d", n, len(events))
	}
}

// TestModeEventsCanceled: a Write of several chunks whose context ends
// while the server inserts them leaves no row and no checkpoint behind.
func TestModeEventsCanceled(t *testing.T) {
	pool := newTarget(t, "")
	s := newSink(t, pool, Config{Mode: ModeEvents})
	if err := s.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'slow' THEN PERFORM pg_sleep(10); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER slow BEFORE INSERT ON cdc_events FOR EACH ROW EXECUTE FUNCTION slow()`)
	events := make([]*cdc.Event, 2*eventsChunk+1)
	for i := range events {
		events[i] = testEvent(int64(i), "tick", `{}`)
	}
	events[eventsChunk+1].Type = "slow"
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Write(ctx, cdc.Batch{Events: events}); err == nil {
		t.Fatal("Write succeeded despite the deadline")
	}
	if n := count(t, pool, `SELECT count(*) FROM cdc_events`); n != 0 {
		t.Fatalf("a canceled Write left %d rows", n)
	}
	if _, ok := checkpointOf(t, s); ok {
		t.Fatal("a canceled Write moved the checkpoint")
	}
	events[eventsChunk+1].Type = "tick"
	write(t, s, events)
	if n := count(t, pool, `SELECT count(*) FROM cdc_events`); n != len(events) {
		t.Fatalf("%d rows, want %d", n, len(events))
	}
}
