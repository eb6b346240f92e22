package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testLogger writes the cluster's log lines to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	opts.Logger = testLogger(t)
	began := time.Now()
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("cluster started in %v on port %d", time.Since(began).Round(time.Millisecond), c.Port())
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func show(t *testing.T, conn *pgx.Conn, setting string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(t.Context(), "SHOW "+setting).Scan(&v); err != nil {
		t.Fatalf("SHOW %s: %v", setting, err)
	}
	return v
}

func TestClusterSettings(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want map[string]string
	}{
		{
			name: "defaults",
			want: map[string]string{
				"wal_level":               "logical",
				"max_replication_slots":   "64",
				"max_wal_senders":         "64",
				"max_connections":         "300",
				"fsync":                   "off",
				"full_page_writes":        "off",
				"synchronous_commit":      "on",
				"listen_addresses":        "127.0.0.1",
				"unix_socket_directories": "",
				"TimeZone":                "UTC",
				"server_encoding":         "UTF8",
				"lc_collate":              "C",
			},
		},
		{
			name: "replica with extra settings",
			opts: Options{WALLevel: "replica", Settings: map[string]string{"work_mem": "8MB", "TimeZone": "Europe/Paris"}},
			want: map[string]string{
				"wal_level": "replica",
				"work_mem":  "8MB",
				"TimeZone":  "Europe/Paris",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, tt.opts)
			conn := connect(t, c.DSN(""))
			for k, want := range tt.want {
				if got := show(t, conn, k); got != want {
					t.Errorf("SHOW %s = %q, want %q", k, got, want)
				}
			}
			if got := show(t, conn, "port"); got != strconv.Itoa(c.Port()) {
				t.Errorf("SHOW port = %s, want %d", got, c.Port())
			}
			var user string
			if err := conn.QueryRow(t.Context(), "SELECT current_user").Scan(&user); err != nil || user != "postgres" {
				t.Errorf("current_user = %q, %v; want postgres", user, err)
			}
		})
	}
}

func TestClusterDatabases(t *testing.T) {
	c := startCluster(t, Options{})
	ctx := t.Context()
	conn := connect(t, c.DSN("postgres"))
	exists := func(name string) bool {
		t.Helper()
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
			t.Fatalf("query pg_database: %v", err)
		}
		return ok
	}

	for _, name := range []string{"plain", "Mixed Case-name", `quo"te`} {
		if err := c.CreateDatabase(ctx, name); err != nil {
			t.Fatalf("CreateDatabase(%q): %v", name, err)
		}
		if !exists(name) {
			t.Fatalf("database %q missing after CreateDatabase", name)
		}
		// A connection open in the database does not prevent the drop.
		db := connect(t, c.DSN(name))
		var got string
		if err := db.QueryRow(ctx, "SELECT current_database()").Scan(&got); err != nil || got != name {
			t.Fatalf("current_database() = %q, %v; want %q", got, err, name)
		}
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Fatalf("DropDatabase(%q): %v", name, err)
		}
		if exists(name) {
			t.Fatalf("database %q still exists after DropDatabase", name)
		}
	}
	if err := c.CreateDatabase(ctx, "plain"); err != nil {
		t.Fatalf("CreateDatabase again: %v", err)
	}
	if err := c.CreateDatabase(ctx, "plain"); err == nil || !strings.Contains(err.Error(), `create database "plain"`) {
		t.Errorf("CreateDatabase of an existing database: err = %v, want a wrapped duplicate error", err)
	}
	if err := c.DropDatabase(ctx, "never_created"); err != nil {
		t.Errorf("DropDatabase of a missing database: %v", err)
	}

	a, err := c.NewDatabase(ctx, "TestSomething/sub case")
	if err != nil {
		t.Fatalf("NewDatabase: %v", err)
	}
	b, err := c.NewDatabase(ctx, "TestSomething/sub case")
	if err != nil {
		t.Fatalf("NewDatabase: %v", err)
	}
	if a == b || !exists(a) || !exists(b) || !strings.HasPrefix(a, "testsomething_sub_case_") {
		t.Errorf("NewDatabase names %q, %q: want distinct existing testsomething_sub_case_N", a, b)
	}
}

