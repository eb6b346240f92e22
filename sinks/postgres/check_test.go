package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/examples/helpdesk"
	"github.com/martencdc/cdc/internal/pgtable"
)

func TestCheck(t *testing.T) {
	routes, err := helpdeskRoutes()
	if err != nil {
		t.Fatal(err)
	}
	bad := func(stmts ...string) Route {
		r, err := SQL("incident_details.bad", []string{"incident_*"}, stmts...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		ddl    string
		cfg    Config
		user   bool     // connect as a role without privileges
		want   []string // substrings, one per line, in order
		exists bool     // the checkpoint table exists afterwards
	}{
		{name: "helpdesk", ddl: helpdesk.DDL, cfg: Config{Routes: routes}},
		{name: "events mode", cfg: Config{Mode: ModeEvents, Table: "archive.events"}},
		{name: "bad statements", ddl: helpdesk.DDL, cfg: Config{Routes: append([]Route{bad(
			`UPDATE incident_details SET status = 'x' WHERE id = $stream_id`,
			`UPDATE incident_details SET x = 1 WHERE id = $stream_id`,
			`INSERT INTO incident_detail (id) VALUES ($stream_id)`,
			`UPDATE incident_details SET version = $data WHERE id = $stream_id`,
			`UPDATE incident_details SET status = 'x' WHERE id = $stream_id AND $stream_id = 'a'::text`,
		)}, routes...)}, want: []string{
			`projection incident_details.bad, statement 2: ERROR: column "x" of relation "incident_details" does not exist (SQLSTATE 42703)`,
			`projection incident_details.bad, statement 3: ERROR: relation "incident_detail" does not exist (SQLSTATE 42P01)`,
			`projection incident_details.bad, statement 4: ERROR: column "version" is of type bigint but expression is of type jsonb (SQLSTATE 42804)`,
			`projection incident_details.bad, statement 5: ERROR: operator does not exist: uuid = text (SQLSTATE 42883)`,
		}},
		{name: "no privileges", ddl: helpdesk.DDL, cfg: Config{Routes: routes}, user: true, want: []string{
			`checkpoint table: create table cdc_sink_checkpoints: ERROR: permission denied for schema public (SQLSTATE 42501)`,
			`projection incident_details.logged, statement 1: ERROR: permission denied for table incident_details (SQLSTATE 42501)`,
		}},
		{name: "no privilege to create the events table", cfg: Config{Mode: ModeEvents}, user: true, want: []string{
			`checkpoint table: create table cdc_sink_checkpoints: ERROR: permission denied for schema public (SQLSTATE 42501)`,
			`events table: create table cdc_events: ERROR: permission denied for schema public (SQLSTATE 42501)`,
		}},
		{name: "tables exist", ddl: checkpointDDL(table{name: DefaultCheckpointTable}), cfg: Config{Mode: ModeEvents}, exists: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := newTarget(t, tc.ddl)
			if tc.user {
				pool = asUnprivileged(t, pool)
			}
			s := newSink(t, pool, tc.cfg)
			got := s.Check(context.Background())
			if len(tc.want) == 0 && len(got) > 0 {
				t.Fatalf("problems:\n%s", strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if i >= len(got) || !strings.Contains(got[i], w) {
					t.Fatalf("problems:\n%s\nwant line %d to contain\n%s", strings.Join(got, "\n"), i, w)
				}
			}
			if len(got) > len(tc.want) && len(tc.want) > 0 && !tc.user {
				t.Errorf("extra problems:\n%s", strings.Join(got[len(tc.want):], "\n"))
			}
			if ok, err := pgtable.Exists(context.Background(), s.pool, s.cpTable.ident()); err != nil || ok != tc.exists {
				t.Errorf("checkpoint table exists: %v %v, want %v (Check must change nothing)", ok, err, tc.exists)
			}
		})
	}
}

// asUnprivileged returns a pool on the same database as a new role that
// may connect and use schema public, nothing more.
func asUnprivileged(t *testing.T, admin *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	role := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower("cdc_nopriv_"+t.Name()))
	role = role[:min(len(role), 60)]
	mustExec(t, admin, `DROP ROLE IF EXISTS `+role)
	mustExec(t, admin, `CREATE ROLE `+role+` LOGIN`)
	cfg := admin.Config().Copy()
	cfg.ConnConfig.User = role
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		if _, err := admin.Exec(context.Background(), `DROP ROLE `+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	return pool
}

func TestCheckUnreachable(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://cdc:secret@127.0.0.1:1/x?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := newSink(t, pool, Config{Mode: ModeEvents})
	got := s.Check(context.Background())
	if len(got) != 1 || !strings.Contains(got[0], "postgres sink readmodel: cannot connect to the target") || strings.Contains(got[0], "secret") {
		t.Fatalf("got %q", got)
	}
}

func TestPrepareAndCheckpoint(t *testing.T) {
	pool := newTarget(t, "")
	ctx := context.Background()
	r, err := SQL("noop", []string{"*"}, `SELECT $id`)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, pool, Config{Routes: []Route{r}, CheckpointTable: "cdc.sink_checkpoints"})
	if _, ok := checkpointOf(t, s); ok {
		t.Fatal("checkpoint before the table exists")
	}
	for range 2 {
		if err := s.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM cdc.sink_checkpoints`); n != 0 {
		t.Fatalf("%d rows after Prepare", n)
	}
	if _, ok := checkpointOf(t, s); ok {
		t.Fatal("checkpoint before the first write")
	}
	events := items(6)
	events[5].Index = cdc.EndOfTx // the largest index a position can have
	write(t, s, events[:3])
	if p, ok := checkpointOf(t, s); !ok || p != events[2].Position() {
		t.Fatalf("checkpoint %v %v, want %v", p, ok, events[2].Position())
	}
	write(t, s, events)
	if p, _ := checkpointOf(t, s); p != events[5].Position() {
		t.Fatalf("checkpoint %v, want %v", p, events[5].Position())
	}
	// Other sinks and pipelines have their own rows.
	other := newSink(t, pool, Config{Routes: []Route{r}, CheckpointTable: "cdc.sink_checkpoints", Pipeline: "other"})
	if _, ok := checkpointOf(t, other); ok {
		t.Fatal("another pipeline sees this one's checkpoint")
	}
	write(t, other, events[:1])
	if n := count(t, pool, `SELECT count(*) FROM cdc.sink_checkpoints`); n != 2 {
		t.Fatalf("%d checkpoint rows, want 2", n)
	}
	// A replay: the checkpoint is reset, the events are applied again.
	if err := s.ResetCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := checkpointOf(t, s); ok {
		t.Fatal("checkpoint after ResetCheckpoint")
	}
	write(t, s, events[:2])
	if p, _ := checkpointOf(t, s); p != events[1].Position() {
		t.Fatalf("checkpoint %v after the replay, want %v", p, events[1].Position())
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, cdc.Batch{Events: events}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("Close closed the pool: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	pool := newTarget(t, "")
	r, err := SQL("p", []string{"*"}, `SELECT 1`)
	if err != nil {
		t.Fatal(err)
	}
	ok := Config{Pool: pool, Pipeline: "p", Sink: "s", Routes: []Route{r}}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"no pool", func(c *Config) { c.Pool = nil }, "no connection pool"},
		{"no pipeline", func(c *Config) { c.Pipeline = "" }, "no pipeline name"},
		{"no sink", func(c *Config) { c.Sink = "" }, "no sink name"},
		{"no routes", func(c *Config) { c.Routes = nil }, "no projections"},
		{"duplicate names", func(c *Config) { c.Routes = []Route{r, r} }, "two projections named p"},
		{"route without projection", func(c *Config) { c.Routes = []Route{{Name: "x", On: []string{"*"}}} }, "projection x: no projection"},
		{"table in projections mode", func(c *Config) { c.Table = "t" }, "table is for mode events only"},
		{"routes in events mode", func(c *Config) { c.Mode = ModeEvents }, "projections are for mode projections only"},
		{"bad table", func(c *Config) { c.Mode, c.Routes, c.Table = ModeEvents, nil, "a.b.c" }, `table: "a.b.c"`},
		{"bad checkpoint table", func(c *Config) { c.CheckpointTable = "x." }, `checkpoint table: "x."`},
		{"bad mode", func(c *Config) { c.Mode = "latest" }, `mode "latest"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
}
