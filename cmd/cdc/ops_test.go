package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/status"
)

// runInProcess runs one cdc command line in the test process and returns
// the exit code, stdout and stderr.
func runInProcess(t *testing.T, lookup map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runCommand(t.Context(), args, env{stdout: &stdout, stderr: &stderr, lookupEnv: func(k string) (string, bool) {
		v, ok := lookup[k]
		return v, ok
	}})
	return code, stdout.String(), stderr.String()
}

// TestValidateStatusTeardown: validate accepts a good setup; status shows
// the slot and each sink's checkpoint and lag, counting events pending in an
// inactive slot; teardown removes the slot, the publication and, on request,
// the checkpoints.
func TestValidateStatusTeardown(t *testing.T) {
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "      - name: closed-only\n        kind: stdout\n        include: [incident_closed]\n")
	env := map[string]string{"CDC_TEST_DSN": dsn}

	code, out, errOut := runInProcess(t, env, "validate", "--config", cfg)
	if code != 0 || !strings.Contains(out, "pipeline helpdesk: ok") {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}

	c := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)
	w := startWriters(t, pool, 2, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { return countLines(c.out) >= 50 }, "delivers")
	w.halt()
	committed, _ := w.snapshot()
	pgtest.Eventually(t, 30*time.Second, func() bool { return countLines(c.out) >= len(committed) }, "delivers everything")

	// While running: the slot is active and held by this process.
	code, out, _ = runInProcess(t, env, "status", "--config", cfg, "--json")
	var st struct {
		Pipelines []status.Pipeline `json:"pipelines"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	if p := st.Pipelines[0]; !p.Slot.Active || !strings.Contains(p.Slot.Holder, "cdc helpdesk") || len(p.Sinks) != 2 {
		t.Fatalf("status while running: %+v", p)
	}
	c.stopOK()
	// The server's walsender ends a moment after the process.
	pgtest.Eventually(t, 30*time.Second, func() bool {
		var active bool
		return pool.QueryRow(t.Context(), `SELECT active FROM pg_replication_slots WHERE slot_name = 'cdc_helpdesk' AND database = current_database()`).Scan(&active) == nil && !active
	}, "the slot is released")

	// Stopped, caught up: no lag.
	code, out, _ = runInProcess(t, env, "status", "--config", cfg, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	p := st.Pipelines[0]
	if p.Slot.Active || !p.Slot.Exists {
		t.Fatalf("slot after stop: %+v", p.Slot)
	}
	for _, s := range p.Sinks {
		if s.Checkpoint == "" || s.LagEvents != 0 {
			t.Fatalf("sink after stop: %+v", s)
		}
	}
	if p.Sinks[0].Delivered != int64(len(committed)) {
		t.Fatalf("status says %d delivered, want %d", p.Sinks[0].Delivered, len(committed))
	}

	// Events appended while nothing runs are counted from the slot, per
	// sink and through its filters.
	w = startWriters(t, pool, 1, 0)
	pgtest.Eventually(t, 10*time.Second, func() bool { n, _ := w.snapshot(); return len(n) >= 30 }, "more appends")
	w.halt()
	pending, _ := w.snapshot()
	var closed int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM helpdesk.mt_events WHERE type = 'incident_closed' AND id = ANY($1::uuid[])`, keys(pending)).Scan(&closed); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runInProcess(t, env, "status", "--config", cfg, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	p = st.Pipelines[0]
	if p.Sinks[0].LagEvents != int64(len(pending)) || p.Sinks[1].LagEvents != int64(closed) || p.Sinks[0].LagBytes <= 0 || p.Sinks[0].LagSeconds <= 0 {
		t.Fatalf("lag with %d pending (%d closed): %+v", len(pending), closed, p.Sinks)
	}
	code, out, _ = runInProcess(t, env, "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "sink out (stdout): ok, checkpoint ") || !strings.Contains(out, "inactive") {
		t.Fatalf("status text:\n%s", out)
	}

	code, out, errOut = runInProcess(t, env, "teardown", "--config", cfg, "--checkpoints")
	if code != 0 || !strings.Contains(out, "slot cdc_helpdesk: dropped") || !strings.Contains(out, "publication cdc_helpdesk: dropped") || !strings.Contains(out, "checkpoints: 2 rows deleted") {
		t.Fatalf("teardown: exit %d\n%s%s", code, out, errOut)
	}
	var slots int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("%d slots after teardown (%v)", slots, err)
	}
}

