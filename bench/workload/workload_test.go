package workload_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/bench/workload"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

const schema = "helpdesk"

// newPool returns a pool of up to maxConns connections to a new database
// with the layout installed in schema, closed when the test ends.
func newPool(t testing.TB, layout marten.Layout, maxConns int32) *pgxpool.Pool {
	t.Helper()
	dsn := pgtest.NewMartenDatabaseLayout(t, pg, layout, schema)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse dsn: %v", err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// recorder collects what Run reports.
type recorder struct {
	mu         sync.Mutex
	commits    []workload.Commit
	rolledBack []string
}

func (r *recorder) commit(c workload.Commit) {
	r.mu.Lock()
	r.commits = append(r.commits, c)
	r.mu.Unlock()
}

func (r *recorder) rollback(ids []string) {
	r.mu.Lock()
	r.rolledBack = append(r.rolledBack, ids...)
	r.mu.Unlock()
}

// row is an event as mt_events holds it.
type row struct {
	seqID    int64
	tenant   string
	stream   string
	version  int64
	dataSize int
}

// readEvents returns mt_events by event id.
func readEvents(t *testing.T, pool *pgxpool.Pool) map[string]row {
	t.Helper()
	rows, err := pool.Query(t.Context(), "select id::text, seq_id, tenant_id, stream_id::text, version, octet_length(data::text) from "+
		pgx.Identifier{schema, "mt_events"}.Sanitize())
	if err != nil {
		t.Fatalf("read mt_events: %v", err)
	}
	out := map[string]row{}
	var id string
	var r row
	_, err = pgx.ForEachRow(rows, []any{&id, &r.seqID, &r.tenant, &r.stream, &r.version, &r.dataSize}, func() error {
		out[id] = r
		return nil
	})
	if err != nil {
		t.Fatalf("read mt_events: %v", err)
	}
	return out
}

func TestRunCommitsExactly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		layout marten.Layout
		opts   workload.Options
		events int
	}{
		{
			name:   "default layout, rollbacks and slow transactions",
			layout: marten.LayoutDefault,
			opts:   workload.Options{Writers: 4, TxEvents: 7, Streams: 10, RollbackShare: 0.2, SlowShare: 0.1, SlowFor: 20 * time.Millisecond, PayloadBytes: 1024},
			events: 1000,
		},
		{
			name:   "conjoined tenancy, three tenants",
			layout: marten.LayoutConjoined,
			opts:   workload.Options{Writers: 2, TxEvents: 5, Streams: 6, Tenants: 3, RollbackShare: 0.1},
			events: 303,
		},
		{
			name:   "per-tenant partitions, two tenants",
			layout: marten.LayoutConjoinedPartitioned,
			opts:   workload.Options{Writers: 2, TxEvents: 4, Streams: 4, Tenants: 2, SlowShare: 0.2, SlowFor: 10 * time.Millisecond},
			events: 120,
		},
		{
			name:   "defaults",
			layout: marten.LayoutDefault,
			opts:   workload.Options{},
			events: 95,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := newPool(t, tt.layout, 16)
			var rec recorder
			o := tt.opts
			o.Schema, o.Layout, o.OnRollback = schema, tt.layout, rec.rollback
			res, err := workload.Run(t.Context(), pool, o, tt.events, rec.commit)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Committed != tt.events {
				t.Errorf("Result.Committed = %d, want %d", res.Committed, tt.events)
			}
			if res.Transactions != len(rec.commits) {
				t.Errorf("Result.Transactions = %d, onCommit called %d times", res.Transactions, len(rec.commits))
			}
			if res.RolledBack != len(rec.rolledBack) {
				t.Errorf("Result.RolledBack = %d, OnRollback got %d ids", res.RolledBack, len(rec.rolledBack))
			}
			if o.RollbackShare > 0 && res.RolledBack == 0 {
				t.Errorf("no transaction rolled back with RollbackShare %v: %+v", o.RollbackShare, res)
			}
			if o.SlowShare > 0 && res.Slow == 0 {
				t.Errorf("no slow transaction with SlowShare %v: %+v", o.SlowShare, res)
			}

			table := readEvents(t, pool)
			if len(table) != tt.events {
				t.Errorf("mt_events holds %d events, want %d", len(table), tt.events)
			}
			reported := 0
			for _, c := range rec.commits {
				if len(c.IDs) != len(c.SeqIDs) || len(c.IDs) == 0 || len(c.IDs) > o.TxEvents && o.TxEvents > 0 {
					t.Fatalf("commit with %d ids and %d seq_ids", len(c.IDs), len(c.SeqIDs))
				}
				for i, id := range c.IDs {
					reported++
					r, ok := table[id]
					switch {
					case !ok:
						t.Errorf("committed event %s is not in mt_events", id)
					case r.seqID != c.SeqIDs[i]:
						t.Errorf("event %s: seq_id %d in mt_events, %d reported", id, r.seqID, c.SeqIDs[i])
					}
				}
			}
			if reported != tt.events {
				t.Errorf("%d events reported committed, want %d", reported, tt.events)
			}
			for _, id := range rec.rolledBack {
				if _, ok := table[id]; ok {
					t.Errorf("rolled-back event %s is in mt_events", id)
				}
			}

			// Versions of each stream are 1..n; tenants are as asked.
			versions := map[string][]int64{}
			tenants := map[string]bool{}
			for _, r := range table {
				versions[r.stream] = append(versions[r.stream], r.version)
				tenants[r.tenant] = true
				if o.PayloadBytes > 0 && (r.dataSize < o.PayloadBytes*9/10 || r.dataSize > o.PayloadBytes*11/10) {
					t.Errorf("event body of %d bytes (as jsonb text), want about %d", r.dataSize, o.PayloadBytes)
				}
			}
			for s, vs := range versions {
				slices.Sort(vs)
				for i, v := range vs {
					if v != int64(i+1) {
						t.Fatalf("stream %s has versions %v, want 1..%d", s, vs, len(vs))
					}
				}
			}
			wantTenants := max(o.Tenants, 1)
			if len(tenants) != wantTenants || wantTenants == 1 && !tenants[marten.DefaultTenantID] {
				t.Errorf("tenants %v, want %d", tenants, wantTenants)
			}
		})
	}
}

