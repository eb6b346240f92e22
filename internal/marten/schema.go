package marten

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Execer runs a statement. *pgx.Conn, pgx.Tx and *pgxpool.Pool satisfy it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Layout is a Marten event store configuration with its own table layout.
// Every layout's DDL is a faithful reconstruction of what that Marten
// version and configuration creates; the write paths ([Store]) bind and
// fill what the layout has.
type Layout int

const (
	// LayoutDefault is Marten 8.x's default configuration: guid stream ids,
	// single tenancy, correlation id, causation id and headers enabled, no
	// partitioning.
	LayoutDefault Layout = iota
	// LayoutStringIDs is LayoutDefault with string stream ids
	// (StreamIdentity.AsString): mt_streams.id and mt_events.stream_id are
	// varchar.
	LayoutStringIDs
	// LayoutArchivedPartitioned is LayoutDefault with
	// UseArchivedStreamPartitioning: mt_streams and mt_events are LIST
	// partitioned on is_archived, and archiving a stream moves its rows.
	LayoutArchivedPartitioned
	// LayoutConjoinedPartitioned is Marten 9.x conjoined tenancy with
	// per-tenant LIST partitions and one sequence per tenant (seq_id repeats
	// across tenants). Tenants must be added with [Store.AddTenant] before
	// events are appended; its mt_quick_append_events has the 9.x signature
	// (bdatas after bodies, timestamps, expected_version), without
	// user_names. mt_events has bdata but no user_name or is_skipped.
	LayoutConjoinedPartitioned
	// LayoutMarten7 is Marten 7.x's default configuration. It differs from
	// LayoutDefault only in that the metadata columns are off: mt_events
	// has no correlation_id, causation_id or headers, and
	// mt_quick_append_events takes just (stream, stream_type, tenantid,
	// event_ids, event_types, dotnet_types, bodies). [NewEvent] fields for
	// the missing columns are not written.
	LayoutMarten7
	// LayoutMarten9 is Marten 9.x single tenancy with LayoutDefault's
	// options plus MetadataConfig.UserNameEnabled and
	// EnableEventSkippingInProjectionsOrSubscriptions: mt_events gains bdata
	// (after data), user_name (after headers) and is_skipped (before
	// is_archived); mt_streams loses snapshot and snapshot_version; and
	// mt_quick_append_events has the 9.x signature (stream, stream_type,
	// tenantid, event_ids, event_types, dotnet_types, bodies, bdatas,
	// causation_ids, correlation_ids, headers, user_names, timestamps,
	// expected_version DEFAULT NULL), returns bigint[], raises MT003 on an
	// expected_version mismatch and MT001 on an archived stream. It also
	// has mt_high_water_skips and mt_mark_progression_with_skip.
	LayoutMarten9
	// LayoutConjoined is Marten 8.x conjoined tenancy without
	// partitioning (TenancyStyle.Conjoined): mt_streams is keyed by
	// (tenant_id, id), so one stream id may exist once per tenant;
	// mt_events keeps one global sequence, its unique index is (tenant_id,
	// stream_id, version) and its foreign key (tenant_id, stream_id)
	// references mt_streams. mt_quick_append_events (8.x signature) and
	// mt_archive_stream look streams up by id and tenant.
	LayoutConjoined
)

// traits describes what a layout's tables and functions have.
type traits struct {
	file      string // template under sql/
	name      string // Layout.String
	major     int    // Marten major version: 7, 8 or 9
	stringIDs bool   // varchar stream ids
	conjoined bool   // TenancyStyle.Conjoined: streams keyed by (tenant_id, id)
	perTenant bool   // per-tenant partitions and sequences (mt_tenant_partitions)
	archivedP bool   // UseArchivedStreamPartitioning
	metadata  bool   // correlation_id, causation_id, headers
	userName  bool   // user_name
	skipping  bool   // is_skipped
}

// bdata reports whether mt_events has the 9.x bdata column (and the quick
// append function its bdatas and timestamps parameters).
func (t traits) bdata() bool { return t.major >= 9 }