// TestLeastPrivilege: cdc's role set up as the README recommends
// (REPLICATION, CREATE on the schema, SELECT on the tables) and the
// publication created by the table's owner. Before the owner created it,
// validate says the role cannot and prints the statement; teardown drops the
// slot and the checkpoints, and names the statement the owner must run to
// drop the publication.
func TestLeastPrivilege(t *testing.T) {
	dsn, pool := martenStore(t)
	var db string
	mustDo(t, "database", pool.QueryRow(t.Context(), `SELECT current_database()`).Scan(&db))
	role := "cdc_lp_" + strings.ToLower(strings.NewReplacer("-", "_").Replace(db[max(0, len(db)-20):]))
	ident := pgx.Identifier{role}.Sanitize()
	for _, stmt := range []string{
		`CREATE ROLE ` + ident + ` LOGIN REPLICATION`,
		`GRANT USAGE ON SCHEMA helpdesk TO ` + ident,
		`GRANT SELECT ON ALL TABLES IN SCHEMA helpdesk TO ` + ident,
	} {
		_, err := pool.Exec(t.Context(), stmt)
		mustDo(t, stmt, err)
	}
	roleDSN := strings.Replace(dsn, "postgres://postgres@", "postgres://"+role+"@", 1)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	env := map[string]string{"CDC_TEST_DSN": roleDSN}

	code, out, errOut := runInProcess(t, env, "validate", "--config", cfg)
	want := `CREATE PUBLICATION "cdc_helpdesk" FOR TABLE "helpdesk"."mt_events" WITH (publish = 'insert', publish_via_partition_root = true);`
	if code != cli.ExitFailure || !strings.Contains(errOut, "publication cdc_helpdesk does not exist and role "+role+" cannot create it") ||
		!strings.Contains(errOut, "the CREATE privilege on database") || !strings.Contains(errOut, "ownership of helpdesk.mt_events") || !strings.Contains(errOut, want) {
		t.Fatalf("validate without the publication: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "role "+role+" may not create cdc_checkpoints in schema helpdesk: GRANT CREATE ON SCHEMA \"helpdesk\" TO \""+role+"\"") {
		t.Fatalf("validate without CREATE on the checkpoint schema:\n%s", errOut)
	}
	_, err := pool.Exec(t.Context(), `GRANT CREATE ON SCHEMA helpdesk TO `+ident)
	mustDo(t, "grant create", err)
	// The owner runs the statement validate printed.
	_, err = pool.Exec(t.Context(), strings.TrimSuffix(want, ";"))
	mustDo(t, "create the publication as its owner", err)
	if code, out, errOut = runInProcess(t, env, "validate", "--config", cfg); code != 0 {
		t.Fatalf("validate with the publication: exit %d\n%s%s", code, out, errOut)
	}
	c := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + roleDSN}, cfg, pool)
	w := startWriters(t, pool, 1, 0)
	pgtest.Eventually(t, 30*time.Second, func() bool { return countLines(c.out) >= 5 }, "delivers")
	committed, _ := w.finish(t)
	pgtest.Eventually(t, 30*time.Second, func() bool { return allDelivered(t, committed, c.out) }, "delivers everything")
	c.stopOK()
	if _, ok := checkpointOf(t, pool, "out"); !ok {
		t.Fatal("no checkpoint after the run")
	}

	code, out, errOut = runInProcess(t, env, "teardown", "--config", cfg, "--checkpoints")
	if code != cli.ExitFailure || !strings.Contains(out, "slot cdc_helpdesk: dropped") ||
		!strings.Contains(out, "publication cdc_helpdesk: not done: drop publication cdc_helpdesk: role "+role+" may not (must be owner of publication cdc_helpdesk); its owner or a superuser must run: DROP PUBLICATION IF EXISTS \"cdc_helpdesk\";") ||
		!strings.Contains(out, "checkpoints: 1 rows deleted") || !strings.Contains(errOut, "teardown incomplete") {
		t.Fatalf("teardown as a role that does not own the publication: exit %d\nstdout:\n%sstderr:\n%s", code, out, errOut)
	}
	var slots, rows int
	mustDo(t, "slots", pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots))
	mustDo(t, "checkpoints", pool.QueryRow(t.Context(), `SELECT count(*) FROM helpdesk.cdc_checkpoints`).Scan(&rows))
	if slots != 0 || rows != 0 {
		t.Fatalf("after teardown: %d slots, %d checkpoint rows", slots, rows)
	}
}