func TestRunRate(t *testing.T) {
	t.Parallel()
	pool := newPool(t, marten.LayoutDefault, 8)
	const rate, events = 2000, 4000 // about 2 s
	var rec recorder
	o := workload.Options{Schema: schema, Writers: 4, TxEvents: 10, Rate: rate}
	res, err := workload.Run(t.Context(), pool, o, events, rec.commit)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sort.Slice(rec.commits, func(i, j int) bool { return rec.commits[i].At.Before(rec.commits[j].At) })
	// The events committed after the first commit, over the time from the
	// first commit to the last.
	first, last := rec.commits[0].At, rec.commits[len(rec.commits)-1].At
	got := float64(res.Committed-len(rec.commits[0].IDs)) / last.Sub(first).Seconds()
	t.Logf("%d events in %v: %.0f events/s from commit times (Run took %v)", res.Committed, last.Sub(first), got, res.Elapsed)
	if got < rate*0.85 || got > rate*1.15 {
		t.Errorf("rate %.0f events/s from commit times, want %d ± 15%%", got, rate)
	}
	// No burst: every half second window holds about a half second's worth.
	const window = 500 * time.Millisecond
	counts := map[int]int{}
	for _, c := range rec.commits {
		counts[int(c.At.Sub(first)/window)] += len(c.IDs)
	}
	full := int(last.Sub(first) / window) // windows before the last, partial one
	for w := range full {
		if n := counts[w]; n < rate/2*6/10 || n > rate/2*14/10 {
			t.Errorf("window %d (%v from the first commit): %d events, want about %d", w, time.Duration(w)*window, n, rate/2)
		}
	}
}

