package marten_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

// writePath is one of Marten's write paths, as a Store method.
type writePath struct {
	name string
	// write appends each stream's events (all streams at once for copy) and
	// returns each stream's new version (nil when the path does not say)
	// and seq_ids.
	write func(ctx context.Context, s marten.Store, conn *pgx.Conn, streams []marten.StreamEvents) ([]int64, [][]int64, error)
	// clientClock reports whether the path writes NewEvent.Timestamp for
	// the layout (otherwise the server stamps events).
	clientClock func(marten.Layout) bool
}

// oneByOne adapts a single-stream write method to writePath.write.
func oneByOne(f func(ctx context.Context, s marten.Store, conn *pgx.Conn, st marten.StreamEvents) (int64, []int64, error)) func(context.Context, marten.Store, *pgx.Conn, []marten.StreamEvents) ([]int64, [][]int64, error) {
	return func(ctx context.Context, s marten.Store, conn *pgx.Conn, streams []marten.StreamEvents) ([]int64, [][]int64, error) {
		var versions []int64
		var seqIDs [][]int64
		for _, st := range streams {
			v, ids, err := f(ctx, s, conn, st)
			if err != nil {
				return nil, nil, err
			}
			versions, seqIDs = append(versions, v), append(seqIDs, ids)
		}
		return versions, seqIDs, nil
	}
}

func is9(l marten.Layout) bool {
	return l == marten.LayoutMarten9 || l == marten.LayoutConjoinedPartitioned
}

var writePaths = []writePath{
	{
		name: "quick",
		write: oneByOne(func(ctx context.Context, s marten.Store, conn *pgx.Conn, st marten.StreamEvents) (int64, []int64, error) {
			return s.QuickAppend(ctx, conn, st.StreamID, st.StreamType, st.TenantID, st.Events)
		}),
		clientClock: is9,
	},
	{
		// StartStreamQuick for a stream's first events, InsertInline after.
		name: "inline",
		write: oneByOne(func(ctx context.Context, s marten.Store, conn *pgx.Conn, st marten.StreamEvents) (int64, []int64, error) {
			if len(st.Events) == 2 {
				ids, err := s.StartStreamQuick(ctx, conn, st.StreamID, st.StreamType, st.TenantID, st.Events)
				return int64(len(st.Events)), ids, err
			}
			return s.InsertInline(ctx, conn, st.StreamID, st.StreamType, st.TenantID, st.Events)
		}),
		clientClock: func(marten.Layout) bool { return false },
	},
	{
		name: "rich",
		write: oneByOne(func(ctx context.Context, s marten.Store, conn *pgx.Conn, st marten.StreamEvents) (int64, []int64, error) {
			return s.AppendRich(ctx, conn, st.StreamID, st.StreamType, st.TenantID, st.Events)
		}),
		clientClock: func(marten.Layout) bool { return true },
	},
	{
		name: "copy",
		write: func(ctx context.Context, s marten.Store, conn *pgx.Conn, streams []marten.StreamEvents) ([]int64, [][]int64, error) {
			ids, err := s.CopyEvents(ctx, conn, streams)
			return nil, ids, err
		},
		clientClock: func(marten.Layout) bool { return true },
	},
}

// readRows returns every row of <schema>.<table> as a JSON object (to_jsonb),
// in the given order.
func readRows(t *testing.T, conn *pgx.Conn, schema, table, order string) []map[string]any {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT to_jsonb(r) FROM "+pgx.Identifier{schema, table}.Sanitize()+" r ORDER BY "+order)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[map[string]any])
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	return out
}

// normalize returns v as JSON decodes it (numbers as float64, objects as
// maps), for comparisons with rows read as JSON.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// nullable is s, or nil (JSON null) when empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// wantEvent is the mt_events row Marten writes for e in layout, as JSON
// (without timestamp).
func wantEvent(layout marten.Layout, e marten.NewEvent, seq int64, stream string, version int64, tenant string, archived bool) map[string]any {
	data := json.RawMessage(e.Data)
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	row := map[string]any{
		"seq_id": seq, "id": e.ID, "stream_id": stream, "version": version, "data": data, "type": e.Type,
		"tenant_id": tenant, "mt_dotnet_type": nullable(e.DotnetType), "is_archived": archived,
	}
	for _, col := range layout.EventColumns() {
		switch col {
		case "correlation_id":
			row[col] = nullable(e.CorrelationID)
		case "causation_id":
			row[col] = nullable(e.CausationID)
		case "headers":
			if e.Headers != nil {
				row[col] = e.Headers
			} else {
				row[col] = nil
			}
		case "user_name":
			row[col] = nullable(e.UserName)
		case "bdata":
			if e.BData != nil {
				row[col] = `\x` + hex.EncodeToString(e.BData)
			} else {
				row[col] = nil
			}
		case "is_skipped":
			row[col] = e.Skipped
		}
	}
	return row
}

