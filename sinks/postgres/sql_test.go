package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc"
)

func TestParseStatement(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      string   // rewritten text
		fields    []string // placeholder names of $1, $2...
	}{
		{"placeholders", `INSERT INTO t (id, v) VALUES ($stream_id, $version)`,
			`INSERT INTO t (id, v) VALUES ($1, $2)`, []string{"stream_id", "version"}},
		{"repeated placeholder shares its parameter", `SELECT $id, $type, $id`,
			`SELECT $1, $2, $1`, []string{"id", "type"}},
		{"json placeholders are jsonb", `SELECT $data->>'CustomerId', $headers->'source', $data`,
			`SELECT ($1::text::jsonb)->>'CustomerId', ($2::text::jsonb)->'source', ($1::text::jsonb)`, []string{"data", "headers"}},
		{"json subscript", `SELECT $data['Response']`, `SELECT ($1::text::jsonb)['Response']`, []string{"data"}},
		{"casts", `SELECT $version::bigint, ($data->>'N')::int, $lsn::pg_lsn`,
			`SELECT $1::bigint, (($2::text::jsonb)->>'N')::int, $3::pg_lsn`, []string{"version", "data", "lsn"}},
		{"string literal", `SELECT '$data', 'it''s $id', $id`, `SELECT '$data', 'it''s $id', $1`, []string{"id"}},
		{"escape string", `SELECT E'it\'s $id', e'\\', $id`, `SELECT E'it\'s $id', e'\\', $1`, []string{"id"}},
		{"identifier ending in e", `SELECT note'x' , $id`, `SELECT note'x' , $1`, []string{"id"}},
		{"quoted identifier", `SELECT "$data", "a""$id", $type`, `SELECT "$data", "a""$id", $1`, []string{"type"}},
		{"line comment", "SELECT $id -- not $data\n, 1", "SELECT $1 -- not $data\n, 1", []string{"id"}},
		{"block comment nests", `SELECT /* $data /* $id */ $type */ $version`, `SELECT /* $data /* $id */ $type */ $1`, []string{"version"}},
		{"dollar quote", `SELECT $$ $data '$id $$, $id`, `SELECT $$ $data '$id $$, $1`, []string{"id"}},
		{"tagged dollar quote", `DO $body$ BEGIN PERFORM $data; END $body$`, `DO $body$ BEGIN PERFORM $data; END $body$`, nil},
		{"dollar in identifier", `SELECT a$id, x$1 FROM t$data`, `SELECT a$id, x$1 FROM t$data`, nil},
		{"trailing semicolon", `SELECT $id;  -- done`, `SELECT $1;  -- done`, []string{"id"}},
		{"non-ASCII", `SELECT 'é', "Ü", $tenant_id`, `SELECT 'é', "Ü", $1`, []string{"tenant_id"}},
		{"every placeholder", strings.Join(Placeholders(), ", "), "", fieldNames[:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseStatement(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && st.text != tc.want {
				t.Errorf("text\n got %s\nwant %s", st.text, tc.want)
			}
			if tc.fields != nil {
				var got []string
				for _, f := range st.fields {
					got = append(got, fieldNames[f])
				}
				if !slices.Equal(got, tc.fields) {
					t.Errorf("fields %v, want %v", got, tc.fields)
				}
			}
		})
	}
}

func TestParseStatementErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown placeholder", "SELECT\n  $customer", "unknown placeholder $customer at line 2, column 3"},
		{"wrong case", "SELECT $Data", "unknown placeholder $Data"},
		{"positional", "SELECT $1", "positional parameter $1 at line 1, column 8"},
		{"two commands", "UPDATE t SET n = 1; UPDATE u SET n = 2", "more than one SQL command"},
		{"empty", "  -- nothing\n /* at all */ ", "empty statement"},
		{"unterminated string", "SELECT 'abc", "unterminated string literal opened at line 1, column 8"},
		{"unterminated escape string", `SELECT E'abc\'`, "unterminated string literal"},
		{"unterminated identifier", `SELECT "abc`, "unterminated quoted identifier"},
		{"unterminated comment", "SELECT /* /* */", "unterminated /* comment"},
		{"unterminated dollar quote", "SELECT $x$ abc $y$", "unterminated dollar-quoted string $x$"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseStatement(tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestSQLErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route func() (Route, error)
		want  string
	}{
		{"bad placeholder names projection and statement",
			func() (Route, error) {
				return SQL("incident_details", []string{"incident_*"}, "SELECT 1", "SELECT $customer")
			},
			"projection incident_details, statement 2: unknown placeholder $customer"},
		{"no statements", func() (Route, error) { return SQL("p", []string{"x"}) }, "projection p: no SQL statements"},
		{"no types", func() (Route, error) { return SQL("p", nil, "SELECT 1") }, "projection p: no event types"},
		{"bad glob", func() (Route, error) { return SQL("p", []string{"incident_["}, "SELECT 1") }, `projection p: event type glob "incident_["`},
		{"no name", func() (Route, error) { return SQL("", []string{"x"}, "SELECT 1") }, "a projection without a name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.route()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestPlaceholderTypes binds every placeholder against the server: typed
// by the column they go into, jsonb for $data and $headers, NULL for absent
// optional fields.
func TestPlaceholderTypes(t *testing.T) {
	pool := newTarget(t, `CREATE TABLE typed (
    id uuid, seq_id bigint, stream_id text, version bigint, type text, dotnet_type text, tenant_id text,
    ts timestamptz, data jsonb, correlation_id text, causation_id text, headers jsonb, user_name text,
    lsn pg_lsn, commit_time timestamptz, customer uuid, next_version bigint)`)
	r, err := SQL("typed", []string{"*"}, `INSERT INTO typed VALUES ($id, $seq_id, $stream_id, $version, $type, $dotnet_type,
    $tenant_id, $timestamp, $data, $correlation_id, $causation_id, $headers, $user_name, $lsn, $commit_time,
    ($data->>'CustomerId')::uuid, $version::bigint + 1)`)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, pool, Config{Routes: []Route{r}})
	full := &cdc.Event{
		ID: "0192f0c4-0000-7000-8000-000000000001", SeqID: 1 << 40, StreamID: "stream-1", Version: 7,
		Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "acme",
		Timestamp:     time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC),
		Data:          json.RawMessage(`{"CustomerId":"4d2c6a3e-8f1b-4c55-9a9e-0d1f2e3a4b5c","Quote":"it's \"quoted\""}`),
		CorrelationID: "corr", CausationID: "cause", Headers: json.RawMessage(`{"source":"api"}`), UserName: "han",
		LSN: 0x1_0016B374, Index: 0, CommitTime: time.Date(2026, 11, 22, 10, 0, 1, 0, time.FixedZone("x", 3600)),
	}
	sparse := &cdc.Event{ID: "0192f0c4-0000-7000-8000-000000000002", SeqID: 2, StreamID: "stream-2", Version: 1,
		Type: "incident_logged", TenantID: "*DEFAULT*", Data: json.RawMessage(`{}`), LSN: 0x1_0016B374, Index: 1}
	write(t, s, []*cdc.Event{full, sparse})

	var got []string
	rows, err := pool.Query(context.Background(), `SELECT concat_ws('|', id, seq_id, stream_id, version, type, coalesce(dotnet_type, 'NULL'),
    tenant_id, coalesce(ts::text, 'NULL'), coalesce(data->>'Quote', ''), coalesce(correlation_id, 'NULL'), coalesce(causation_id, 'NULL'),
    coalesce(headers->>'source', 'NULL'), coalesce(user_name, 'NULL'), lsn, coalesce(commit_time::text, 'NULL'),
    coalesce(customer::text, 'NULL'), next_version) FROM typed ORDER BY seq_id DESC`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		got = append(got, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"0192f0c4-0000-7000-8000-000000000001|1099511627776|stream-1|7|incident_logged|Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api|acme|" +
			tsText(t, s, full.Timestamp) + `|it's "quoted"|corr|cause|api|han|1/16B374|` + tsText(t, s, full.CommitTime) +
			"|4d2c6a3e-8f1b-4c55-9a9e-0d1f2e3a4b5c|8",
		"0192f0c4-0000-7000-8000-000000000002|2|stream-2|1|incident_logged|NULL|*DEFAULT*|NULL||NULL|NULL|NULL|NULL|1/16B374|NULL|NULL|2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows\n got %q\nwant %q", got, want)
	}
}

// tsText returns how the server prints tm as a timestamptz.
func tsText(t *testing.T, s *Sink, tm time.Time) string {
	t.Helper()
	var out string
	if err := s.pool.QueryRow(context.Background(), `SELECT $1::timestamptz::text`, tm).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}