func TestRunSlowTransactionsMakeGaps(t *testing.T) {
	t.Parallel()
	pool := newPool(t, marten.LayoutDefault, 16)
	var rec recorder
	o := workload.Options{Schema: schema, Writers: 3, TxEvents: 5, SlowShare: 0.2, SlowFor: 50 * time.Millisecond, Rate: 2000}
	res, err := workload.Run(t.Context(), pool, o, 500, rec.commit)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Slow == 0 {
		t.Fatalf("no slow transaction: %+v", res)
	}
	// A gap: a slow transaction's seq_ids were committed after a higher
	// seq_id of another transaction.
	gaps := 0
	for _, slow := range rec.commits {
		if !slow.Slow {
			continue
		}
		for _, c := range rec.commits {
			if c.At.Before(slow.At) && slices.Max(c.SeqIDs) > slices.Min(slow.SeqIDs) {
				gaps++
				break
			}
		}
	}
	t.Logf("%d of %d slow transactions committed after a higher seq_id", gaps, res.Slow)
	if gaps == 0 {
		t.Errorf("no slow transaction committed after a higher seq_id")
	}
	// Commits of slow transactions took at least SlowFor after the seq_ids
	// were taken: the next plain commit of a higher seq_id came first.
	if gaps < res.Slow/2 {
		t.Errorf("only %d of %d slow transactions made a gap", gaps, res.Slow)
	}
}

func TestRunUntilCancelled(t *testing.T) {
	t.Parallel()
	pool := newPool(t, marten.LayoutDefault, 16)
	ctx, cancel := context.WithCancel(t.Context())
	var rec recorder
	o := workload.Options{Schema: schema, Writers: 2, SlowShare: 0.3, SlowFor: time.Hour, Rate: 1000}
	done := make(chan struct{})
	var res workload.Result
	var err error
	go func() {
		defer close(done)
		res, err = workload.Run(ctx, pool, o, 0, rec.commit)
	}()
	pgtest.Eventually(t, 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.commits) >= 10
	}, "10 commits")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Slow == 0 {
		t.Errorf("no slow transaction (parked ones commit when the context ends): %+v", res)
	}
	table := readEvents(t, pool)
	if len(table) != res.Committed {
		t.Errorf("mt_events holds %d events, Run committed %d", len(table), res.Committed)
	}
}

