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
	// across tenants). Tenants must be added with [AddTenant] before events
	// are appended; its mt_quick_append_events has the 9.x signature.
	LayoutConjoinedPartitioned
)

// layoutFiles maps each layout to its template under sql/.
var layoutFiles = map[Layout]string{
	LayoutDefault:              "sql/default.sql.tmpl",
	LayoutStringIDs:            "sql/string_ids.sql.tmpl",
	LayoutArchivedPartitioned:  "sql/archived_partitioned.sql.tmpl",
	LayoutConjoinedPartitioned: "sql/conjoined_partitioned.sql.tmpl",
}

// String returns the layout's name, e.g. "default".
func (l Layout) String() string {
	switch l {
	case LayoutDefault:
		return "default"
	case LayoutStringIDs:
		return "string_ids"
	case LayoutArchivedPartitioned:
		return "archived_partitioned"
	case LayoutConjoinedPartitioned:
		return "conjoined_partitioned"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
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
	file, ok := layoutFiles[layout]
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
	name := file[strings.LastIndexByte(file, '/')+1:]
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
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
	ddl, err := DDL(layout, schema)
	if err != nil {
		return err
	}
	// One multi-statement query without parameters: the simple protocol runs
	// it as a single transaction, so a failure leaves nothing behind.
	script := ddl
	if schema != "public" {
		script = "CREATE SCHEMA IF NOT EXISTS " + quoteSchema(schema) + ";\n" + ddl
	}
	if _, err := db.Exec(ctx, script); err != nil {
		return fmt.Errorf("install Marten %v schema in %q: %w", layout, schema, err)
	}
	return nil
}

// AddTenant registers tenantID in a [LayoutConjoinedPartitioned] store: it
// creates the tenant's partitions of mt_streams and mt_events and its event
// sequence, as Marten's AddMartenManagedTenantsAsync does. It is idempotent.
func AddTenant(ctx context.Context, db Execer, schema, tenantID string) error {
	if err := ValidateSchema(schema); err != nil {
		return fmt.Errorf("add tenant %q: %w", tenantID, err)
	}
	if _, err := db.Exec(ctx, "select "+quoteSchema(schema)+".fixture_add_marten_tenant($1)", tenantID); err != nil {
		return fmt.Errorf("add tenant %q in %q: %w", tenantID, schema, err)
	}
	return nil
}