// TestStatusUnreachable: status says it could not connect (not that the
// slot is missing), exits 1, and --pipeline selects pipelines like the
// other commands.
func TestStatusUnreachable(t *testing.T) {
	addr := closedAddr(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	env := map[string]string{"CDC_TEST_DSN": "postgres://cdc:s3cret@" + addr + "/helpdesk?connect_timeout=5"}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status", "--config", cfg}, cli.ExitFailure, "could not connect"},
		{[]string{"status", "--config", cfg, "--pipeline", "helpdesk", "--json"}, cli.ExitFailure, `"connected": false`},
		{[]string{"status", "--config", cfg, "--pipeline", "nope"}, cli.ExitUsage, "--pipeline nope: no such pipeline (configured: helpdesk)"},
	} {
		code, out, errOut := runInProcess(t, env, tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) || strings.Contains(out, "missing") || strings.Contains(out+errOut, "s3cret") {
			t.Errorf("cdc %s: exit %d, want %d and %q\nstdout:\n%sstderr:\n%s", strings.Join(tt.args[1:], " "), code, tt.code, tt.want, out, errOut)
		}
	}
}

// TestSecretInDSN: a password with "@", "/", "#" and "%" substituted into a
// URL DSN reaches the connection as it is, and no fragment of it appears in
// any command's output, even when the server cannot be reached.
func TestSecretInDSN(t *testing.T) {
	addr := closedAddr(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "cdc.yaml")
	cfg := "pipelines:\n  - name: helpdesk\n    source:\n      dsn: postgres://cdc:${PGPASSWORD}@" + addr + "/helpdesk?connect_timeout=5\n      schema: helpdesk\n    sinks: [{name: out, kind: stdout}]\n"
	mustDo(t, "config", os.WriteFile(path, []byte(cfg), 0o600))
	const pw = "Se@cret99/x#y%z"
	env := map[string]string{"PGPASSWORD": pw}
	for _, args := range [][]string{{"validate"}, {"status"}, {"teardown"}} {
		code, out, errOut := runInProcess(t, env, append(args, "--config", path)...)
		all := out + errOut
		if code != cli.ExitFailure || !strings.Contains(all, "could not connect to the source database: "+addr) {
			t.Errorf("cdc %s: exit %d, want 1 and the address it could not reach:\n%s", args[0], code, all)
		}
		for _, frag := range []string{"cret99", "Se@", "x#y", "%z", "Se%40"} {
			if strings.Contains(all, frag) {
				t.Errorf("cdc %s printed %q of the password:\n%s", args[0], frag, all)
			}
		}
	}
}