// layouts holds every layout's traits, in Layout order.
var layouts = [...]traits{
	LayoutDefault:              {file: "default.sql.tmpl", name: "default", major: 8, metadata: true},
	LayoutStringIDs:            {file: "string_ids.sql.tmpl", name: "string_ids", major: 8, stringIDs: true, metadata: true},
	LayoutArchivedPartitioned:  {file: "archived_partitioned.sql.tmpl", name: "archived_partitioned", major: 8, archivedP: true, metadata: true},
	LayoutConjoinedPartitioned: {file: "conjoined_partitioned.sql.tmpl", name: "conjoined_partitioned", major: 9, conjoined: true, perTenant: true, metadata: true},
	LayoutMarten7:              {file: "marten7.sql.tmpl", name: "marten7", major: 7},
	LayoutMarten9:              {file: "marten9.sql.tmpl", name: "marten9", major: 9, metadata: true, userName: true, skipping: true},
	LayoutConjoined:            {file: "conjoined.sql.tmpl", name: "conjoined", major: 8, conjoined: true, metadata: true},
}

// traits returns l's traits, or false for an unknown layout.
func (l Layout) traits() (traits, bool) {
	if l < 0 || int(l) >= len(layouts) {
		return traits{}, false
	}
	return layouts[l], true
}

// Layouts returns every layout, in declaration order.
func Layouts() []Layout {
	out := make([]Layout, len(layouts))
	for i := range out {
		out[i] = Layout(i)
	}
	return out
}

// String returns the layout's name, e.g. "default".
func (l Layout) String() string {
	if t, ok := l.traits(); ok {
		return t.name
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// Conjoined reports whether the layout uses conjoined tenancy: streams are
// keyed by (tenant_id, id), so one stream id can exist once per tenant, and
// mt_archive_stream takes the tenant.
func (l Layout) Conjoined() bool { t, _ := l.traits(); return t.conjoined }

// TenantPartitioned reports whether the layout partitions mt_streams and
// mt_events per tenant with one event sequence per tenant (seq_id repeats
// across tenants). Tenants must then be added with [Store.AddTenant].
func (l Layout) TenantPartitioned() bool { t, _ := l.traits(); return t.perTenant }

// EventColumns returns the columns of the layout's mt_events, in table
// order, e.g. seq_id, id, stream_id, version, data, type, timestamp,
// tenant_id, mt_dotnet_type, correlation_id, causation_id, headers,
// is_archived for [LayoutDefault]. It returns nil for an unknown layout.
func (l Layout) EventColumns() []string {
	t, ok := l.traits()
	if !ok {
		return nil
	}
	cols := []string{"seq_id", "id", "stream_id", "version", "data"}
	if t.bdata() {
		cols = append(cols, "bdata")
	}
	cols = append(cols, "type", "timestamp", "tenant_id", "mt_dotnet_type")
	if t.metadata {
		cols = append(cols, "correlation_id", "causation_id", "headers")
	}
	if t.userName {
		cols = append(cols, "user_name")
	}
	if t.skipping {
		cols = append(cols, "is_skipped")
	}
	return append(cols, "is_archived")
}

//go:embed sql/*.sql.tmpl
var sqlFiles embed.FS

// templates holds the parsed layout templates. It is read-only after
// package initialisation.
var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(sqlFiles, "sql/*.sql.tmpl"))

// ErrInvalidSchema is wrapped by the errors returned for an unusable schema
// name.
var ErrInvalidSchema = errors.New("invalid schema name")

// schemaName is what ValidateSchema accepts: an identifier of letters,
// digits, '_' and '$' that does not start with a digit or '$'.
var schemaName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// ValidateSchema returns an error wrapping [ErrInvalidSchema] unless schema
// is a usable schema name: 1 to 63 bytes of letters, digits, '_' and '$',
// not starting with a digit or '$', and not starting with "pg_" (reserved
// by PostgreSQL). Case is preserved: "Helpdesk" and "helpdesk" are
// different schemas.
func ValidateSchema(schema string) error {
	switch {
	case schema == "":
		return fmt.Errorf("%w: empty", ErrInvalidSchema)
	case len(schema) > 63:
		return fmt.Errorf("%w %q: longer than 63 bytes", ErrInvalidSchema, schema)
	case !schemaName.MatchString(schema):
		return fmt.Errorf("%w %q: use letters, digits, '_' and '$', not starting with a digit or '$'", ErrInvalidSchema, schema)
	case strings.HasPrefix(strings.ToLower(schema), "pg_"):
		return fmt.Errorf("%w %q: names starting with pg_ are reserved", ErrInvalidSchema, schema)
	}
	return nil
}

// quoteSchema returns schema as a quoted identifier.
func quoteSchema(schema string) string { return pgx.Identifier{schema}.Sanitize() }

// Schema returns the DDL of Marten's default configuration
// ([LayoutDefault]) with every object in schema, e.g. "public" or
// "helpdesk". It does not create the schema itself; [Install] does.
func Schema(schema string) (string, error) {
	return DDL(LayoutDefault, schema)
}

// DDL returns the DDL of layout with every object in schema.
func DDL(layout Layout, schema string) (string, error) {
	t, ok := layout.traits()
	if !ok {
		return "", fmt.Errorf("render Marten schema: unknown layout %v", layout)
	}
	if err := ValidateSchema(schema); err != nil {
		return "", fmt.Errorf("render Marten %v schema: %w", layout, err)
	}
	data := struct{ Schema, Name, Literal string }{
		Schema:  quoteSchema(schema),
		Name:    schema,
		Literal: "'" + schema + "'", // validated: no quote or backslash
	}
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, t.file, data); err != nil {
		return "", fmt.Errorf("render Marten %v schema: %w", layout, err)
	}
	return buf.String(), nil
}

