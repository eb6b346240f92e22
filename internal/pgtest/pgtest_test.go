package pgtest_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	conn := pgtest.Conn(t, pg.DSN("postgres"))
	var ok bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatalf("query pg_database: %v", err)
	}
	return ok
}

func TestNewDatabase(t *testing.T) {
	var names []string
	for _, sub := range []string{"first", "first", "a very long subtest name " + strings.Repeat("x", 80)} {
		t.Run(sub, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t, pg)
			conn := pgtest.Conn(t, dsn)
			var name string
			if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
				t.Fatalf("current_database: %v", err)
			}
			if !strings.HasPrefix(name, "testnewdatabase_") || len(name) > 63 {
				t.Errorf("database name %q: want testnewdatabase_..., at most 63 bytes", name)
			}
			// An open connection (closed by its own cleanup) and an
			// idle one do not keep the database from being dropped.
			_ = pgtest.Conn(t, dsn)
			names = append(names, name)
		})
	}
	if len(names) != 3 || names[0] == names[1] {
		t.Fatalf("database names %q: want 3 distinct", names)
	}
	for _, name := range names {
		if databaseExists(t, name) {
			t.Errorf("database %q still exists after its test ended", name)
		}
	}
}

func TestNewDatabaseParallel(t *testing.T) {
	for range 4 {
		t.Run("p", func(t *testing.T) {
			t.Parallel()
			conn := pgtest.Conn(t, pgtest.NewDatabase(t, pg))
			if _, err := conn.Exec(t.Context(), "CREATE TABLE t (i int)"); err != nil {
				t.Fatalf("create table: %v", err)
			}
		})
	}
}

func TestNewMartenDatabase(t *testing.T) {
	tests := []struct{ schema string }{{"public"}, {"helpdesk"}}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			t.Parallel()
			conn := pgtest.Conn(t, pgtest.NewMartenDatabase(t, pg, tt.schema))
			var tables []string
			rows, err := conn.Query(t.Context(),
				"SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", tt.schema)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				tables = append(tables, n)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(tables, ","), "mt_event_progression,mt_events,mt_streams"; got != want {
				t.Errorf("tables in %s: %s, want %s", tt.schema, got, want)
			}
		})
	}
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			n.Add(1)
		}
	}()
	began := time.Now()
	pgtest.Eventually(t, 5*time.Second, func() bool { return n.Load() == 3 }, "counter reaches 3 (at %d)", n.Load())
	if d := time.Since(began); d > time.Second {
		t.Errorf("Eventually took %v", d)
	}
}

// TestRunFailsWithoutServer runs this test binary again with no usable
// server binaries: it must fail, not skip, and say how to install them.
func TestRunFailsWithoutServer(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestEventually$")
	cmd.Env = append(os.Environ(), pgcluster.BinDirEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("test binary without server binaries: err = %v, want exit status 1; output:\n%s", err, out)
	}
	for _, want := range []string{"FAIL", "cannot start the test PostgreSQL cluster", "apt-get install -y postgresql-15"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
