package replication_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/internal/netproxy"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/replication"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

func poolFor(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func dropSlot(t *testing.T, pool *pgxpool.Pool, cfg replication.Config) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			if _, _, err := replication.Teardown(ctx, pool, cfg); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestSetupIdempotent(t *testing.T) {
	pool := poolFor(t, pgtest.NewMartenDatabase(t, pg, "helpdesk"))
	cfg := replication.Config{Slot: "cdc_x", Publication: "cdc_x", Schema: "helpdesk"}
	dropSlot(t, pool, cfg)
	created, err := replication.Setup(t.Context(), pool, cfg)
	if err != nil || !created {
		t.Fatalf("Setup = %v, %v; want created", created, err)
	}
	created, err = replication.Setup(t.Context(), pool, cfg)
	if err != nil || created {
		t.Fatalf("second Setup = %v, %v; want existing", created, err)
	}
	var viaRoot, insert, update bool
	if err := pool.QueryRow(t.Context(), `SELECT pubviaroot, pubinsert, pubupdate FROM pg_publication WHERE pubname = 'cdc_x'`).Scan(&viaRoot, &insert, &update); err != nil {
		t.Fatal(err)
	}
	if !viaRoot || !insert || update {
		t.Fatalf("publication: via root %v, insert %v, update %v", viaRoot, insert, update)
	}
	s, err := replication.Slot(t.Context(), pool, "cdc_x")
	if err != nil || !s.Exists || s.Plugin != "pgoutput" || s.Active {
		t.Fatalf("slot = %+v, %v", s, err)
	}
	if problems := replication.Check(t.Context(), pool, cfg, decoder.RequiredColumns()); len(problems) > 0 {
		t.Fatalf("Check after Setup: %v", problems)
	}
	slot, pub, err := replication.Teardown(t.Context(), pool, cfg)
	if err != nil || !slot || !pub {
		t.Fatalf("Teardown = %v, %v, %v", slot, pub, err)
	}
	slot, pub, err = replication.Teardown(t.Context(), pool, cfg)
	if err != nil || slot || pub {
		t.Fatalf("second Teardown = %v, %v, %v; want nothing to drop", slot, pub, err)
	}
}

// TestCheck: each server problem is reported as one line that says what is
// wrong.
func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		setup string // SQL run first
		cfg   replication.Config
		dsnAs string // role to connect as
		want  []string
	}{
		{name: "fine", want: nil},
		{name: "missing table", cfg: replication.Config{Schema: "nowhere"},
			want: []string{"table nowhere.mt_events does not exist"}},
		{name: "missing column", setup: `ALTER TABLE public.mt_events DROP COLUMN tenant_id`,
			want: []string{`table public.mt_events lacks required column "tenant_id"`}},
		{name: "missing columns", setup: `ALTER TABLE public.mt_events DROP COLUMN tenant_id, DROP COLUMN version`,
			want: []string{`lacks required columns "version", "tenant_id"`}},
		{name: "no replication privilege", setup: `CREATE ROLE plain LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO plain`, dsnAs: "plain",
			want: []string{`role "plain" has neither REPLICATION nor SUPERUSER`,
				`publication cdc_t does not exist and role plain cannot create it: it lacks the CREATE privilege on database`}},
		{name: "publication creatable, row filter refused", cfg: replication.Config{Filter: "seq_id > random()"},
			want: []string{`source.filter "seq_id > random()": PostgreSQL refuses it`}},
		{name: "publication without the table", setup: `CREATE TABLE other (id int); CREATE PUBLICATION cdc_t FOR TABLE other`,
			want: []string{"publication cdc_t exists but does not publish public.mt_events"}},
		{name: "publication without partition root", setup: `CREATE PUBLICATION cdc_t FOR TABLE public.mt_events WITH (publish = 'insert')`,
			want: []string{"publication cdc_t exists without publish_via_partition_root"}},
		{name: "publication with the same row filter, spelt otherwise", cfg: replication.Config{Filter: "tenant_id::text IN ('a')"},
			setup: `CREATE PUBLICATION cdc_t FOR TABLE public.mt_events WHERE ((tenant_id)::text = 'a') WITH (publish = 'insert', publish_via_partition_root = true)`,
			want:  nil},
		{name: "publication with another row filter", cfg: replication.Config{Filter: "tenant_id::text = 'b'"},
			setup: `CREATE PUBLICATION cdc_t FOR TABLE public.mt_events WHERE (tenant_id::text = 'a') WITH (publish = 'insert', publish_via_partition_root = true)`,
			want:  []string{`publication cdc_t has row filter WHERE ((tenant_id)::text = 'a'::text), but source.filter asks for row filter WHERE ((tenant_id)::text = 'b'::text): change it with ALTER PUBLICATION "cdc_t" SET TABLE "public"."mt_events" WHERE (tenant_id::text = 'b')`}},
		{name: "publication with a row filter the config lacks",
			setup: `CREATE PUBLICATION cdc_t FOR TABLE public.mt_events WHERE (tenant_id::text = 'a') WITH (publish = 'insert', publish_via_partition_root = true)`,
			want:  []string{`publication cdc_t has row filter WHERE ((tenant_id)::text = 'a'::text), but source.filter asks for no row filter`}},
		{name: "row filter PostgreSQL refuses", cfg: replication.Config{Filter: "seq_id > random()"},
			setup: `CREATE PUBLICATION cdc_t FOR TABLE public.mt_events WITH (publish = 'insert', publish_via_partition_root = true)`,
			want:  []string{`source.filter "seq_id > random()": PostgreSQL refuses it`}},
		{name: "slot with another plugin", setup: `SELECT pg_create_logical_replication_slot('cdc_t', 'test_decoding')`,
			want: []string{"replication slot cdc_t uses plugin test_decoding, not pgoutput"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := pgtest.NewMartenDatabase(t, pg, "public")
			admin := poolFor(t, dsn)
			cfg := tt.cfg
			cfg.Slot, cfg.Publication = "cdc_t", "cdc_t"
			dropSlot(t, admin, cfg)
			if tt.setup != "" {
				if _, err := admin.Exec(t.Context(), tt.setup); err != nil {
					t.Fatal(err)
				}
			}
			pool := admin
			if tt.dsnAs != "" {
				pool = poolFor(t, strings.Replace(dsn, "postgres@", tt.dsnAs+"@", 1))
				t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP OWNED BY plain; DROP ROLE plain`) })
			}
			problems := replication.Check(t.Context(), pool, cfg, decoder.RequiredColumns())
			if len(problems) != len(tt.want) {
				t.Fatalf("problems: %v, want %d", problems, len(tt.want))
			}
			for i, p := range problems {
				if !strings.Contains(p.Error(), tt.want[i]) || strings.Contains(p.Error(), "\n") {
					t.Errorf("problem %d = %q, want one line containing %q", i, p, tt.want[i])
				}
			}
		})
	}
}

func TestCheckWALLevel(t *testing.T) {
	replica, err := pgcluster.Start(t.Context(), pgcluster.Options{WALLevel: "replica"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Stop() })
	dsn := pgtest.NewMartenDatabase(t, replica, "public")
	problems := replication.Check(t.Context(), poolFor(t, dsn), replication.Config{Slot: "s", Publication: "p"}, decoder.RequiredColumns())
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), `wal_level is "replica", cdc needs wal_level=logical`) {
		t.Fatalf("problems = %v", problems)
	}
}

// consumer is a minimal Consumer that counts messages.
type consumer struct {
	opened    atomic.Int32
	abandoned atomic.Int32
	messages  atomic.Int64
	restart   chan struct{}
}

func (c *consumer) Open(context.Context) error            { c.opened.Add(1); return nil }
func (c *consumer) Message(context.Context, []byte) error { c.messages.Add(1); return nil }
func (c *consumer) Keepalive(cdc.LSN)                     {}
func (c *consumer) Confirmable() cdc.LSN                  { return 0 }
func (c *consumer) Restart() <-chan struct{}              { return c.restart }
func (c *consumer) Drain(context.Context) error           { return nil }
func (c *consumer) Abandon(bool)                          { c.abandoned.Add(1) }
func (c *consumer) Heard(time.Time)                       {}
func (c *consumer) Idle()                                 {}
func (c *consumer) Advanced() <-chan struct{}             { return nil }
func newConsumer() *consumer                              { return &consumer{restart: make(chan struct{}, 1)} }
func run(ctx context.Context, s *replication.Stream, c *consumer) chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c) }()
	return done
}

// TestStandby: a second stream on a slot that is held stands by, and takes
// the slot over when the first stops.
func TestStandby(t *testing.T) {
	dsn := pgtest.NewMartenDatabase(t, pg, "public")
	pool := poolFor(t, dsn)
	cfg := replication.Config{Slot: "cdc_sb", Publication: "cdc_sb", StandbyRetry: 50 * time.Millisecond, ApplicationName: "first"}
	dropSlot(t, pool, cfg)
	if _, err := replication.Setup(t.Context(), pool, cfg); err != nil {
		t.Fatal(err)
	}
	first, err := replication.NewStream(dsn, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplicationName = "second"
	second, _ := replication.NewStream(dsn, pool, cfg)
	ctx1, stop1 := context.WithCancel(t.Context())
	done1 := run(ctx1, first, newConsumer())
	pgtest.Eventually(t, 10*time.Second, func() bool { return first.State() == replication.StateStreaming }, "first streams")
	ctx2, stop2 := context.WithCancel(t.Context())
	defer stop2()
	c2 := newConsumer()
	done2 := run(ctx2, second, c2)
	pgtest.Eventually(t, 10*time.Second, func() bool { return second.State() == replication.StateStandby }, "second stands by")
	s, _ := replication.Slot(t.Context(), pool, "cdc_sb")
	if !s.Active || !strings.HasPrefix(s.Holder, "first from ") {
		t.Fatalf("slot holder = %q, want the first stream", s.Holder)
	}
	if c2.opened.Load() != 0 {
		t.Fatal("the standby opened its consumer")
	}
	stop1()
	if err := <-done1; err != nil {
		t.Fatalf("first: %v", err)
	}
	pgtest.Eventually(t, 10*time.Second, func() bool { return second.State() == replication.StateStreaming }, "second takes over")
	s, _ = replication.Slot(t.Context(), pool, "cdc_sb")
	if !strings.HasPrefix(s.Holder, "second from ") {
		t.Fatalf("slot holder = %q, want the second stream", s.Holder)
	}
	stop2()
	if err := <-done2; err != nil {
		t.Fatalf("second: %v", err)
	}
}

// TestMissingSlotIsFatal: a slot dropped from under cdc is not silently
// recreated (the events in between would be lost).
func TestMissingSlotIsFatal(t *testing.T) {
	dsn := pgtest.NewMartenDatabase(t, pg, "public")
	pool := poolFor(t, dsn)
	s, err := replication.NewStream(dsn, pool, replication.Config{Slot: "cdc_none", Publication: "cdc_none"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = s.Run(ctx, newConsumer())
	if err == nil || !strings.Contains(err.Error(), "cdc_none") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Run = %v, want an error naming the missing slot", err)
	}
}

func TestPeek(t *testing.T) {
	dsn := pgtest.NewMartenDatabase(t, pg, "public")
	pool := poolFor(t, dsn)
	cfg := replication.Config{Slot: "cdc_pk", Publication: "cdc_pk"}
	dropSlot(t, pool, cfg)
	if _, err := replication.Setup(t.Context(), pool, cfg); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := pool.Exec(t.Context(), `SELECT public.mt_quick_append_events($1::uuid, 'incident', '*DEFAULT*', ARRAY[gen_random_uuid()],
  ARRAY['incident_logged']::varchar[], ARRAY['X']::varchar[], ARRAY['{"n":1}']::jsonb[], ARRAY[NULL]::varchar[], ARRAY[NULL]::varchar[], ARRAY[NULL]::jsonb[])`,
			fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		if err != nil {
			t.Fatal(err)
		}
	}
	dec := decoder.New(decoder.Config{})
	events := 0
	truncated, err := replication.Peek(t.Context(), pool, cfg, 1000, func(data []byte) error {
		m, err := dec.Decode(data)
		if m.Kind == decoder.KindEvent {
			events++
		}
		return err
	})
	if err != nil || truncated || events != 3 {
		t.Fatalf("Peek: %d events, truncated %v, err %v; want 3", events, truncated, err)
	}
	// Peeking consumes nothing.
	events = 0
	dec.Reset()
	if _, err := replication.Peek(t.Context(), pool, cfg, 1000, func(data []byte) error {
		m, err := dec.Decode(data)
		if m.Kind == decoder.KindEvent {
			events++
		}
		return err
	}); err != nil || events != 3 {
		t.Fatalf("second Peek: %d events, %v", events, err)
	}
}

// TestSetupRace: instances starting together all succeed in setting up the
// same slot and publication.
func TestSetupRace(t *testing.T) {
	pool := poolFor(t, pgtest.NewMartenDatabase(t, pg, "public"))
	cfg := replication.Config{Slot: "cdc_race", Publication: "cdc_race"}
	dropSlot(t, pool, cfg)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := replication.Setup(t.Context(), pool, cfg)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Setup: %v", err)
		}
	}
}

// TestSetupRowFilter: source.filter becomes the publication's row filter; a
// filter PostgreSQL refuses gets an error that says how to write it.
func TestSetupRowFilter(t *testing.T) {
	pool := poolFor(t, pgtest.NewMartenDatabase(t, pg, "public"))
	refused := replication.Config{Slot: "cdc_f", Publication: "cdc_f", Filter: "tenant_id in ('acme', 'globex')"}
	_, err := replication.Setup(t.Context(), pool, refused)
	if err == nil || !strings.Contains(err.Error(), "tenant_id::text in ('acme', 'globex')") {
		t.Fatalf("Setup with a varchar IN filter = %v, want the hint to cast", err)
	}
	cfg := replication.Config{Slot: "cdc_f", Publication: "cdc_f", Filter: "tenant_id::text in ('acme', 'globex')"}
	dropSlot(t, pool, cfg)
	if _, err := replication.Setup(t.Context(), pool, cfg); err != nil {
		t.Fatal(err)
	}
	var filter string
	if err := pool.QueryRow(t.Context(), `SELECT rowfilter FROM pg_publication_tables WHERE pubname = 'cdc_f'`).Scan(&filter); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(filter, "acme") || !strings.Contains(filter, "globex") {
		t.Fatalf("row filter = %q", filter)
	}
}

// TestSilentConnection: a replication connection that stops carrying bytes
// without a reset (frozen at a proxy) is dropped after the timeout, the
// consumer is told to abandon it, and the stream takes the slot again as
// soon as the server has ended its side (wal_sender_timeout, which the
// stream sets to the same timeout). An idle stream is checked too: nothing
// is written while the connection is frozen.
func TestSilentConnection(t *testing.T) {
	dsn := pgtest.NewMartenDatabase(t, pg, "public")
	pool := poolFor(t, dsn)
	cfg := replication.Config{Slot: "cdc_silent", Publication: "cdc_silent", StandbyRetry: 50 * time.Millisecond, Timeout: 2 * time.Second}
	dropSlot(t, pool, cfg)
	if _, err := replication.Setup(t.Context(), pool, cfg); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := netproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	u.Host = proxy.Addr()
	s, err := replication.NewStream(u.String(), pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newConsumer()
	ctx, cancel := context.WithCancel(t.Context())
	done := run(ctx, s, c)
	pgtest.Eventually(t, 10*time.Second, func() bool { return s.State() == replication.StateStreaming }, "streams")

	proxy.Freeze()
	frozen := time.Now()
	pgtest.Eventually(t, 30*time.Second, func() bool {
		h := s.Health()
		return h.State != replication.StateStreaming && c.abandoned.Load() > 0
	}, "the silent connection is dropped")
	if h := s.Health(); h.State == replication.StateStarting && !strings.Contains(h.Err, "sent nothing") {
		t.Errorf("reconnecting because %q, want the silence named", h.Err)
	}
	pgtest.Eventually(t, 30*time.Second, func() bool {
		return s.State() == replication.StateStreaming && c.opened.Load() == 2
	}, "streams again on a new connection")
	t.Logf("streaming again %s after the freeze (timeout %s)", time.Since(frozen).Round(time.Millisecond), cfg.Timeout)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCheckSlotOfAnotherDatabase: slot names are shared by the whole server;
// a slot of the configured name in another database is a problem, not a
// slot to stream from.
func TestCheckSlotOfAnotherDatabase(t *testing.T) {
	other := poolFor(t, pgtest.NewDatabase(t, pg))
	cfg := replication.Config{Slot: "cdc_other_db", Publication: "cdc_other_db"}
	if _, err := other.Exec(t.Context(), `SELECT pg_create_logical_replication_slot('cdc_other_db', 'pgoutput')`); err != nil {
		t.Fatal(err)
	}
	dropSlot(t, other, cfg)
	pool := poolFor(t, pgtest.NewMartenDatabase(t, pg, "public"))
	problems := replication.Check(t.Context(), pool, cfg, decoder.RequiredColumns())
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "replication slot cdc_other_db belongs to database ") {
		t.Fatalf("problems: %v, want one about the slot of another database", problems)
	}
}