// wantStream is the part of an mt_streams row the tests check.
type wantStream struct {
	ID       string
	Type     any
	Version  int64
	Tenant   string
	Archived bool
}

func (s wantStream) json() map[string]any {
	return map[string]any{"id": s.ID, "type": s.Type, "version": s.Version, "tenant_id": s.Tenant, "is_archived": s.Archived}
}

// checkStreams compares the mt_streams rows (id, type, version, tenant_id,
// is_archived) with want, in any order.
func checkStreams(t *testing.T, conn *pgx.Conn, schema string, want []wantStream) {
	t.Helper()
	var got, exp []string
	for _, r := range readRows(t, conn, schema, "mt_streams", "tenant_id, id") {
		b, _ := json.Marshal(map[string]any{"id": r["id"], "type": r["type"], "version": r["version"], "tenant_id": r["tenant_id"], "is_archived": r["is_archived"]})
		got = append(got, string(b))
	}
	for _, w := range want {
		b, _ := json.Marshal(normalize(t, w.json()))
		exp = append(exp, string(b))
	}
	slices.Sort(got)
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		t.Errorf("mt_streams:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(exp, "\n     "))
	}
}

// checkEvents compares the mt_events rows (in tenant_id, seq_id order) with
// want, every column but timestamp, which is passed to checkTime for each
// row. Rows whose want has no "id" match any event id.
func checkEvents(t *testing.T, conn *pgx.Conn, schema string, want []map[string]any, checkTime func(i int, ts time.Time)) {
	t.Helper()
	got := readRows(t, conn, schema, "mt_events", "tenant_id, seq_id")
	if len(got) != len(want) {
		t.Errorf("%d rows in mt_events, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g := got[i]
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(g["timestamp"]))
		if err != nil {
			t.Errorf("row %d: timestamp %v: %v", i, g["timestamp"], err)
		} else if checkTime != nil {
			checkTime(i, ts)
		}
		delete(g, "timestamp")
		if _, ok := want[i]["id"]; !ok {
			delete(g, "id")
		}
		if w := normalize(t, want[i]); !reflect.DeepEqual(any(g), w) {
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			t.Errorf("row %d:\n got %s\nwant %s", i, gb, wb)
		}
	}
}

