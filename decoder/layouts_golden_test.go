package decoder

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	cdc "github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
)

var capture = flag.Bool("capture", false, "regenerate testdata/layout_*.hex and .json from a throwaway PostgreSQL (needs the server binaries)")

// layoutExpect is testdata/layout_<name>.json: what the capture of the same
// name must decode to, read from mt_events itself when it was captured.
type layoutExpect struct {
	Layout string `json:"layout"`
	Schema string `json:"schema"`
	// Events are the rows of mt_events that are events, in commit order,
	// as to_jsonb(mt_events) gives them.
	Events []map[string]any `json:"events"`
	// Skips counts the rows that are not events, by SkipReason name.
	Skips map[string]int `json:"skips"`
}

// layoutSchemas is where each layout is installed for its capture: some
// in public, some in a named schema.
var layoutSchemas = map[marten.Layout]string{
	marten.LayoutStringIDs: "helpdesk",
	marten.LayoutMarten7:   "events7",
	marten.LayoutConjoined: "tenancy",
}

// TestLayoutGolden decodes a capture of every Marten layout written through
// every write path (marten.Store.Exercise) plus what is particular to the
// layout, and checks each event field by field against the row mt_events
// held when the capture was made, and the rows that are not events.
// With -capture it first regenerates the captures.
func TestLayoutGolden(t *testing.T) {
	if *capture {
		captureLayouts(t)
	}
	for _, layout := range marten.Layouts() {
		t.Run(layout.String(), func(t *testing.T) {
			name := "layout_" + layout.String()
			b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var want layoutExpect
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			d := New(Config{Schema: want.Schema})
			var events []*cdc.Event
			skips := map[string]int{}
			var last cdc.Position
			for _, m := range readGolden(t, name+".hex") {
				msg, err := d.Decode(m.data)
				if err != nil {
					t.Fatalf("%s.hex:%d: %v", name, m.line, err)
				}
				switch msg.Kind {
				case KindEvent, KindSkip:
					if msg.Position.Compare(last) <= 0 {
						t.Fatalf("%s.hex:%d: position %s after %s", name, m.line, msg.Position, last)
					}
					last = msg.Position
					if msg.Kind == KindSkip {
						skips[msg.Skip.String()]++
					} else {
						events = append(events, msg.Event)
					}
				}
			}
			if !reflect.DeepEqual(skips, want.Skips) && (len(skips) > 0 || len(want.Skips) > 0) {
				t.Errorf("rows that are not events: %v, want %v", skips, want.Skips)
			}
			if len(events) != len(want.Events) {
				t.Fatalf("%d events, want %d", len(events), len(want.Events))
			}
			for i, e := range events {
				if diff := rowDiff(e, want.Events[i]); diff != "" {
					t.Errorf("event %d (%s): %s", i, e.ID, diff)
				}
			}
		})
	}
}

// rowDiff compares an event with its mt_events row (as to_jsonb gives it)
// and says what differs.
func rowDiff(e *cdc.Event, row map[string]any) string {
	var diffs []string
	str := func(column string) string {
		if v, ok := row[column].(string); ok {
			return v
		}
		return ""
	}
	check := func(column string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", column, got, want))
		}
	}
	check("id", e.ID, str("id"))
	check("seq_id", e.SeqID, row["seq_id"])
	check("stream_id", e.StreamID, str("stream_id"))
	check("version", e.Version, row["version"])
	check("type", e.Type, str("type"))
	check("mt_dotnet_type", e.DotnetType, str("mt_dotnet_type"))
	check("tenant_id", e.TenantID, str("tenant_id"))
	check("correlation_id", e.CorrelationID, str("correlation_id"))
	check("causation_id", e.CausationID, str("causation_id"))
	check("user_name", e.UserName, str("user_name"))
	ts, err := time.Parse(time.RFC3339Nano, str("timestamp"))
	if err != nil || !ts.Equal(e.Timestamp) {
		diffs = append(diffs, fmt.Sprintf("timestamp = %v, want %s", e.Timestamp, str("timestamp")))
	}
	jsonCheck := func(column string, got json.RawMessage) {
		var g any
		if len(got) > 0 {
			if err := json.Unmarshal(got, &g); err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: %v", column, err))
				return
			}
		}
		if !reflect.DeepEqual(g, row[column]) {
			diffs = append(diffs, fmt.Sprintf("%s = %s, want %v", column, got, row[column]))
		}
	}
	jsonCheck("data", e.Data)
	jsonCheck("headers", e.Headers)
	// bdata is the event's BData only when data is empty (Marten 9 binary
	// bodies); otherwise it is ignored.
	var wantBData string
	if b := str("bdata"); b != "" && b != `\x` && emptyJSON(e.Data) {
		wantBData = b
	}
	if got := fmt.Sprintf(`\x%x`, e.BData); e.BData == nil && wantBData != "" || e.BData != nil && got != wantBData {
		diffs = append(diffs, fmt.Sprintf("BData = %x, want %s", e.BData, wantBData))
	}
	return strings.Join(diffs, "; ")
}

// captureLayouts regenerates the captures of every layout from a
// throwaway cluster.
func captureLayouts(t *testing.T) {
	ctx := t.Context()
	pg, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	for _, layout := range marten.Layouts() {
		if err := captureLayout(ctx, pg, layout); err != nil {
			t.Fatalf("capture %v: %v", layout, err)
		}
	}
}