// TestHugeValue: a 100 kB configuration value that the server refuses is
// not echoed whole: every line cdc prints stays short.
func TestHugeValue(t *testing.T) {
	dsn, _ := martenStore(t)
	dir := t.TempDir()
	filter := "tenant_id::text in ('" + strings.Repeat("x", 100_000) + "') and nope()"
	cfg := writeConfig(t, dir, "")
	data, err := os.ReadFile(cfg)
	mustDo(t, "config", err)
	data = []byte(strings.Replace(string(data), "      schema: helpdesk\n", "      schema: helpdesk\n      filter: \""+filter+"\"\n", 1))
	mustDo(t, "config", os.WriteFile(cfg, data, 0o600))
	for _, cmd := range []string{"validate", "run"} {
		code, out, errOut := runInProcess(t, map[string]string{"CDC_TEST_DSN": dsn}, cmd, "--config", cfg, "--log-format", "json")
		if code == 0 || !strings.Contains(errOut, "source.filter") {
			t.Fatalf("cdc %s: exit %d\n%.2000s", cmd, code, errOut)
		}
		for _, line := range strings.Split(out+errOut, "\n") {
			if len(line) > 1100 {
				t.Errorf("cdc %s printed a line of %d bytes: %.200s...", cmd, len(line), line)
			}
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDemoCommand: cdc demo runs cdc-demo from PATH with its arguments and
// exits with its code; without it, it says how to run the demo and exits 2.
func TestDemoCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	code, _, errOut := runInProcess(t, nil, "demo", "--duration", "3s")
	if code != cli.ExitUsage || !strings.Contains(errOut, "go run ./cmd/cdc-demo") {
		t.Fatalf("without cdc-demo: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runInProcess(t, nil, "bench", "--events", "10"); code != cli.ExitUsage || !strings.Contains(errOut, "go run ./cmd/cdc-bench") {
		t.Fatalf("without cdc-bench: exit %d\n%s", code, errOut)
	}
	script := "#!/bin/sh\necho \"demo $*\"\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, "cdc-demo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runInProcess(t, nil, "demo", "--duration", "3s")
	if code != 3 || out != "demo --duration 3s\n" {
		t.Fatalf("with cdc-demo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestLeastPrivilegeFilter: a role that may not create publications runs a
// pipeline with source.filter once the owner created the publication with
// that filter: validate and run compare the filters without creating a
// probe publication, and a publication whose filter differs is reported.
func TestLeastPrivilegeFilter(t *testing.T) {
	dsn, pool := martenStore(t)
	var db string
	mustDo(t, "database", pool.QueryRow(t.Context(), `SELECT current_database()`).Scan(&db))
	role := "cdc_lpf_" + strings.ToLower(strings.NewReplacer("-", "_").Replace(db[max(0, len(db)-20):]))
	ident := pgx.Identifier{role}.Sanitize()
	for _, stmt := range []string{
		`CREATE ROLE ` + ident + ` LOGIN REPLICATION`,
		`GRANT USAGE, CREATE ON SCHEMA helpdesk TO ` + ident,
		`GRANT SELECT ON ALL TABLES IN SCHEMA helpdesk TO ` + ident,
		`CREATE PUBLICATION cdc_helpdesk FOR TABLE helpdesk.mt_events WHERE (tenant_id = 'acme') WITH (publish = 'insert', publish_via_partition_root = true)`,
	} {
		_, err := pool.Exec(t.Context(), stmt)
		mustDo(t, stmt, err)
	}
	roleDSN := strings.Replace(dsn, "postgres://postgres@", "postgres://"+role+"@", 1)
	env := map[string]string{"CDC_TEST_DSN": roleDSN}
	for _, tc := range []struct {
		filter string
		ok     bool
	}{
		{"tenant_id = 'acme'", true},
		{"(TENANT_ID='acme')", true}, // written otherwise, the same to PostgreSQL
		{"tenant_id = 'globex'", false},
		{"", false},
	} {
		dir := t.TempDir()
		cfg := writeConfig(t, dir, "")
		if tc.filter != "" {
			data, err := os.ReadFile(cfg)
			mustDo(t, "read config", err)
			data = []byte(strings.Replace(string(data), "      schema: helpdesk\n", "      schema: helpdesk\n      filter: \""+tc.filter+"\"\n", 1))
			mustDo(t, "write config", os.WriteFile(cfg, data, 0o600))
		}
		code, out, errOut := runInProcess(t, env, "validate", "--config", cfg)
		if tc.ok && code != 0 {
			t.Fatalf("validate, filter %q, the publication's: exit %d\n%s%s", tc.filter, code, out, errOut)
		}
		if !tc.ok && (code != cli.ExitFailure || !strings.Contains(errOut, "publication cdc_helpdesk has row filter WHERE ((tenant_id)::text = 'acme'::text), but source.filter asks for")) {
			t.Fatalf("validate, filter %q, not the publication's: exit %d\n%s%s", tc.filter, code, out, errOut)
		}
		t.Logf("filter %q: validate exit %d %s", tc.filter, code, strings.TrimSpace(errOut))
		if tc.ok {
			c := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + roleDSN}, cfg, pool)
			c.stopOK()
		}
	}
}

// TestNewSlotGap: a slot created while the sinks have checkpoints (it was
// dropped, or a failover went to a server without it) starts after events
// nobody read: cdc warns, per sink, with the replay that fills the gap.
func TestNewSlotGap(t *testing.T) {
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	env := []string{"CDC_TEST_DSN=" + dsn}
	c := startStreaming(t, dir, "run", env, cfg, pool)
	appendNotes(t, pool, []string{"before"})
	pgtest.Eventually(t, 30*time.Second, func() bool { return countLines(c.out) >= 1 }, "delivers")
	c.stopOK()
	if strings.Contains(c.stderr(), "earlier replication slot") {
		t.Fatalf("a first run warned of a gap:\n%s", c.stderr())
	}
	pgtest.Eventually(t, 30*time.Second, func() bool {
		_, err := pool.Exec(t.Context(), `SELECT pg_drop_replication_slot('cdc_helpdesk')`)
		return err == nil
	}, "drop the slot")
	appendNotes(t, pool, []string{"lost"})
	c = startStreaming(t, dir, "run", env, cfg, pool)
	c.stopOK()
	errOut := c.stderr()
	if !strings.Contains(errOut, "earlier replication slot") || !strings.Contains(errOut, "cdc replay --config FILE --pipeline helpdesk --sink out --from time:") {
		t.Fatalf("no warning of the gap after a new slot:\n%s", errOut)
	}
	for _, line := range strings.Split(errOut, "\n") {
		if strings.Contains(line, "earlier replication slot") {
			t.Log(line)
		}
	}
}