func TestOptionsRejected(t *testing.T) {
	t.Parallel()
	pool := newPool(t, marten.LayoutDefault, 2)
	tests := []struct {
		name string
		opts workload.Options
		want string
	}{
		{"no schema", workload.Options{}, "schema"},
		{"tenants on single tenancy", workload.Options{Schema: schema, Writers: 1, Tenants: 2}, "single tenancy"},
		{"fewer streams than writers", workload.Options{Schema: schema, Writers: 2, Streams: 1}, "stream of its own"},
		{"shares over 1", workload.Options{Schema: schema, Writers: 1, SlowShare: 0.6, RollbackShare: 0.5}, "more than 1"},
		{"negative rate", workload.Options{Schema: schema, Writers: 1, Rate: -1}, "negative"},
		{"pool too small", workload.Options{Schema: schema, Writers: 3}, "fewer than 3 writers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := workload.Run(t.Context(), pool, tt.opts, 10, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBigTransaction(t *testing.T) {
	t.Parallel()
	pool := newPool(t, marten.LayoutDefault, 4)
	const n = 20000
	// A slot to read the commit record's end from (test_decoding's COMMIT
	// row carries it).
	if _, err := pool.Exec(t.Context(), "select pg_create_logical_replication_slot('workload_big', 'test_decoding')"); err != nil {
		t.Fatalf("create slot: %v", err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "select pg_drop_replication_slot('workload_big')"); err != nil {
			t.Errorf("drop slot: %v", err)
		}
	})
	var before string
	if err := pool.QueryRow(t.Context(), "select pg_current_wal_insert_lsn()::text").Scan(&before); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := workload.BigTransaction(t.Context(), pool, workload.Options{Schema: schema, Streams: 7, PayloadBytes: 300}, n)
	if err != nil {
		t.Fatalf("BigTransaction: %v", err)
	}
	t.Logf("%d events committed in %v, LSN %v", n, c.At.Sub(start), c.LSN)
	var after string
	if err := pool.QueryRow(t.Context(), "select pg_current_wal_insert_lsn()::text").Scan(&after); err != nil {
		t.Fatal(err)
	}
	b, _ := cdc.ParseLSN(before)
	a, _ := cdc.ParseLSN(after)
	if c.LSN <= b || c.LSN > a {
		t.Errorf("LSN %v, want after %v (before the transaction) and at most %v (now)", c.LSN, b, a)
	}
	if len(c.IDs) != n || len(c.SeqIDs) != n || c.At.Before(start) {
		t.Fatalf("commit of %d ids, %d seq_ids at %v", len(c.IDs), len(c.SeqIDs), c.At)
	}

	var commits, inserts int
	var commitEnd string
	err = pool.QueryRow(t.Context(), `select count(*) filter (where data like 'COMMIT%'),
		count(*) filter (where data like 'table helpdesk.mt_events: INSERT:%'),
		coalesce(max(lsn) filter (where data like 'COMMIT%'), '0/0')::text
		from pg_logical_slot_peek_changes('workload_big', null, null)`).Scan(&commits, &inserts, &commitEnd)
	if err != nil {
		t.Fatalf("peek at the slot: %v", err)
	}
	end, _ := cdc.ParseLSN(commitEnd)
	t.Logf("decoded: %d commits, %d mt_events inserts, commit ends at %v", commits, inserts, end)
	if commits != 1 || inserts != n {
		t.Errorf("decoded %d commits with %d mt_events inserts, want 1 with %d", commits, inserts, n)
	}
	if end == 0 || end > c.LSN {
		t.Errorf("commit record ends at %v, want at or before the returned LSN %v", end, c.LSN)
	}

	var rows, xmins, streams int
	err = pool.QueryRow(t.Context(), "select count(*), count(distinct xmin::text), count(distinct stream_id) from "+
		pgx.Identifier{schema, "mt_events"}.Sanitize()).Scan(&rows, &xmins, &streams)
	if err != nil {
		t.Fatalf("count mt_events: %v", err)
	}
	if rows != n || xmins != 1 || streams != 7 {
		t.Errorf("mt_events: %d rows from %d transactions in %d streams, want %d rows from 1 transaction in 7 streams", rows, xmins, streams, n)
	}
	table := readEvents(t, pool)
	for i, id := range c.IDs {
		if r, ok := table[id]; !ok || r.seqID != c.SeqIDs[i] {
			t.Fatalf("event %s: in mt_events %v with seq_id %d, reported %d", id, ok, r.seqID, c.SeqIDs[i])
		}
	}
}

// BenchmarkRun measures the most events per second Run appends with no
// rate limit, as fast as the server takes them:
//
//	go test ./bench/workload -run '^$' -bench Run -benchtime 100000x
func BenchmarkRun(b *testing.B) {
	for _, c := range []struct{ writers, tx, payload int }{
		{4, 1, 512}, {4, 10, 512}, {4, 50, 512}, {4, 100, 512}, {2, 50, 512}, {8, 50, 512}, {4, 50, 0}, {4, 50, 4096},
	} {
		b.Run(fmt.Sprintf("writers%d/tx%d/payload%d", c.writers, c.tx, c.payload), func(b *testing.B) {
			pool := newPool(b, marten.LayoutDefault, int32(c.writers))
			o := workload.Options{Schema: schema, Writers: c.writers, TxEvents: c.tx, PayloadBytes: c.payload}
			b.ResetTimer()
			res, err := workload.Run(b.Context(), pool, o, b.N, nil)
			if err != nil {
				b.Fatalf("Run: %v", err)
			}
			b.ReportMetric(float64(res.Committed)/res.Elapsed.Seconds(), "events/s")
		})
	}
}
