// Package pgtable creates the tables cdc keeps for itself when they are
// missing: the checkpoint and dead-letter tables, and the postgres sink's
// checkpoint and events tables. One rule for all of them: ask first, so that
// a role that may use but not create a table is fine once it exists; and a
// create that fails because another instance created the table at the same
// moment (CREATE TABLE IF NOT EXISTS races on pg_type) is no failure.
package pgtable

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs statements: a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Exists reports whether the table named name exists.
func Exists(ctx context.Context, q Querier, name pgx.Identifier) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name.Sanitize()).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up table %s: %w", display(name), err)
	}
	return ok, nil
}

// Ensure runs ddl, which creates the table named name, unless the table
// exists, and reports whether it ran it (when several instances call it at
// once, more than one may report so; the table is created once). It is safe
// for several instances to call at once.
func Ensure(ctx context.Context, q Querier, name pgx.Identifier, ddl string) (created bool, err error) {
	exists, err := Exists(ctx, q, name)
	if err != nil || exists {
		return false, err
	}
	if _, err := q.Exec(ctx, ddl); err != nil {
		if ok, qerr := Exists(ctx, q, name); qerr == nil && ok {
			return false, nil // created by another instance meanwhile
		}
		return false, fmt.Errorf("create table %s: %w", display(name), err)
	}
	return true, nil
}

// EnsureSchema creates schema unless it exists.
func EnsureSchema(ctx context.Context, q Querier, schema string) error {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL`, pgx.Identifier{schema}.Sanitize()).Scan(&ok); err != nil {
		return fmt.Errorf("look up schema %s: %w", schema, err)
	}
	if ok {
		return nil
	}
	if _, err := q.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	return nil
}

// display is the name as people write it: schema.table, unquoted.
func display(name pgx.Identifier) string { return strings.Join(name, ".") }

// Column is a column a table of cdc's gained after its first release.
type Column struct {
	Name string // column name
	Def  string // type and constraints, as ADD COLUMN takes them
}

// EnsureColumns adds the columns table name lacks (a table created by an
// older cdc). A role that may not alter the table gets an error that gives
// the statement its owner must run.
func EnsureColumns(ctx context.Context, q Querier, name pgx.Identifier, cols []Column) error {
	var missing []string
	for _, c := range cols {
		var ok bool
		err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)`,
			name.Sanitize(), c.Name).Scan(&ok)
		if err != nil {
			return fmt.Errorf("look up column %s of %s: %w", c.Name, display(name), err)
		}
		if !ok {
			missing = append(missing, "ADD COLUMN IF NOT EXISTS "+pgx.Identifier{c.Name}.Sanitize()+" "+c.Def)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	stmt := "ALTER TABLE " + name.Sanitize() + " " + strings.Join(missing, ", ")
	if _, err := q.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("add columns to %s (as its owner, run: %s): %w", display(name), stmt, err)
	}
	return nil
}
