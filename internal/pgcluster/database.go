package pgcluster

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DSN returns a connection URL for database as the superuser "postgres",
// e.g. "postgres://postgres@127.0.0.1:54321/db?sslmode=disable". An empty
// database means "postgres". It carries no password (authentication is
// trust).
func (c *Cluster) DSN(database string) string {
	if database == "" {
		database = "postgres"
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, url.PathEscape(database))
}

// admin opens a connection to the "postgres" database.
func (c *Cluster) admin(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect to postgres on port %d: %w", c.port, err)
	}
	return conn, nil
}

// CreateDatabase creates a database named name (any string PostgreSQL
// accepts; it is quoted).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := c.admin(ctx)
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	c.log.Debug("database created", "database", name)
	return nil
}

// DropDatabase drops the database named name if it exists, terminating
// its connections (WITH (FORCE)). Replication slots in the database must
// be dropped first.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := c.admin(ctx)
	if err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	c.log.Debug("database dropped", "database", name)
	return nil
}

// NewDatabase creates a database whose name is derived from prefix
// (lower-cased, characters outside [a-z0-9] replaced by '_', truncated) and
// made unique within the cluster by a counter, and returns its name, which
// is at most 63 bytes long.
func (c *Cluster) NewDatabase(ctx context.Context, prefix string) (string, error) {
	name := UniqueName(prefix, c.dbSeq.Add(1))
	if err := c.CreateDatabase(ctx, name); err != nil {
		return "", err
	}
	return name, nil
}

// maxIdentifier is PostgreSQL's identifier length limit in bytes
// (NAMEDATALEN-1).
const maxIdentifier = 63

// UniqueName returns a plain identifier made of prefix, sanitized to
// [a-z0-9_] and truncated, followed by "_" and n, at most 63 bytes long.
func UniqueName(prefix string, n uint64) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.ToLower(prefix) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			underscore = false
		} else if !underscore && b.Len() > 0 {
			b.WriteByte('_')
			underscore = true
		}
	}
	base := strings.TrimRight(b.String(), "_")
	switch {
	case base == "":
		base = "db"
	case base[0] >= '0' && base[0] <= '9':
		base = "db_" + base
	}
	suffix := "_" + strconv.FormatUint(n, 10)
	if len(base) > maxIdentifier-len(suffix) {
		base = strings.TrimRight(base[:maxIdentifier-len(suffix)], "_")
	}
	return base + suffix
}