// TestWritePaths runs every write path on every layout and checks the exact
// rows: versions, seq_ids (per tenant under per-tenant partitioning),
// tenants, and the columns each layout has.
func TestWritePaths(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, layout := range marten.Layouts() {
		for pi, path := range writePaths {
			t.Run(layout.String()+"/"+path.name, func(t *testing.T) {
				t.Parallel()
				schema := []string{"helpdesk", "public"}[pi%2]
				s := marten.Store{Layout: layout, Schema: schema}
				conn := pgtest.Conn(t, pgtest.NewMartenDatabaseLayout(t, pg, layout, schema))
				ctx := t.Context()

				ta, tb := marten.DefaultTenantID, marten.DefaultTenantID
				if layout.Conjoined() {
					ta, tb = "tenant-a", "tenant_b"
				}
				for _, tn := range []string{ta, tb} {
					if err := s.AddTenant(ctx, conn, tn); err != nil {
						t.Fatal(err)
					}
				}
				streamA, streamB := marten.NewID(), marten.NewID()
				e1 := marten.NewEvent{
					ID: marten.NewID(), Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api",
					Data:        json.RawMessage(`{"IncidentId":"` + streamA + `","Description":"Printer on fire"}`),
					CausationID: "cmd-1", CorrelationID: "corr-42", Headers: json.RawMessage(`{"source":"api"}`),
					UserName: "alice", Timestamp: t0,
				}
				e2 := marten.NewEvent{
					ID: marten.NewID(), Type: "incident_categorised", DotnetType: "Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api",
					Data: json.RawMessage(`{"IncidentId":"` + streamA + `","Category":2}`), CorrelationID: "corr-42",
					Timestamp: t0.Add(1500 * time.Millisecond),
				}
				if is9(layout) { // a binary-serialized event
					e2.Data, e2.BData = nil, []byte{0x01, 0x00, 0xfe, 'x'}
				}
				e3 := marten.NewEvent{ID: marten.NewID(), Type: "incident_prioritised", Data: json.RawMessage(`{"Priority":1,"Note":"it's \"urgent\" ünïcode"}`),
					Skipped: layout == marten.LayoutMarten9 && path.name != "quick"}
				e4 := marten.NewEvent{ID: marten.NewID(), Type: "incident_logged", Data: json.RawMessage(`{}`)}
				e5 := marten.NewEvent{ID: marten.NewID(), Type: "incident_logged", Data: json.RawMessage(`{"Tenant":"b"}`), UserName: "bob", CausationID: "cmd-5"}

				type step struct {
					streams  []marten.StreamEvents
					versions []int64
					seqIDs   [][]int64
				}
				perTenant := layout.TenantPartitioned()
				seq := func(shared, own []int64) []int64 {
					if perTenant {
						return own
					}
					return shared
				}
				steps := []step{
					{[]marten.StreamEvents{{StreamID: streamA, StreamType: "incident", TenantID: ta, Events: []marten.NewEvent{e1, e2}}}, []int64{2}, [][]int64{{1, 2}}},
					{[]marten.StreamEvents{{StreamID: streamA, StreamType: "incident", TenantID: ta, Events: []marten.NewEvent{e3}}}, []int64{3}, [][]int64{{3}}},
					{[]marten.StreamEvents{{StreamID: streamB, TenantID: tb, Events: []marten.NewEvent{e4}}}, []int64{1}, [][]int64{seq([]int64{4}, []int64{1})}},
				}
				if layout.Conjoined() { // the same stream id in another tenant is another stream
					last := &steps[2]
					last.streams = append(last.streams, marten.StreamEvents{StreamID: streamA, StreamType: "incident", TenantID: tb, Events: []marten.NewEvent{e5}})
					last.versions = append(last.versions, 1)
					last.seqIDs = append(last.seqIDs, seq([]int64{5}, []int64{2}))
				}

				began := time.Now()
				for i, st := range steps {
					versions, seqIDs, err := path.write(ctx, s, conn, st.streams)
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if versions != nil && !slices.Equal(versions, st.versions) || !reflect.DeepEqual(seqIDs, st.seqIDs) {
						t.Errorf("step %d: versions %v seq_ids %v, want %v %v", i, versions, seqIDs, st.versions, st.seqIDs)
					}
				}
				ended := time.Now()

				want := []map[string]any{
					wantEvent(layout, e1, 1, streamA, 1, ta, false),
					wantEvent(layout, e2, 2, streamA, 2, ta, false),
					wantEvent(layout, e3, 3, streamA, 3, ta, false),
					wantEvent(layout, e4, seq([]int64{4}, []int64{1})[0], streamB, 1, tb, false),
				}
				stamps := []time.Time{e1.Timestamp, e2.Timestamp, {}, {}}
				if layout.Conjoined() {
					want = append(want, wantEvent(layout, e5, seq([]int64{5}, []int64{2})[0], streamA, 1, tb, false))
					stamps = append(stamps, time.Time{})
				}
				checkTime := func(i int, ts time.Time) {
					if path.clientClock(layout) && !stamps[i].IsZero() {
						if !ts.Equal(stamps[i]) {
							t.Errorf("row %d: timestamp %v, want the client's %v", i, ts, stamps[i])
						}
					} else if ts.Before(began.Add(-time.Second)) || ts.After(ended.Add(time.Second)) {
						t.Errorf("row %d: timestamp %v not within the append (%v..%v)", i, ts, began, ended)
					}
				}
				checkEvents(t, conn, schema, want, checkTime)
				streams := []wantStream{{streamA, "incident", 3, ta, false}, {streamB, nil, 1, tb, false}}
				if layout.Conjoined() {
					streams = append(streams, wantStream{streamA, "incident", 1, tb, false})
				}
				checkStreams(t, conn, schema, streams)

				// Archiving stream A (of tenant a) flags (or moves) its rows
				// only; further appends to it are refused.
				if err := s.ArchiveStream(ctx, conn, streamA, ta); err != nil {
					t.Fatalf("ArchiveStream: %v", err)
				}
				for i := range 3 {
					want[i]["is_archived"] = true
				}
				streams[0].Archived = true
				checkEvents(t, conn, schema, want, nil)
				checkStreams(t, conn, schema, streams)

				more := []marten.StreamEvents{{StreamID: streamA, TenantID: ta, Events: []marten.NewEvent{{ID: marten.NewID(), Type: "incident_closed", Data: json.RawMessage(`{}`)}}}}
				_, _, err := path.write(ctx, s, conn, more)
				var pgErr *pgconn.PgError
				switch {
				case path.name != "quick":
					if !errors.Is(err, marten.ErrStreamArchived) {
						t.Errorf("append to an archived stream: err = %v, want ErrStreamArchived", err)
					}
				case is9(layout):
					if !errors.As(err, &pgErr) || pgErr.Code != "MT001" {
						t.Errorf("quick append to an archived stream: err = %v, want SQLSTATE MT001", err)
					}
				}

				if perTenant {
					more[0].TenantID = "nobody"
					_, _, err := path.write(ctx, s, conn, more)
					if path.name == "quick" {
						if !errors.As(err, &pgErr) || pgErr.Code != "MT002" {
							t.Errorf("quick append for an unknown tenant: err = %v, want SQLSTATE MT002", err)
						}
					} else if !errors.Is(err, marten.ErrUnknownTenant) {
						t.Errorf("append for an unknown tenant: err = %v, want ErrUnknownTenant", err)
					}
				}
			})
		}
	}
}