// Install creates schema unless it is "public" or exists, and installs Marten's default
// configuration ([LayoutDefault]) in it, in one implicit transaction. It
// fails if the Marten tables already exist there.
func Install(ctx context.Context, db Execer, schema string) error {
	return InstallLayout(ctx, db, LayoutDefault, schema)
}

// InstallLayout is [Install] for any layout.
func InstallLayout(ctx context.Context, db Execer, layout Layout, schema string) error {
	return Store{Layout: layout, Schema: schema}.Install(ctx, db)
}

// AddTenant registers tenantID in a [LayoutConjoinedPartitioned] store in
// schema; see [Store.AddTenant].
func AddTenant(ctx context.Context, db Execer, schema, tenantID string) error {
	return Store{Layout: LayoutConjoinedPartitioned, Schema: schema}.AddTenant(ctx, db, tenantID)
}

// Store is a Marten event store: a layout installed in a schema. Its
// methods write events the way Marten does for that layout. Event data is
// always sent as query parameters.
//
// A Store is a small value, safe to copy and to use concurrently (its
// methods are as safe as the connection they are given). The zero Store
// names no schema and its methods fail with [ErrInvalidSchema].
type Store struct {
	// Layout is the store's configuration; the zero value is
	// [LayoutDefault].
	Layout Layout
	// Schema is the PostgreSQL schema holding the store, e.g. "public" or
	// "helpdesk"; see [ValidateSchema].
	Schema string
}

// check returns s's layout traits, or an error for an unusable schema or
// an unknown layout.
func (s Store) check() (traits, error) {
	t, ok := s.Layout.traits()
	if !ok {
		return t, fmt.Errorf("unknown layout %v", s.Layout)
	}
	if err := ValidateSchema(s.Schema); err != nil {
		return t, err
	}
	return t, nil
}

// DDL returns the store's DDL; see [DDL].
func (s Store) DDL() (string, error) { return DDL(s.Layout, s.Schema) }

// Install creates the store's schema unless it is "public" or exists, and
// installs the layout in it, in one implicit transaction. It fails if the
// Marten tables already exist there.
func (s Store) Install(ctx context.Context, db Execer) error {
	ddl, err := DDL(s.Layout, s.Schema)
	if err != nil {
		return err
	}
	// One multi-statement query without parameters: the simple protocol runs
	// it as a single transaction, so a failure leaves nothing behind.
	script := ddl
	if s.Schema != "public" {
		script = "CREATE SCHEMA IF NOT EXISTS " + quoteSchema(s.Schema) + ";\n" + ddl
	}
	if _, err := db.Exec(ctx, script); err != nil {
		return fmt.Errorf("install Marten %v schema in %q: %w", s.Layout, s.Schema, err)
	}
	return nil
}

// AddTenant registers tenantID in a [LayoutConjoinedPartitioned] store: it
// creates the tenant's partitions of mt_streams and mt_events and its event
// sequence, as Marten's AddMartenManagedTenantsAsync does (through the
// fixture function fixture_add_marten_tenant). It is idempotent. The other
// layouts need no tenant registration, and AddTenant does nothing for them.
func (s Store) AddTenant(ctx context.Context, db Execer, tenantID string) error {
	t, err := s.check()
	if err != nil {
		return fmt.Errorf("add tenant %q: %w", tenantID, err)
	}
	if !t.perTenant {
		return nil
	}
	if _, err := db.Exec(ctx, "select "+quoteSchema(s.Schema)+".fixture_add_marten_tenant($1)", tenantID); err != nil {
		return fmt.Errorf("add tenant %q in %q: %w", tenantID, s.Schema, err)
	}
	return nil
}