func TestStopRemovesDirAndIsIdempotent(t *testing.T) {
	c, err := Start(t.Context(), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	for _, p := range []string{c.Dir(), c.DataDir(), c.LogPath(), filepath.Join(c.DataDir(), "postmaster.pid")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("stat %s: %v", p, err)
		}
	}
	pid := c.server.cmd.Process.Pid
	began := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(began).Round(time.Millisecond))
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s still there after Stop (stat: %v)", c.Dir(), err)
	}
	if processAlive(pid) {
		t.Errorf("postmaster %d still alive after Stop", pid)
	}
	if _, err := pgx.Connect(t.Context(), c.DSN("")); err == nil {
		t.Errorf("connect after Stop succeeded")
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		is      error
		contain []string
	}{
		{
			name:    "no binaries",
			opts:    Options{BinDir: t.TempDir()},
			is:      ErrNoServer,
			contain: []string{"apt-get install -y postgresql-15"},
		},
		{
			name:    "reserved setting",
			opts:    Options{Settings: map[string]string{"port": "5432"}},
			contain: []string{"port is managed by pgcluster"},
		},
		{
			name:    "bad setting name",
			opts:    Options{Settings: map[string]string{"x=y": "1"}},
			contain: []string{`invalid setting name "x=y"`},
		},
		{
			name:    "server refuses a setting",
			opts:    Options{Settings: map[string]string{"shared_buffers": "lots"}},
			contain: []string{"postgres exited during startup", `invalid value for parameter "shared_buffers"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Logger = testLogger(t)
			c, err := Start(t.Context(), tt.opts)
			if err == nil {
				c.Stop()
				t.Fatal("Start succeeded, want an error")
			}
			t.Logf("error: %v", err)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error is not %v", tt.is)
			}
			for _, s := range tt.contain {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not contain %q", s)
				}
			}
		})
	}
}

func TestStartCleansUpOnFailure(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Options{BaseDir: base, Settings: map[string]string{"max_connections": "-1"}})
	if err == nil {
		t.Fatal("Start succeeded, want an error")
	}
	left, _ := filepath.Glob(filepath.Join(base, "*"))
	if len(left) != 0 {
		t.Errorf("left behind after a failed Start: %v", left)
	}
}

func TestFindBinDirEnv(t *testing.T) {
	t.Setenv(BinDirEnv, t.TempDir())
	_, err := FindBinDir()
	if !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), BinDirEnv) {
		t.Errorf("FindBinDir with an empty $%s: err = %v, want ErrNoServer naming the variable", BinDirEnv, err)
	}

	dir, err := func() (string, error) {
		os.Unsetenv(BinDirEnv) // restored by t.Setenv's cleanup
		return FindBinDir()
	}()
	if err != nil {
		t.Fatalf("FindBinDir: %v", err)
	}
	t.Setenv(BinDirEnv, dir)
	if got, err := FindBinDir(); err != nil || got != dir {
		t.Errorf("FindBinDir with $%s=%s: %q, %v", BinDirEnv, dir, got, err)
	}
}

func TestHighestDebianBinDir(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "10", "13", "15", "16"} {
		bin := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		names := []string{"initdb", "postgres"}
		if v == "16" {
			names = names[:1] // client-only leftovers: no server
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := highestDebianBinDir(root), filepath.Join(root, "15", "bin"); got != want {
		t.Errorf("highestDebianBinDir = %q, want %q", got, want)
	}
	if got := highestDebianBinDir(filepath.Join(root, "missing")); got != "" {
		t.Errorf("highestDebianBinDir of a missing root = %q, want empty", got)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"9.6", "10", -1},
		{"10", "9.6", 1},
		{"15", "15", 0},
		{"15", "15.1", -1},
		{"16", "15", 1},
		{"devel", "15", 1},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if (got < 0 && tt.want >= 0) || (got > 0 && tt.want <= 0) || (got == 0 && tt.want != 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestUniqueName(t *testing.T) {
	tests := []struct {
		prefix string
		n      uint64
		want   string
	}{
		{"TestQuickAppend", 1, "testquickappend_1"},
		{"TestQuickAppend/new_stream", 12, "testquickappend_new_stream_12"},
		{"Test/ü ñ--x", 3, "test_x_3"},
		{"", 7, "db_7"},
		{"///", 7, "db_7"},
		{"42things", 1, "db_42things_1"},
		{strings.Repeat("a", 100), 123, strings.Repeat("a", 59) + "_123"},
		{strings.Repeat("a", 58) + "/bbbb", 1, strings.Repeat("a", 58) + "_bb_1"},
		{strings.Repeat("a", 60) + "/bbbb", 1, strings.Repeat("a", 60) + "_1"},
	}
	for _, tt := range tests {
		got := UniqueName(tt.prefix, tt.n)
		if got != tt.want {
			t.Errorf("UniqueName(%q, %d) = %q, want %q", tt.prefix, tt.n, got, tt.want)
		}
		if len(got) > 63 {
			t.Errorf("UniqueName(%q, %d) is %d bytes long", tt.prefix, tt.n, len(got))
		}
	}
}

func TestRemoveStale(t *testing.T) {
	base := t.TempDir()
	// A pid that is certainly dead: a child that has been reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := cmd.Process.Pid

	mk := func(name string, owner int, age time.Duration) string {
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Join(dir, dataDirName), 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != 0 {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(owner)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mt := time.Now().Add(-age)
		if err := os.Chtimes(dir, mt, mt); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		dir  string
		kept bool
	}{
		{mk(dirPrefix+"dead", deadPid, 0), false},
		{mk(dirPrefix+"alive", os.Getpid(), 0), true},
		{mk(dirPrefix+"no-owner-young", 0, 0), true},
		{mk(dirPrefix+"no-owner-old", 0, 2*staleAge), false},
		{mk("other-dir", deadPid, 0), true},
	}
	removeStale(base, testLogger(t))
	for _, tt := range tests {
		_, err := os.Stat(tt.dir)
		if kept := err == nil; kept != tt.kept {
			t.Errorf("%s: kept = %v, want %v", filepath.Base(tt.dir), kept, tt.kept)
		}
	}
}

// helperEnv makes the test binary act as a process that starts a cluster,
// prints "postmaster-pid dir" and blocks, for TestServerDiesWithParent.
const helperEnv = "PGCLUSTER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		c, err := Start(context.Background(), Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("%d %s\n", c.server.cmd.Process.Pid, c.Dir())
		select {}
	}
	os.Exit(m.Run())
}

func TestServerDiesWithParent(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	var dir string
	if _, err := fmt.Fscan(bufio.NewReader(out), &pid, &dir); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("read helper output: %v", err)
	}
	if !processAlive(pid) {
		t.Fatalf("postmaster %d not running", pid)
	}
	if isStale(dir) {
		t.Errorf("%s reported stale while its owner runs", dir)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still alive 10s after its parent was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !isStale(dir) {
		t.Fatalf("%s not reported stale after its owner died", dir)
	}
	removeStale(filepath.Dir(dir), testLogger(t))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s not removed by removeStale (stat: %v)", dir, err)
	}
}