// TestCopyEventsManyStreams: one COPY of several streams, new and existing,
// of several tenants.
func TestCopyEventsManyStreams(t *testing.T) {
	for _, layout := range []marten.Layout{marten.LayoutDefault, marten.LayoutConjoinedPartitioned} {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			s := marten.Store{Layout: layout, Schema: "helpdesk"}
			conn := pgtest.Conn(t, pgtest.NewMartenDatabaseLayout(t, pg, layout, s.Schema))
			ctx := t.Context()
			ta, tb := "", ""
			if layout.Conjoined() {
				ta, tb = "a", "b"
				for _, tn := range []string{ta, tb} {
					if err := s.AddTenant(ctx, conn, tn); err != nil {
						t.Fatal(err)
					}
				}
			}
			ev := func() marten.NewEvent {
				return marten.NewEvent{ID: marten.NewID(), Type: "incident_logged", Data: json.RawMessage(`{}`)}
			}
			x, y, z := marten.NewID(), marten.NewID(), marten.NewID()
			if _, err := s.CopyEvents(ctx, conn, []marten.StreamEvents{{StreamID: x, TenantID: ta, Events: []marten.NewEvent{ev()}}}); err != nil {
				t.Fatal(err)
			}
			got, err := s.CopyEvents(ctx, conn, []marten.StreamEvents{
				{StreamID: y, TenantID: tb, Events: []marten.NewEvent{ev(), ev()}},
				{StreamID: x, TenantID: ta, Events: []marten.NewEvent{ev(), ev()}},
				{StreamID: z, TenantID: tb, Events: []marten.NewEvent{ev()}},
			})
			if err != nil {
				t.Fatal(err)
			}
			want := [][]int64{{2, 3}, {4, 5}, {6}}
			if layout.TenantPartitioned() {
				want = [][]int64{{1, 2}, {2, 3}, {3}}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("seq_ids %v, want %v", got, want)
			}
			var versions []int64
			rows, err := conn.Query(ctx, "SELECT version FROM helpdesk.mt_streams WHERE id = $1", x)
			if err == nil {
				versions, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			}
			if err != nil || !slices.Equal(versions, []int64{3}) {
				t.Errorf("stream x versions %v, %v; want [3]", versions, err)
			}
			_, err = s.CopyEvents(ctx, conn, []marten.StreamEvents{{StreamID: x, TenantID: ta, Events: []marten.NewEvent{ev()}}, {StreamID: strings.ToUpper(x), TenantID: ta, Events: []marten.NewEvent{ev()}}})
			if err == nil || !strings.Contains(err.Error(), "appears twice") {
				t.Errorf("CopyEvents with a stream twice: err = %v", err)
			}
		})
	}
}

