package marten_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

// layoutShape is what a layout's installation must look like.
type layoutShape struct {
	streams     string   // mt_streams columns, in order
	notNull     []string // NOT NULL columns as "table.column", sorted
	keys        []string // constraints and other indexes of mt_streams and mt_events, sorted
	quickArgs   string   // pg_get_function_arguments(mt_quick_append_events)
	quickResult string
	archiveArgs string
}

const (
	streams8 = "id, type, version, timestamp, snapshot, snapshot_version, created, tenant_id, is_archived"
	quick7   = "stream uuid, stream_type character varying, tenantid character varying, event_ids uuid[], event_types character varying[], dotnet_types character varying[], bodies jsonb[]"
	meta     = ", causation_ids character varying[], correlation_ids character varying[], headers jsonb[]"
	quick8   = quick7 + meta
)

var (
	notNullDefault = []string{"mt_events.data", "mt_events.id", "mt_events.seq_id", "mt_events.timestamp", "mt_events.type", "mt_events.version",
		"mt_streams.created", "mt_streams.id", "mt_streams.timestamp"}
	keysDefault = []string{
		"mt_events fkey_mt_events_stream_id FOREIGN KEY (stream_id) REFERENCES mt_streams(id) ON DELETE CASCADE",
		"mt_events pk_mt_events_stream_and_version UNIQUE INDEX (stream_id, version)",
		"mt_events pkey_mt_events_seq_id PRIMARY KEY (seq_id)",
		"mt_streams pkey_mt_streams_id PRIMARY KEY (id)",
	}
)

var shapes = map[marten.Layout]layoutShape{
	marten.LayoutDefault: {streams8, notNullDefault, keysDefault, quick8, "integer[]", "streamid uuid"},
	marten.LayoutStringIDs: {streams8, notNullDefault, keysDefault,
		strings.Replace(quick8, "stream uuid", "stream character varying", 1), "integer[]", "streamid character varying"},
	marten.LayoutArchivedPartitioned: {streams8,
		[]string{"mt_events.data", "mt_events.id", "mt_events.is_archived", "mt_events.seq_id", "mt_events.timestamp", "mt_events.type", "mt_events.version",
			"mt_streams.created", "mt_streams.id", "mt_streams.is_archived", "mt_streams.timestamp"},
		[]string{
			"mt_events fkey_mt_events_stream_id_is_archived FOREIGN KEY (stream_id, is_archived) REFERENCES mt_streams(id, is_archived) ON DELETE CASCADE",
			"mt_events pk_mt_events_stream_and_version UNIQUE INDEX (stream_id, version, is_archived)",
			"mt_events pkey_mt_events_seq_id_is_archived PRIMARY KEY (seq_id, is_archived)",
			"mt_streams pkey_mt_streams_id_is_archived PRIMARY KEY (id, is_archived)",
		},
		quick8, "integer[]", "streamid uuid"},
	marten.LayoutConjoinedPartitioned: {"tenant_id, id, type, version, timestamp, created, is_archived",
		[]string{"mt_events.data", "mt_events.id", "mt_events.seq_id", "mt_events.tenant_id", "mt_events.timestamp", "mt_events.type", "mt_events.version",
			"mt_streams.created", "mt_streams.id", "mt_streams.tenant_id", "mt_streams.timestamp"},
		[]string{
			"mt_events pk_mt_events_stream_and_version UNIQUE INDEX (tenant_id, stream_id, version)",
			"mt_events pkey_mt_events_seq_id_tenant_id PRIMARY KEY (seq_id, tenant_id)",
			"mt_streams pkey_mt_streams_tenant_id_id PRIMARY KEY (tenant_id, id)",
		},
		quick7 + ", bdatas bytea[]" + meta + ", timestamps timestamp with time zone[], expected_version bigint DEFAULT NULL::bigint", "bigint[]",
		"streamid uuid, tenantid character varying"},
	marten.LayoutMarten7: {streams8, notNullDefault, keysDefault, quick7, "integer[]", "streamid uuid"},
	marten.LayoutMarten9: {"id, type, version, timestamp, created, tenant_id, is_archived", notNullDefault, keysDefault,
		quick7 + ", bdatas bytea[]" + meta + ", user_names character varying[], timestamps timestamp with time zone[], expected_version bigint DEFAULT NULL::bigint", "bigint[]",
		"streamid uuid"},
	marten.LayoutConjoined: {"tenant_id, id, type, version, timestamp, snapshot, snapshot_version, created, is_archived",
		[]string{"mt_events.data", "mt_events.id", "mt_events.seq_id", "mt_events.timestamp", "mt_events.type", "mt_events.version",
			"mt_streams.created", "mt_streams.id", "mt_streams.tenant_id", "mt_streams.timestamp"},
		[]string{
			"mt_events fkey_mt_events_stream_id_tenant_id FOREIGN KEY (tenant_id, stream_id) REFERENCES mt_streams(tenant_id, id)",
			"mt_events pk_mt_events_stream_and_version UNIQUE INDEX (tenant_id, stream_id, version)",
			"mt_events pkey_mt_events_seq_id PRIMARY KEY (seq_id)",
			"mt_streams pkey_mt_streams_tenant_id_id PRIMARY KEY (tenant_id, id)",
		},
		quick8, "integer[]", "streamid uuid, tenantid character varying"},
}

