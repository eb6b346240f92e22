package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

// TestBadInput: each mistake gives one clear line on stderr and the exit code
// of SPEC §6: 2 for usage and configuration errors, 1 for what the server
// lacks. Both run and validate are checked.
func TestBadInput(t *testing.T) {
	replica, err := pgcluster.Start(t.Context(), pgcluster.Options{WALLevel: "replica"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Stop() })

	good := func(t *testing.T) string { dsn, _ := martenStore(t); return dsn }
	tests := []struct {
		name   string
		config string // %DSN% is replaced by the database's DSN
		dsn    func(t *testing.T) string
		code   int
		want   string // the one line, after "cdc: "
	}{
		{
			name:   "malformed yaml",
			config: "pipelines:\n  - name: helpdesk\n    source: {dsn: x\n",
			code:   cli.ExitUsage,
			want:   "cdc.yaml:3: invalid YAML: did not find expected ',' or '}'",
		},
		{
			name:   "unknown key",
			config: "pipelines:\n  - name: helpdesk\n    source: {dsn: x}\n    sinks:\n      - {name: out, kind: stdout, batch: {max_evnts: 5}}\n",
			code:   cli.ExitUsage,
			want:   "cdc.yaml:5: pipelines[0].sinks[0].batch.max_evnts: unknown key (known: max_events, max_bytes, max_wait)",
		},
		{
			name:   "unset variable",
			config: "pipelines:\n  - name: helpdesk\n    source: {dsn: \"${CDC_NOT_SET}\"}\n    sinks: [{name: out, kind: stdout}]\n",
			code:   cli.ExitUsage,
			want:   "cdc.yaml:3: pipelines[0].source.dsn: environment variable CDC_NOT_SET is not set",
		},
		{
			name:   "malformed dsn",
			config: "pipelines:\n  - name: helpdesk\n    source: {dsn: \"postgres://cdc:secret-pw@db.internal:notaport/helpdesk\", schema: helpdesk}\n    sinks: [{name: out, kind: stdout}]\n",
			code:   cli.ExitUsage,
			want:   "pipeline helpdesk: source.dsn: ",
		},
		{
			name:   "missing table",
			config: "pipelines:\n  - name: helpdesk\n    source: {dsn: \"%DSN%\", schema: nowhere}\n    sinks: [{name: out, kind: stdout}]\n",
			dsn:    good,
			code:   cli.ExitFailure,
			want:   "pipeline helpdesk: table nowhere.mt_events does not exist",
		},
		{
			name:   "missing column",
			config: "pipelines:\n  - name: helpdesk\n    source: {dsn: \"%DSN%\", schema: helpdesk}\n    sinks: [{name: out, kind: stdout}]\n",
			dsn: func(t *testing.T) string {
				dsn, pool := martenStore(t)
				if _, err := pool.Exec(t.Context(), `ALTER TABLE helpdesk.mt_events DROP COLUMN tenant_id`); err != nil {
					t.Fatal(err)
				}
				return dsn
			},
			code: cli.ExitFailure,
			want: `pipeline helpdesk: table helpdesk.mt_events lacks required column "tenant_id"`,
		},
		{
			name:   "wal_level not logical",
			config: "pipelines:\n  - name: helpdesk\n    source: {dsn: \"%DSN%\", schema: helpdesk}\n    sinks: [{name: out, kind: stdout}]\n",
			dsn:    func(t *testing.T) string { return pgtest.NewMartenDatabase(t, replica, "helpdesk") },
			code:   cli.ExitFailure,
			want:   `pipeline helpdesk: wal_level is "replica", cdc needs wal_level=logical`,
		},
		{
			name:   "no replication privilege",
			config: "pipelines:\n  - name: helpdesk\n    source: {dsn: \"%DSN%\", schema: helpdesk}\n    sinks: [{name: out, kind: stdout}]\n",
			dsn: func(t *testing.T) string {
				dsn, pool := martenStore(t)
				_, err := pool.Exec(t.Context(), `CREATE ROLE cdc_plain LOGIN PASSWORD 'secret-pw';
GRANT USAGE ON SCHEMA helpdesk TO cdc_plain; GRANT SELECT ON ALL TABLES IN SCHEMA helpdesk TO cdc_plain`)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP OWNED BY cdc_plain; DROP ROLE cdc_plain`) })
				return strings.Replace(dsn, "postgres@", "cdc_plain:secret-pw@", 1)
			},
			code: cli.ExitFailure,
			want: `pipeline helpdesk: role "cdc_plain" has neither REPLICATION nor SUPERUSER: ALTER ROLE "cdc_plain" REPLICATION`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := tt.config
			var dsn string
			if tt.dsn != nil {
				dsn = tt.dsn(t)
				cfg = strings.ReplaceAll(cfg, "%DSN%", dsn)
			}
			path := filepath.Join(dir, "cdc.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"validate", "run"} {
				c := startCDC(t, dir, cmd, nil, cmd, "--config", "cdc.yaml")
				code := c.wait(30 * time.Second)
				stderr := c.stderr()
				lines := strings.Split(strings.TrimSpace(stderr), "\n")
				// One line per problem, this one first (the role of the
				// last case lacks more than REPLICATION).
				if code != tt.code || len(lines) != len(slices.Compact(slices.Sorted(slices.Values(lines)))) || !strings.HasPrefix(lines[0], "cdc: "+tt.want) {
					t.Fatalf("cdc %s: exit %d, stderr:\n%s\nwant exit %d and a first line starting %q", cmd, code, stderr, tt.code, "cdc: "+tt.want)
				}
				if strings.Contains(stderr, "secret-pw") {
					t.Fatalf("cdc %s printed the password:\n%s", cmd, stderr)
				}
			}
		})
	}
}

// TestUnreachable: validate reports an unreachable server in one line; run
// keeps retrying (logging, without the password) until stopped.
func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	cfg := "pipelines:\n  - name: helpdesk\n    source: {dsn: \"postgres://u:secret-pw@127.0.0.1:1/x?connect_timeout=1\"}\n    sinks: [{name: out, kind: stdout}]\n"
	path := filepath.Join(dir, "cdc.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	v := startCDC(t, dir, "validate", nil, "validate", "--config", path)
	if code := v.wait(30 * time.Second); code != cli.ExitFailure {
		t.Fatalf("validate exit %d, want 1:\n%s", code, v.stderr())
	}
	lines := strings.Split(strings.TrimSpace(v.stderr()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "pipeline helpdesk: could not connect to the source database") {
		t.Fatalf("validate stderr:\n%s", v.stderr())
	}
	r := startCDC(t, dir, "run", nil, "run", "--config", path)
	pgtest.Eventually(t, 15*time.Second, func() bool { return strings.Contains(r.stderr(), "database not reachable; retrying") }, "run retries")
	r.stopOK()
	for _, out := range []string{v.stderr(), r.stderr()} {
		if strings.Contains(out, "secret-pw") {
			t.Fatalf("password printed:\n%s", out)
		}
	}
}