// TestTombstones: after a Rich append fails having drawn its seq_ids, the
// lost seq_ids are filled with tombstone rows as Marten does, on every
// layout.
func TestTombstones(t *testing.T) {
	for _, layout := range marten.Layouts() {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			s := marten.Store{Layout: layout, Schema: "helpdesk"}
			conn := pgtest.Conn(t, pgtest.NewMartenDatabaseLayout(t, pg, layout, s.Schema))
			ctx := t.Context()
			tn := marten.DefaultTenantID
			if layout.Conjoined() {
				tn = "tenant-a"
			}
			if err := s.AddTenant(ctx, conn, tn); err != nil {
				t.Fatal(err)
			}
			stream := marten.NewID()
			good := marten.NewEvent{ID: marten.NewID(), Type: "incident_logged", Data: json.RawMessage(`{"ok":true}`)}
			bad := marten.NewEvent{ID: marten.NewID(), Type: strings.Repeat("x", 501), Data: json.RawMessage(`{}`)} // type is varchar(500)

			began := time.Now()
			_, lost, err := s.AppendRich(ctx, conn, stream, "incident", tn, []marten.NewEvent{good, bad})
			if err == nil || !slices.Equal(lost, []int64{1, 2}) {
				t.Fatalf("failing AppendRich: seq_ids %v, err %v; want [1 2] and an error", lost, err)
			}
			if err := s.InsertTombstones(ctx, conn, tn, lost); err != nil {
				t.Fatalf("InsertTombstones: %v", err)
			}
			if _, seqIDs, err := s.AppendRich(ctx, conn, stream, "incident", tn, []marten.NewEvent{good}); err != nil || !slices.Equal(seqIDs, []int64{3}) {
				t.Fatalf("AppendRich: %v %v, want [3]", seqIDs, err)
			}
			if _, lost, err = s.AppendRich(ctx, conn, stream, "incident", tn, []marten.NewEvent{bad}); err == nil {
				t.Fatalf("second failing AppendRich succeeded")
			}
			// The tombstone stream exists already: its insert does nothing.
			if err := s.InsertTombstones(ctx, conn, tn, lost); err != nil {
				t.Fatalf("second InsertTombstones: %v", err)
			}
			ended := time.Now()

			tomb := func(seq int64) map[string]any {
				row := wantEvent(layout, marten.NewEvent{Type: marten.TombstoneType, DotnetType: s.TombstoneDotnetType(), Data: json.RawMessage(`{}`)},
					seq, s.TombstoneStreamID(), seq, tn, false)
				delete(row, "id") // a new id per tombstone
				return row
			}
			want := []map[string]any{tomb(1), tomb(2), wantEvent(layout, good, 3, stream, 1, tn, false), tomb(4)}
			checkEvents(t, conn, s.Schema, want, func(i int, ts time.Time) {
				if ts.Before(began.Add(-time.Second)) || ts.After(ended.Add(time.Second)) {
					t.Errorf("row %d: timestamp %v not within the test", i, ts)
				}
			})
			checkStreams(t, conn, s.Schema, []wantStream{{stream, "incident", 1, tn, false}, {s.TombstoneStreamID(), nil, 0, tn, false}})
		})
	}
	if id := (marten.Store{Layout: marten.LayoutStringIDs}).TombstoneStreamID(); id != "mt_tombstone" {
		t.Errorf("tombstone stream with string ids: %q", id)
	}
	if a, b := (marten.Store{}).TombstoneStreamID(), (marten.Store{Layout: marten.LayoutMarten9}).TombstoneStreamID(); a != b {
		t.Errorf("tombstone stream ids differ within one process: %s, %s", a, b)
	}
	if d := (marten.Store{Layout: marten.LayoutMarten7}).TombstoneDotnetType(); d != "Marten.Events.Operations.Tombstone, Marten" {
		t.Errorf("Marten 7 tombstone type %q", d)
	}
}