// captureLayout writes testdata/layout_<name>.hex (every pgoutput message
// of the exercise, peeked from a slot) and .json (the rows to expect).
func captureLayout(ctx context.Context, pg *pgcluster.Cluster, layout marten.Layout) error {
	schema := layoutSchemas[layout]
	if schema == "" {
		schema = "public"
	}
	db, err := pg.NewDatabase(ctx, "golden_"+layout.String())
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	store := marten.Store{Layout: layout, Schema: schema}
	if err := store.Install(ctx, conn); err != nil {
		return err
	}
	tenants := []string{""}
	if layout.Conjoined() {
		tenants = []string{"tenant-a", "tenant_b"}
	}
	for _, tenant := range tenants {
		if err := store.AddTenant(ctx, conn, tenant); err != nil && tenant != "" {
			return err
		}
	}
	table := pgx.Identifier{schema, "mt_events"}.Sanitize()
	if _, err = conn.Exec(ctx, `CREATE PUBLICATION pub FOR TABLE `+table+` WITH (publish = 'insert', publish_via_partition_root = true)`); err != nil {
		return err
	}
	if _, err = conn.Exec(ctx, `SELECT pg_create_logical_replication_slot('golden', 'pgoutput')`); err != nil {
		return err
	}
	var want []string
	exercise := func(tenant string) error {
		ids, _, err := store.Exercise(ctx, conn, tenant, 2, 3)
		want = append(want, ids...)
		return err
	}
	for _, tenant := range tenants {
		if err := exercise(tenant); err != nil {
			return err
		}
	}
	skips := map[string]int{SkipTombstone.String(): 2 * len(tenants)}
	switch layout {
	case marten.LayoutDefault:
		// A Marten upgrade: user_name and an unknown column appear, and
		// the Relation message is sent again.
		s := store.NewStreamID()
		e := marten.SampleEvents(s, "incident_logged")[0]
		_, err = conn.Exec(ctx, `ALTER TABLE public.mt_events ADD COLUMN user_name varchar NULL, ADD COLUMN extra_flag int DEFAULT 7`)
		if err == nil {
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO public.mt_streams (id, type, version, tenant_id) VALUES ($1, 'incident', 1, '*DEFAULT*')`, s); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO public.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, user_name)
VALUES (nextval('public.mt_events_sequence'), $1, $2, 1, $3, $4, now(), '*DEFAULT*', $5, 'alice')`, e.ID, s, e.Data, e.Type, e.DotnetType)
				return err
			})
		}
		want = append(want, e.ID)
	case marten.LayoutMarten9:
		s := store.NewStreamID()
		e := marten.SampleEvents(s, "incident_logged", "incident_categorised", "incident_prioritised", "incident_closed")
		e[0].UserName = "alice"
		e[1].Skipped = true
		e[2].Data, e[2].BData = nil, []byte{0x0a, 0x03, 'b', 'i', 'n'} // delivered with BData: the pipeline refuses it
		e[3].BData = []byte{0xff}
		_, _, err = store.InsertInline(ctx, conn, s, "incident", "", e)
		want = append(want, e[0].ID, e[2].ID, e[3].ID)
		skips[SkipSkipped.String()] = 1
	case marten.LayoutArchivedPartitioned:
		var s string
		if err = conn.QueryRow(ctx, `SELECT stream_id::text FROM public.mt_events WHERE id = $1`, want[0]).Scan(&s); err == nil {
			err = store.ArchiveStream(ctx, conn, s, "")
		}
		skips[SkipArchived.String()] = 4
		if err == nil {
			err = exercise("")
			skips[SkipTombstone.String()] += 2
		}
	case marten.LayoutConjoinedPartitioned:
		// A tenant added after the slot: its partition arrives through
		// the root too.
		if err = store.AddTenant(ctx, conn, "tenant-c"); err == nil {
			err = exercise("tenant-c")
			skips[SkipTombstone.String()] += 2
		}
	}
	if err != nil {
		return err
	}

	name := filepath.Join("testdata", "layout_"+layout.String())
	var hexOut strings.Builder
	fmt.Fprintf(&hexOut, "# Marten layout %v in schema %s: marten.Store.Exercise and layout specifics (decoder/layouts_golden_test.go).\n", layout, schema)
	fmt.Fprintf(&hexOut, "# Regenerate: go test ./decoder -run TestLayoutGolden -capture\n# columns: lsn xid message-hex\n")
	rows, err := conn.Query(ctx, `SELECT lsn::text, xid::text, encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('golden', NULL, NULL,
'proto_version', '1', 'publication_names', 'pub')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var lsn, xid, data string
		if err := rows.Scan(&lsn, &xid, &data); err != nil {
			return err
		}
		fmt.Fprintf(&hexOut, "%s %s %s\n", lsn, xid, data)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot('golden')`); err != nil {
		return err
	}
	expect := layoutExpect{Layout: layout.String(), Schema: schema, Skips: skips}
	for _, id := range want {
		var row map[string]any
		if err := conn.QueryRow(ctx, `SELECT to_jsonb(e) FROM `+table+` e WHERE id = $1 LIMIT 1`, id).Scan(&row); err != nil {
			return fmt.Errorf("read event %s: %w", id, err)
		}
		expect.Events = append(expect.Events, row)
	}
	js, err := json.MarshalIndent(expect, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(name+".hex", []byte(hexOut.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(name+".json", append(js, '\n'), 0o644)
}
