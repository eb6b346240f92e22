package marten_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

// The interfaces take what pgx's connection and transaction offer
// (*pgxpool.Pool has the same methods).
var (
	_ marten.Execer   = (*pgx.Conn)(nil)
	_ marten.Querier  = (*pgx.Conn)(nil)
	_ marten.Beginner = (*pgx.Conn)(nil)
	_ marten.Execer   = pgx.Tx(nil)
	_ marten.Querier  = pgx.Tx(nil)
	_ marten.Beginner = pgx.Tx(nil)
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

// eventRow is one row of mt_events, every column.
type eventRow struct {
	SeqID         int64
	ID            string
	StreamID      string
	Version       int64
	Data          json.RawMessage
	Type          string
	Timestamp     time.Time
	TenantID      *string
	DotnetType    *string
	CorrelationID *string
	CausationID   *string
	Headers       json.RawMessage
	IsArchived    *bool
}

// readEvents returns every row of <schema>.mt_events in seq_id order,
// checking that the table has exactly the columns read.
func readEvents(t *testing.T, conn *pgx.Conn, schema string) []eventRow {
	t.Helper()
	const cols = "seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, causation_id, headers, is_archived"
	var actual string
	err := conn.QueryRow(t.Context(),
		"SELECT string_agg(column_name::text, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'mt_events'",
		schema).Scan(&actual)
	if err != nil {
		t.Fatalf("read mt_events columns: %v", err)
	}
	if actual != cols {
		t.Fatalf("mt_events columns:\n got %s\nwant %s", actual, cols)
	}
	rows, err := conn.Query(t.Context(), "SELECT seq_id, id::text, stream_id::text, version, data, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, causation_id, headers, is_archived FROM "+
		pgx.Identifier{schema, "mt_events"}.Sanitize()+" ORDER BY seq_id")
	if err != nil {
		t.Fatalf("read mt_events: %v", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventRow, error) {
		var e eventRow
		err := r.Scan(&e.SeqID, &e.ID, &e.StreamID, &e.Version, &e.Data, &e.Type, &e.Timestamp, &e.TenantID,
			&e.DotnetType, &e.CorrelationID, &e.CausationID, &e.Headers, &e.IsArchived)
		return e, err
	})
	if err != nil {
		t.Fatalf("read mt_events: %v", err)
	}
	return out
}

// streamRow is one row of mt_streams.
type streamRow struct {
	ID         string
	Type       *string
	Version    int64
	TenantID   string
	IsArchived bool
}

func readStream(t *testing.T, conn *pgx.Conn, schema, id string) streamRow {
	t.Helper()
	var s streamRow
	err := conn.QueryRow(t.Context(), "SELECT id::text, type, version, tenant_id, is_archived FROM "+
		pgx.Identifier{schema, "mt_streams"}.Sanitize()+" WHERE id::text = $1", id).
		Scan(&s.ID, &s.Type, &s.Version, &s.TenantID, &s.IsArchived)
	if err != nil {
		t.Fatalf("read stream %s: %v", id, err)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestInstall(t *testing.T) {
	for _, layout := range marten.Layouts() {
		for _, schema := range []string{"public", "helpdesk"} {
			t.Run(layout.String()+"/"+schema, func(t *testing.T) {
				t.Parallel()
				conn := pgtest.Conn(t, pgtest.NewDatabase(t, pg))
				ctx := t.Context()
				if err := marten.InstallLayout(ctx, conn, layout, schema); err != nil {
					t.Fatalf("InstallLayout: %v", err)
				}
				var objects []string
				rows, err := conn.Query(ctx, `
					SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
					 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S') AND c.relname IN
					       ('mt_streams', 'mt_events', 'mt_events_sequence', 'mt_event_progression')
					UNION ALL
					SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
					 WHERE n.nspname = $1 AND p.proname IN ('mt_quick_append_events', 'mt_archive_stream', 'mt_mark_event_progression')
					ORDER BY 1`, schema)
				if err != nil {
					t.Fatal(err)
				}
				objects, err = pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"mt_archive_stream", "mt_event_progression", "mt_events", "mt_events_sequence",
					"mt_mark_event_progression", "mt_quick_append_events", "mt_streams"}
				if !slices.Equal(objects, want) {
					t.Errorf("objects in %s: %q, want %q", schema, objects, want)
				}
				// A second install fails as a whole and names what it was doing.
				err = marten.InstallLayout(ctx, conn, layout, schema)
				if err == nil || !strings.Contains(err.Error(), "install Marten "+layout.String()+" schema") {
					t.Errorf("second InstallLayout: err = %v, want an 'already exists' error", err)
				}
				if layout == marten.LayoutConjoinedPartitioned {
					for range 2 {
						if err := marten.AddTenant(ctx, conn, schema, "tenant-a"); err != nil {
							t.Fatalf("AddTenant: %v", err)
						}
					}
					var n int
					if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass",
						pgx.Identifier{schema, "mt_events"}.Sanitize()).Scan(&n); err != nil || n != 1 {
						t.Errorf("partitions of mt_events after AddTenant: %d, %v; want 1", n, err)
					}
				}
			})
		}
	}
	t.Run("invalid schema", func(t *testing.T) {
		conn := pgtest.Conn(t, pgtest.NewDatabase(t, pg))
		if err := marten.Install(t.Context(), conn, "bad;name"); !errors.Is(err, marten.ErrInvalidSchema) {
			t.Errorf("Install(bad;name): err = %v, want ErrInvalidSchema", err)
		}
	})
}

func TestQuickAppend(t *testing.T) {
	for _, schema := range []string{"public", "helpdesk"} {
		t.Run(schema, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			conn := pgtest.Conn(t, pgtest.NewMartenDatabase(t, pg, schema))
			streamA, streamB := marten.NewID(), marten.NewID()
			logged := marten.NewEvent{
				ID:            marten.NewID(),
				Type:          "incident_logged",
				DotnetType:    "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api",
				Data:          json.RawMessage(`{"IncidentId":"` + streamA + `","Description":"Printer on fire","LoggedAt":"2026-11-22T10:00:00+00:00"}`),
				CausationID:   "cmd-1",
				CorrelationID: "corr-42",
				Headers:       json.RawMessage(`{"source":"api"}`),
			}
			categorised := marten.NewEvent{
				ID:            marten.NewID(),
				Type:          "incident_categorised",
				DotnetType:    "Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api",
				Data:          json.RawMessage(`{"IncidentId":"` + streamA + `","Category":2}`),
				CausationID:   "cmd-1",
				CorrelationID: "corr-42",
				Headers:       json.RawMessage(`{"source":"api"}`),
			}
			// No causation id, no headers, no .NET type: NULLs.
			prioritised := marten.NewEvent{
				ID:            marten.NewID(),
				Type:          "incident_prioritised",
				Data:          json.RawMessage(`{"IncidentId":"` + streamA + `","Priority":1,"Note":"it's \"urgent\" \\ ünïcode"}`),
				CorrelationID: "corr-43",
			}
			other := marten.NewEvent{ID: marten.NewID(), Type: "incident_logged", Data: json.RawMessage(`{}`)}

			began := time.Now()
			appends := []struct {
				stream, streamType, tenant string
				events                     []marten.NewEvent
				version                    int64
				seqIDs                     []int64
			}{
				{streamA, "incident", "", []marten.NewEvent{logged, categorised}, 2, []int64{1, 2}},
				{streamA, "incident", marten.DefaultTenantID, []marten.NewEvent{prioritised}, 3, []int64{3}},
				{streamB, "", "", []marten.NewEvent{other}, 1, []int64{4}},
			}
			for i, a := range appends {
				version, seqIDs, err := marten.QuickAppend(ctx, conn, schema, a.stream, a.streamType, a.tenant, a.events)
				if err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
				if version != a.version || !slices.Equal(seqIDs, a.seqIDs) {
					t.Errorf("append %d: version %d seq_ids %v, want %d %v", i, version, seqIDs, a.version, a.seqIDs)
				}
			}
			ended := time.Now()

			want := []eventRow{
				{1, logged.ID, streamA, 1, logged.Data, logged.Type, time.Time{}, ptr("*DEFAULT*"), ptr(logged.DotnetType), ptr("corr-42"), ptr("cmd-1"), logged.Headers, ptr(false)},
				{2, categorised.ID, streamA, 2, categorised.Data, categorised.Type, time.Time{}, ptr("*DEFAULT*"), ptr(categorised.DotnetType), ptr("corr-42"), ptr("cmd-1"), categorised.Headers, ptr(false)},
				{3, prioritised.ID, streamA, 3, prioritised.Data, prioritised.Type, time.Time{}, ptr("*DEFAULT*"), nil, ptr("corr-43"), nil, nil, ptr(false)},
				{4, other.ID, streamB, 1, other.Data, other.Type, time.Time{}, ptr("*DEFAULT*"), nil, nil, nil, nil, ptr(false)},
			}
			got := readEvents(t, conn, schema)
			if len(got) != len(want) {
				t.Fatalf("%d rows in mt_events, want %d", len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				// Quick append stamps events with the server clock (in UTC).
				if g.Timestamp.Before(began.Add(-time.Second)) || g.Timestamp.After(ended.Add(time.Second)) {
					t.Errorf("row %d: timestamp %v not within the append (%v..%v)", i, g.Timestamp, began, ended)
				}
				if !jsonEqual(g.Data, w.Data) || !jsonEqual(g.Headers, w.Headers) {
					t.Errorf("row %d: data %s headers %s, want %s %s", i, g.Data, g.Headers, w.Data, w.Headers)
				}
				g.Timestamp, g.Data, g.Headers = time.Time{}, nil, nil
				w.Data, w.Headers = nil, nil
				if !reflect.DeepEqual(g, w) {
					t.Errorf("row %d:\n got %s\nwant %s", i, fmtRow(g), fmtRow(w))
				}
			}

			if got, want := readStream(t, conn, schema, streamA), (streamRow{streamA, ptr("incident"), 3, "*DEFAULT*", false}); !reflect.DeepEqual(got, want) {
				t.Errorf("stream A: %+v, want %+v", got, want)
			}
			if got, want := readStream(t, conn, schema, streamB), (streamRow{streamB, nil, 1, "*DEFAULT*", false}); !reflect.DeepEqual(got, want) {
				t.Errorf("stream B: %+v, want %+v", got, want)
			}

			// A tenant that does not match the stream's is refused, and
			// the failed call leaves no row behind.
			_, _, err := marten.QuickAppend(ctx, conn, schema, streamA, "incident", "other-tenant",
				[]marten.NewEvent{{ID: marten.NewID(), Type: "x", Data: json.RawMessage(`{}`)}})
			if err == nil || !strings.Contains(err.Error(), "tenantid does not match") {
				t.Errorf("append with another tenant: err = %v", err)
			}
			if n := len(readEvents(t, conn, schema)); n != 4 {
				t.Errorf("%d rows after a failed append, want 4", n)
			}
		})
	}
}

func fmtRow(e eventRow) string {
	s := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	return fmt.Sprintf("seq=%d id=%s stream=%s v=%d type=%s tenant=%s dotnet=%s corr=%s cause=%s archived=%v",
		e.SeqID, e.ID, e.StreamID, e.Version, e.Type, s(e.TenantID), s(e.DotnetType), s(e.CorrelationID), s(e.CausationID), e.IsArchived)
}

func TestQuickAppendRejectsBadInput(t *testing.T) {
	good := marten.NewEvent{ID: marten.NewID(), Type: "t", Data: json.RawMessage(`{}`)}
	tests := []struct {
		name   string
		schema string
		events []marten.NewEvent
		want   string
	}{
		{"no events", "public", nil, "no events"},
		{"no id", "public", []marten.NewEvent{{Type: "t", Data: json.RawMessage(`{}`)}}, "event 0: id"},
		{"bad id", "public", []marten.NewEvent{good, {ID: "42", Type: "t", Data: json.RawMessage(`{}`)}}, "event 1: id"},
		{"no type", "public", []marten.NewEvent{{ID: marten.NewID(), Data: json.RawMessage(`{}`)}}, "empty type"},
		{"no data", "public", []marten.NewEvent{{ID: marten.NewID(), Type: "t"}}, "empty data"},
		{"bad data", "public", []marten.NewEvent{{ID: marten.NewID(), Type: "t", Data: json.RawMessage(`{`)}}, "not valid JSON"},
		{"bad headers", "public", []marten.NewEvent{{ID: marten.NewID(), Type: "t", Data: json.RawMessage(`{}`), Headers: json.RawMessage(`x`)}}, "headers are not valid JSON"},
		{"bad schema", "x; drop table y", []marten.NewEvent{good}, "invalid schema name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No database is needed: input is checked before any query.
			_, _, err := marten.QuickAppend(context.Background(), nil, tt.schema, marten.NewID(), "incident", "", tt.events)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestOtherWritePaths(t *testing.T) {
	ctx := t.Context()
	const schema = "helpdesk"
	conn := pgtest.Conn(t, pgtest.NewMartenDatabase(t, pg, schema))
	stream := marten.NewID()
	ev := func(typ string) marten.NewEvent {
		return marten.NewEvent{ID: marten.NewID(), Type: typ, Data: json.RawMessage(`{"IncidentId":"` + stream + `"}`),
			CorrelationID: "corr", Headers: json.RawMessage(`{"k":"v"}`)}
	}

	seqIDs, err := marten.StartStreamQuick(ctx, conn, schema, stream, "incident", "", []marten.NewEvent{ev("incident_logged"), ev("incident_categorised")})
	if err != nil || !slices.Equal(seqIDs, []int64{1, 2}) {
		t.Fatalf("StartStreamQuick: %v, %v; want [1 2]", seqIDs, err)
	}
	if _, err := marten.StartStreamQuick(ctx, conn, schema, stream, "incident", "", []marten.NewEvent{ev("incident_logged")}); err == nil {
		t.Errorf("StartStreamQuick on an existing stream succeeded")
	}
	// The stream row insert failed first: no seq_id was drawn.

	at := time.Date(2026, 11, 22, 10, 5, 0, 0, time.UTC)
	rich := ev("incident_prioritised")
	rich.Timestamp = at
	version, seqIDs, err := marten.AppendRich(ctx, conn, schema, stream, "incident", "", []marten.NewEvent{rich, ev("agent_assigned_to_incident")})
	if err != nil || version != 4 || !slices.Equal(seqIDs, []int64{3, 4}) {
		t.Fatalf("AppendRich to existing stream: %d %v %v; want 4 [3 4]", version, seqIDs, err)
	}
	other := marten.NewID()
	version, seqIDs, err = marten.AppendRich(ctx, conn, schema, other, "incident", "", []marten.NewEvent{ev("incident_logged")})
	if err != nil || version != 1 || !slices.Equal(seqIDs, []int64{5}) {
		t.Fatalf("AppendRich to new stream: %d %v %v; want 1 [5]", version, seqIDs, err)
	}
	// Quick append continues after the other paths.
	version, seqIDs, err = marten.QuickAppend(ctx, conn, schema, stream, "incident", "", []marten.NewEvent{ev("incident_resolved")})
	if err != nil || version != 5 || !slices.Equal(seqIDs, []int64{6}) {
		t.Fatalf("QuickAppend after Rich: %d %v %v; want 5 [6]", version, seqIDs, err)
	}

	rows := readEvents(t, conn, schema)
	var versions []int64
	for _, r := range rows {
		if r.StreamID == stream {
			versions = append(versions, r.Version)
		}
		if r.ID == rich.ID && !r.Timestamp.Equal(at) {
			t.Errorf("rich event timestamp %v, want the client's %v", r.Timestamp, at)
		}
	}
	if !slices.Equal(versions, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("versions of the stream: %v, want 1..5", versions)
	}
	if s := readStream(t, conn, schema, stream); s.Version != 5 {
		t.Errorf("mt_streams.version = %d, want 5", s.Version)
	}

	if err := marten.ArchiveStream(ctx, conn, schema, stream); err != nil {
		t.Fatalf("ArchiveStream: %v", err)
	}
	for _, r := range readEvents(t, conn, schema) {
		if archived := r.StreamID == stream; *r.IsArchived != archived {
			t.Errorf("seq %d: is_archived = %v, want %v", r.SeqID, *r.IsArchived, archived)
		}
	}
	if !readStream(t, conn, schema, stream).IsArchived {
		t.Errorf("stream not archived")
	}

	for _, mark := range []int64{3, 6} {
		if err := marten.MarkEventProgression(ctx, conn, schema, "HighWaterMark", mark); err != nil {
			t.Fatalf("MarkEventProgression: %v", err)
		}
	}
	var last int64
	if err := conn.QueryRow(ctx, `SELECT last_seq_id FROM helpdesk.mt_event_progression WHERE name = 'HighWaterMark'`).Scan(&last); err != nil || last != 6 {
		t.Errorf("HighWaterMark = %d, %v; want 6", last, err)
	}
}

// checkLifecycle returns an error unless types is a prefix of an incident's
// lifecycle: logged; categorised, prioritised and assigned in any order;
// agent responses, each maybe answered by the customer; resolved;
// acknowledged; closed.
func checkLifecycle(types []string) error {
	i := 0
	next := func() (string, bool) {
		if i == len(types) {
			return "", false
		}
		i++
		return types[i-1], true
	}
	if typ, _ := next(); typ != "incident_logged" {
		return fmt.Errorf("starts with %q", typ)
	}
	triage := map[string]bool{"incident_categorised": true, "incident_prioritised": true, "agent_assigned_to_incident": true}
	for range 3 {
		typ, ok := next()
		if !ok {
			return nil
		}
		if !triage[typ] {
			return fmt.Errorf("event %d is %s during triage", i, typ)
		}
		delete(triage, typ)
	}
	for i < len(types) && types[i] == "agent_responded_to_incident" {
		i++
		if i < len(types) && types[i] == "customer_responded_to_incident" {
			i++
		}
	}
	for _, want := range []string{"incident_resolved", "resolution_acknowledged_by_customer", "incident_closed"} {
		typ, ok := next()
		if !ok {
			return nil
		}
		if typ != want {
			return fmt.Errorf("event %d is %s, want %s", i, typ, want)
		}
	}
	if i != len(types) {
		return fmt.Errorf("events after incident_closed")
	}
	return nil
}

// helpdeskTrace is what a Helpdesk generated, without random ids.
type helpdeskTrace struct {
	streams []int    // index of the stream in order of first appearance
	types   []string // event types, flattened
}

func runHelpdesk(seed uint64, n int, each func(stream string, events []marten.NewEvent)) helpdeskTrace {
	h := marten.NewHelpdesk(rand.New(rand.NewPCG(seed, 0)))
	index := map[string]int{}
	var tr helpdeskTrace
	for range n {
		stream, events := h.Next()
		if _, ok := index[stream]; !ok {
			index[stream] = len(index)
		}
		tr.streams = append(tr.streams, index[stream])
		for _, e := range events {
			tr.types = append(tr.types, e.Type)
		}
		if each != nil {
			each(stream, events)
		}
	}
	return tr
}

func TestHelpdeskDeterministic(t *testing.T) {
	a, b := runHelpdesk(7, 300, nil), runHelpdesk(7, 300, nil)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two runs with the same seed differ")
	}
	if c := runHelpdesk(8, 300, nil); reflect.DeepEqual(a, c) {
		t.Errorf("runs with different seeds are identical")
	}
}

func TestHelpdeskLifecycle(t *testing.T) {
	perStream := map[string][]string{}
	var order []string
	runHelpdesk(1, 2000, func(stream string, events []marten.NewEvent) {
		if len(events) < 1 || len(events) > 3 {
			t.Fatalf("Next returned %d events", len(events))
		}
		if prev := perStream[stream]; len(prev) > 0 && prev[len(prev)-1] == "incident_closed" {
			t.Fatalf("stream %s picked after it was closed", stream)
		}
		if len(perStream[stream]) == 0 {
			order = append(order, stream)
		}
		for _, e := range events {
			perStream[stream] = append(perStream[stream], e.Type)
			if e.DotnetType != marten.HelpdeskDotnetType(e.Type) || e.DotnetType == "" {
				t.Errorf("%s: .NET type %q", e.Type, e.DotnetType)
			}
			if e.CorrelationID != events[0].CorrelationID || e.CausationID != events[0].CausationID || !bytes.Equal(e.Headers, events[0].Headers) {
				t.Errorf("events of one Next call do not share correlation, causation and headers")
			}
			var body map[string]any
			if err := json.Unmarshal(e.Data, &body); err != nil {
				t.Fatalf("%s body %s: %v", e.Type, e.Data, err)
			}
			if body["IncidentId"] != stream {
				t.Errorf("%s body IncidentId %v, want the stream id %s", e.Type, body["IncidentId"], stream)
			}
			for k := range body {
				if k[0] < 'A' || k[0] > 'Z' {
					t.Errorf("%s body property %q is not PascalCase", e.Type, k)
				}
			}
		}
	})

	closed := 0
	for _, stream := range order {
		types := perStream[stream]
		if err := checkLifecycle(types); err != nil {
			t.Errorf("stream %s: %v: %q", stream, err, types)
		}
		if types[len(types)-1] == "incident_closed" {
			closed++
		}
	}
	if closed < 50 {
		t.Errorf("only %d of %d incidents closed after 2000 calls", closed, len(order))
	}

	// One body in full, to pin the System.Text.Json shape.
	h := marten.NewHelpdesk(rand.New(rand.NewPCG(3, 3)))
	_, events := h.Next()
	var logged struct {
		IncidentId, CustomerId, Description, LoggedBy, LoggedAt string
		Contact                                                 map[string]any
	}
	dec := json.NewDecoder(bytes.NewReader(events[0].Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&logged); err != nil {
		t.Fatalf("decode IncidentLogged %s: %v", events[0].Data, err)
	}
	if _, err := time.Parse(time.RFC3339Nano, logged.LoggedAt); err != nil || !strings.HasSuffix(logged.LoggedAt, "+00:00") {
		t.Errorf("LoggedAt %q: want a DateTimeOffset ending in +00:00 (%v)", logged.LoggedAt, err)
	}
	for _, k := range []string{"ContactChannel", "FirstName", "LastName", "EmailAddress", "PhoneNumber"} {
		if _, ok := logged.Contact[k]; !ok {
			t.Errorf("Contact lacks %s: %s", k, events[0].Data)
		}
	}
	if _, ok := logged.Contact["ContactChannel"].(float64); !ok {
		t.Errorf("ContactChannel is not a number: %s", events[0].Data)
	}
}

func TestHelpdeskWorkload(t *testing.T) {
	ctx := t.Context()
	const schema = "helpdesk"
	conn := pgtest.Conn(t, pgtest.NewMartenDatabase(t, pg, schema))
	total := 0
	versions := map[string]int64{}
	runHelpdesk(42, 150, func(stream string, events []marten.NewEvent) {
		version, seqIDs, err := marten.QuickAppend(ctx, conn, schema, stream, marten.HelpdeskStreamType, "", events)
		if err != nil {
			t.Fatalf("QuickAppend: %v", err)
		}
		for i, seq := range seqIDs {
			if want := int64(total + i + 1); seq != want {
				t.Fatalf("seq_id %d, want %d", seq, want)
			}
		}
		total += len(events)
		versions[stream] += int64(len(events))
		if version != versions[stream] {
			t.Fatalf("stream %s version %d, want %d", stream, version, versions[stream])
		}
	})

	var n, streams int
	var badVersions int
	err := conn.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM helpdesk.mt_events),
		       (SELECT count(*) FROM helpdesk.mt_streams WHERE type = 'incident'),
		       (SELECT count(*) FROM helpdesk.mt_streams s
		         WHERE s.version <> (SELECT max(version) FROM helpdesk.mt_events e WHERE e.stream_id = s.id))`).
		Scan(&n, &streams, &badVersions)
	if err != nil {
		t.Fatal(err)
	}
	if n != total || streams != len(versions) || badVersions != 0 {
		t.Errorf("%d events in %d streams (%d with a wrong version), want %d in %d", n, streams, badVersions, total, len(versions))
	}
}
