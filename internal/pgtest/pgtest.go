// Package pgtest is the glue between Go tests and a throwaway PostgreSQL
// cluster ([pgcluster]): one cluster per test binary, started and stopped by
// TestMain, and a fresh database per test, dropped when the test ends.
//
// A package's tests use it like this:
//
//	var pg *pgcluster.Cluster
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.NewDatabase(t, pg)
//		conn := pgtest.Conn(t, dsn)
//		...
//	}
//
// Integration tests are never skipped: when the PostgreSQL server binaries
// are missing, Run prints why and how to install them, and the package's
// tests fail.
//
// Helpers that take a *testing.T may be called from parallel tests.
package pgtest

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
)

// startTimeout bounds the cluster start in Run.
const startTimeout = 2 * time.Minute

// cleanupTimeout bounds each cleanup (dropping a database, closing a
// connection).
const cleanupTimeout = 30 * time.Second

// Run starts a cluster with [pgcluster.Start] (wal_level=logical, default
// settings), stores it in *pg, runs the tests with m.Run, stops the cluster
// and returns the exit code for os.Exit. If the cluster cannot start it
// prints the reason to stderr and returns 1, so the tests fail rather than
// skip. The cluster is stopped even if m.Run panics; if the process dies
// outright, the server dies with it (parent-death signal) and its
// directory is removed by a later start.
//
// With -test.list nothing is started.
func Run(m *testing.M, pg **pgcluster.Cluster) int {
	return RunOptions(m, pg, pgcluster.Options{})
}

// RunOptions is [Run] with cluster options, e.g. extra server settings.
// When opts.Logger is nil, the cluster logs warnings to stderr, and
// everything when the tests run with -v.
func RunOptions(m *testing.M, pg **pgcluster.Cluster, opts pgcluster.Options) (code int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return m.Run()
	}
	if opts.Logger == nil {
		level := slog.LevelWarn
		if testing.Verbose() {
			level = slog.LevelInfo
		}
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	c, err := pgcluster.Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: pgtest: cannot start the test PostgreSQL cluster: %v\n", err)
		return 1
	}
	*pg = c
	defer func() {
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}()
	return m.Run()
}

// NewDatabase creates an empty database for the test, named after t.Name()
// (sanitized, with a counter, at most 63 bytes), drops it (terminating its
// connections) when the test and its subtests end, and returns its DSN.
// Drop replication slots in it before the test ends (in a cleanup
// registered after NewDatabase).
func NewDatabase(t testing.TB, pg *pgcluster.Cluster) string {
	t.Helper()
	if pg == nil {
		t.Fatal("pgtest: no cluster: the package's TestMain must call os.Exit(pgtest.Run(m, &pg))")
	}
	name, err := pg.NewDatabase(t.Context(), t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := pg.DropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return pg.DSN(name)
}

// NewMartenDatabase is [NewDatabase] with Marten's default event store
// schema ([marten.LayoutDefault]) installed in schema (e.g. "public" or
// "helpdesk").
func NewMartenDatabase(t testing.TB, pg *pgcluster.Cluster, schema string) string {
	t.Helper()
	return NewMartenDatabaseLayout(t, pg, marten.LayoutDefault, schema)
}

// NewMartenDatabaseLayout is [NewDatabase] with the given Marten layout
// installed in schema.
func NewMartenDatabaseLayout(t testing.TB, pg *pgcluster.Cluster, layout marten.Layout, schema string) string {
	t.Helper()
	dsn := NewDatabase(t, pg)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to install the Marten schema: %v", err)
	}
	defer conn.Close(context.Background())
	if err := marten.InstallLayout(t.Context(), conn, layout, schema); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// Conn opens a connection to dsn, closed when the test ends.
func Conn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		conn.Close(ctx)
	})
	return conn
}

// pollInterval is how often Eventually evaluates its condition.
const pollInterval = 10 * time.Millisecond

// Eventually calls cond every 10ms until it returns true, and fails the
// test with the message msgf (formatted with args) if it has not within
// timeout, or if the test's context ends first. cond runs on the test's
// goroutine and may call t.Fatal.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msgf string, args ...any) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if cond() {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("not within %v: %s", timeout, fmt.Sprintf(msgf, args...))
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting: %s", fmt.Sprintf(msgf, args...))
		case <-tick.C:
		}
	}
}
