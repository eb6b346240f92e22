package pgcluster

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestCrashRestart: after Crash the server is gone and its open
// transactions with it; Restart brings it back on the same port, through
// crash recovery after a Crash and through a clean shutdown when it was
// running, with every committed row and the start settings.
func TestCrashRestart(t *testing.T) {
	tests := []struct {
		name  string
		crash bool
		log   string // what the server log says at the restart
	}{
		{name: "crash then restart", crash: true, log: "database system was not properly shut down; automatic recovery in progress"},
		{name: "restart a running server", crash: false, log: "database system was shut down at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, Options{Settings: map[string]string{"work_mem": "8MB"}})
			ctx := t.Context()
			port, pid := c.Port(), c.PID()
			if pid == 0 || !processAlive(pid) {
				t.Fatalf("PID() = %d, want the live postmaster", pid)
			}
			conn := connect(t, c.DSN(""))
			if _, err := conn.Exec(ctx, `CREATE TABLE t (v text); INSERT INTO t VALUES ('committed')`); err != nil {
				t.Fatal(err)
			}
			// A transaction still open when the server goes away.
			open := connect(t, c.DSN(""))
			if _, err := open.Exec(ctx, `BEGIN; INSERT INTO t VALUES ('in flight')`); err != nil {
				t.Fatal(err)
			}

			if tt.crash {
				if err := c.Crash(); err != nil {
					t.Fatalf("Crash: %v", err)
				}
				if got := c.PID(); got != 0 {
					t.Fatalf("PID() after Crash = %d, want 0", got)
				}
				if processAlive(pid) {
					t.Fatalf("postmaster %d alive after Crash", pid)
				}
				if _, err := conn.Exec(ctx, `SELECT 1`); err == nil {
					t.Fatal("a connection made before Crash still works")
				}
				if _, err := pgx.Connect(ctx, c.DSN("")); err == nil {
					t.Fatal("connect after Crash succeeded")
				}
				if err := c.Crash(); err == nil || !strings.Contains(err.Error(), "not running") {
					t.Fatalf("second Crash: %v, want an error saying it is not running", err)
				}
			}
			if err := c.Restart(ctx); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if c.Port() != port || c.PID() == pid || c.PID() == 0 {
				t.Fatalf("after Restart: port %d (was %d), pid %d (was %d)", c.Port(), port, c.PID(), pid)
			}
			after := connect(t, c.DSN(""))
			var rows []string
			r, err := after.Query(ctx, `SELECT v FROM t ORDER BY v`)
			if err != nil {
				t.Fatal(err)
			}
			rows, err = pgx.CollectRows(r, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(rows, ",") != "committed" {
				t.Fatalf("rows after the restart: %v, want only the committed one", rows)
			}
			if got := show(t, after, "work_mem"); got != "8MB" {
				t.Fatalf("work_mem after Restart = %s, want the start setting 8MB", got)
			}
			// The open transaction died with its backend (on a fast shutdown
			// with FATAL 57P01 first).
			if _, err := open.Exec(ctx, `COMMIT`); err == nil {
				t.Fatal("COMMIT on a connection from before the restart succeeded")
			}
			b, err := os.ReadFile(c.LogPath())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tt.log) {
				t.Fatalf("server log lacks %q:\n%s", tt.log, tail(b, 30))
			}
		})
	}
}

// TestStopAfterCrash: a crashed cluster that was not restarted stops
// without error and cannot be restarted after Stop.
func TestStopAfterCrash(t *testing.T) {
	c, err := Start(t.Context(), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := c.Crash(); err != nil {
		t.Fatalf("Crash: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop after Crash: %v", err)
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory still there after Stop: %v", err)
	}
	if err := c.Restart(context.Background()); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("Restart after Stop: %v, want an error", err)
	}
	if err := c.Crash(); err == nil {
		t.Fatal("Crash after Stop succeeded")
	}
}