// TestQuickAppendExpectedVersion: the Marten 9 functions' trailing
// expected_version guard raises MT003 and leaves no seq_id drawn.
func TestQuickAppendExpectedVersion(t *testing.T) {
	for _, layout := range []marten.Layout{marten.LayoutMarten9, marten.LayoutConjoinedPartitioned} {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			s := marten.Store{Layout: layout, Schema: "helpdesk"}
			conn := pgtest.Conn(t, pgtest.NewMartenDatabaseLayout(t, pg, layout, s.Schema))
			ctx := t.Context()
			if err := s.AddTenant(ctx, conn, marten.DefaultTenantID); err != nil {
				t.Fatal(err)
			}
			call := func(expected int64) error {
				userNames := ""
				if layout == marten.LayoutMarten9 {
					userNames = "ARRAY[NULL]::varchar[], "
				}
				var ret []int64
				return conn.QueryRow(ctx, `SELECT helpdesk.mt_quick_append_events($1::uuid, 'incident', '*DEFAULT*', ARRAY[gen_random_uuid()],
					ARRAY['x']::varchar[], ARRAY['X, Y']::varchar[], ARRAY['{}']::jsonb[], ARRAY[NULL]::bytea[],
					ARRAY[NULL]::varchar[], ARRAY[NULL]::varchar[], ARRAY[NULL]::jsonb[], `+userNames+`ARRAY[now()]::timestamptz[], $2)`,
					"c1000000-0000-4000-8000-000000000001", expected).Scan(&ret)
			}
			if err := call(0); err != nil {
				t.Fatalf("expected version 0 on a new stream: %v", err)
			}
			var pgErr *pgconn.PgError
			if err := call(7); !errors.As(err, &pgErr) || pgErr.Code != "MT003" {
				t.Fatalf("expected version 7 on version 1: err = %v, want SQLSTATE MT003", err)
			}
			if err := call(1); err != nil {
				t.Fatalf("expected version 1: %v", err)
			}
			var seqs []int64
			rows, err := conn.Query(ctx, "SELECT seq_id FROM helpdesk.mt_events ORDER BY seq_id")
			if err == nil {
				seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			}
			if err != nil || !slices.Equal(seqs, []int64{1, 2}) {
				t.Errorf("seq_ids %v, %v; want [1 2]: the refused call draws none", seqs, err)
			}
		})
	}
}

// TestStoreRejectsBadInput: what each layout cannot write is refused before
// any query.
func TestStoreRejectsBadInput(t *testing.T) {
	bin := marten.NewEvent{ID: marten.NewID(), Type: "t", BData: []byte{1}}
	skipped := marten.NewEvent{ID: marten.NewID(), Type: "t", Data: json.RawMessage(`{}`), Skipped: true}
	good := marten.NewEvent{ID: marten.NewID(), Type: "t", Data: json.RawMessage(`{}`)}
	tests := []struct {
		name   string
		store  marten.Store
		stream string
		events []marten.NewEvent
		quick  bool
		want   string
	}{
		{"binary data before Marten 9", marten.Store{Layout: marten.LayoutDefault, Schema: "public"}, marten.NewID(), []marten.NewEvent{bin}, false, "binary data needs a Marten 9 layout"},
		{"binary data in Marten 7", marten.Store{Layout: marten.LayoutMarten7, Schema: "public"}, marten.NewID(), []marten.NewEvent{bin}, true, "binary data needs a Marten 9 layout"},
		{"skipped without is_skipped", marten.Store{Layout: marten.LayoutConjoinedPartitioned, Schema: "public"}, marten.NewID(), []marten.NewEvent{skipped}, false, "need mt_events.is_skipped"},
		{"skipped by quick append", marten.Store{Layout: marten.LayoutMarten9, Schema: "public"}, marten.NewID(), []marten.NewEvent{good, skipped}, true, "event 1: mt_quick_append_events cannot write is_skipped"},
		{"stream id not a uuid", marten.Store{Layout: marten.LayoutMarten9, Schema: "public"}, "incident-42", []marten.NewEvent{good}, false, "stream id"},
		{"unknown layout", marten.Store{Layout: 42, Schema: "public"}, marten.NewID(), []marten.NewEvent{good}, true, "unknown layout Layout(42)"},
		{"no schema", marten.Store{}, marten.NewID(), []marten.NewEvent{good}, false, "invalid schema name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No database: input is checked before any query.
			var err error
			if tt.quick {
				_, _, err = tt.store.QuickAppend(t.Context(), nil, tt.stream, "", "", tt.events)
			} else {
				_, _, err = tt.store.AppendRich(t.Context(), nil, tt.stream, "", "", tt.events)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