var wantEventColumns = map[marten.Layout]string{
	marten.LayoutDefault:              "seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, causation_id, headers, is_archived",
	marten.LayoutStringIDs:            "seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, causation_id, headers, is_archived",
	marten.LayoutArchivedPartitioned:  "seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, causation_id, headers, is_archived",
	marten.LayoutConjoinedPartitioned: "seq_id, id, stream_id, version, data, bdata, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, causation_id, headers, is_archived",
	marten.LayoutMarten7:              "seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, is_archived",
	marten.LayoutMarten9:              "seq_id, id, stream_id, version, data, bdata, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, causation_id, headers, user_name, is_skipped, is_archived",
	marten.LayoutConjoined:            "seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, correlation_id, causation_id, headers, is_archived",
}

// queryStrings runs a query returning one text column.
func queryStrings(t *testing.T, conn *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// installedShape reads what layoutShape describes from schema.
func installedShape(t *testing.T, conn *pgx.Conn, schema string) (events string, got layoutShape) {
	t.Helper()
	columns := func(table string) string {
		return strings.Join(queryStrings(t, conn,
			"SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
			schema, table), ", ")
	}
	events, got.streams = columns("mt_events"), columns("mt_streams")
	got.notNull = queryStrings(t, conn, `
		SELECT table_name || '.' || column_name FROM information_schema.columns
		 WHERE table_schema = $1 AND table_name IN ('mt_events', 'mt_streams') AND is_nullable = 'NO' ORDER BY 1`, schema)
	keys := queryStrings(t, conn, `
		SELECT c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
		  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1 AND c.relname IN ('mt_events', 'mt_streams')
		   AND k.conparentid = 0 -- not the copies PostgreSQL makes for partitions
		UNION ALL
		SELECT c.relname || ' ' || i.relname || ' ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' ||
		       substring(pg_get_indexdef(x.indexrelid) from '\(.*\)$')
		  FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1 AND c.relname IN ('mt_events', 'mt_streams')
		   AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = x.indexrelid)
		ORDER BY 1`, schema)
	for i, k := range keys { // REFERENCES helpdesk.mt_streams(...) when the schema is not on the search path
		k = strings.ReplaceAll(k, " "+pgx.Identifier{schema}.Sanitize()+".", " ")
		keys[i] = strings.ReplaceAll(k, " "+schema+".", " ")
	}
	got.keys = keys
	fn := func(name, what string) string {
		return strings.Join(queryStrings(t, conn, "SELECT "+what+"(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2",
			schema, name), " | ")
	}
	got.quickArgs = fn("mt_quick_append_events", "pg_get_function_arguments")
	got.quickResult = fn("mt_quick_append_events", "pg_get_function_result")
	got.archiveArgs = fn("mt_archive_stream", "pg_get_function_arguments")
	return events, got
}

// TestLayoutShapes installs every layout in public and in another schema and
// checks its tables, keys and function signatures.
func TestLayoutShapes(t *testing.T) {
	if got := marten.Layouts(); len(got) != len(shapes) {
		t.Fatalf("Layouts() = %v, want the %d layouts of this test", got, len(shapes))
	}
	for _, layout := range marten.Layouts() {
		for _, schema := range []string{"public", "Help_desk"} {
			t.Run(layout.String()+"/"+schema, func(t *testing.T) {
				t.Parallel()
				conn := pgtest.Conn(t, pgtest.NewMartenDatabaseLayout(t, pg, layout, schema))
				events, got := installedShape(t, conn, schema)
				if want := strings.Join(layout.EventColumns(), ", "); events != want || events != wantEventColumns[layout] {
					t.Errorf("mt_events columns:\n got %s\nwant %s (EventColumns %s)", events, wantEventColumns[layout], want)
				}
				want := shapes[layout]
				if got.streams != want.streams {
					t.Errorf("mt_streams columns:\n got %s\nwant %s", got.streams, want.streams)
				}
				if !slices.Equal(got.notNull, want.notNull) {
					t.Errorf("NOT NULL columns:\n got %q\nwant %q", got.notNull, want.notNull)
				}
				if !slices.Equal(got.keys, want.keys) {
					t.Errorf("keys:\n got %q\nwant %q", got.keys, want.keys)
				}
				if got.quickArgs != want.quickArgs || got.quickResult != want.quickResult {
					t.Errorf("mt_quick_append_events:\n got (%s) %s\nwant (%s) %s", got.quickArgs, got.quickResult, want.quickArgs, want.quickResult)
				}
				if got.archiveArgs != want.archiveArgs {
					t.Errorf("mt_archive_stream(%s), want (%s)", got.archiveArgs, want.archiveArgs)
				}
				wantConj := layout == marten.LayoutConjoined || layout == marten.LayoutConjoinedPartitioned
				if layout.Conjoined() != wantConj || layout.TenantPartitioned() != (layout == marten.LayoutConjoinedPartitioned) {
					t.Errorf("Conjoined() = %v, TenantPartitioned() = %v", layout.Conjoined(), layout.TenantPartitioned())
				}
			})
		}
	}
	if cols := marten.Layout(42).EventColumns(); cols != nil {
		t.Errorf("EventColumns of an unknown layout: %q", cols)
	}
}
