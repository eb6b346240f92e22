package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/status"
)

// backfillConfig writes a configuration with source.start set to start and
// three sinks, stdout (out), a Postgres events table (archive) and
// Elasticsearch events mode (search), plus extra sinks.
func backfillConfig(t *testing.T, dir, start string, es *esfake.Server, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`pipelines:
  - name: helpdesk
    source:
      dsn: ${CDC_TEST_DSN}
      schema: helpdesk
      start: %s
    standby_retry: 100ms
    status_interval: 200ms
    sinks:
      - name: out
        kind: stdout
        batch: {max_events: 50, max_wait: 5ms}
      - name: archive
        kind: postgres
        dsn: ${CDC_TEST_DSN}
        mode: events
        table: archive.events
      - name: search
        kind: elastic
        addresses: [%s]
        index: events
        batch: {max_events: 200, max_wait: 5ms}
%s`, start, es.URL(), extra)
	path := filepath.Join(dir, "cdc.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// backfillState reads the state of the helpdesk pipeline's backfill of sink.
func backfillState(t *testing.T, pool *pgxpool.Pool, sink string) string {
	var state string
	_ = pool.QueryRow(t.Context(), `SELECT state FROM helpdesk.cdc_backfills WHERE pipeline = 'helpdesk' AND sink = $1`, sink).Scan(&state)
	return state
}

// waitAllSinks waits until the three sinks of backfillConfig have every
// committed event.
func waitAllSinks(t *testing.T, pool *pgxpool.Pool, es *esfake.Server, out string, committed map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		_ = pool.QueryRow(t.Context(), `SELECT count(*) FROM archive.events`).Scan(&n)
		if n >= len(committed) && len(es.Docs("events")) >= len(committed) && allDelivered(t, committed, out) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Say what is missing where.
	lsn := map[string]string{}
	seq := map[string]int64{}
	got := map[string]bool{}
	for _, d := range readOutput(t, out) {
		got[d.ID] = true
	}
	rows, _ := pool.Query(t.Context(), `SELECT id::text, seq_id FROM helpdesk.mt_events`)
	for rows.Next() {
		var id string
		var s int64
		_ = rows.Scan(&id, &s)
		seq[id] = s
	}
	rows.Close()
	archived := map[string]bool{}
	rows, _ = pool.Query(t.Context(), `SELECT id::text, lsn::text FROM archive.events`)
	for rows.Next() {
		var id, l string
		_ = rows.Scan(&id, &l)
		archived[id] = true
		lsn[id] = l
	}
	rows.Close()
	docs := es.Docs("events")
	for id := range committed {
		if !got[id] || !archived[id] || docs[id].Version == 0 {
			var env struct {
				LSN string `json:"lsn"`
			}
			_ = json.Unmarshal(docs[id].Source, &env)
			t.Logf("event %s seq %d lsn %s: stdout %v archive %v search %v", id, seq[id], env.LSN, got[id], archived[id], docs[id].Version != 0)
		}
	}
	t.Fatal("not every sink has every committed event")
}

// checkExactlyOnce fails unless the sinks hold every committed event once
// and nothing else, each stream in version order in the stdout sink.
func checkExactlyOnce(t *testing.T, pool *pgxpool.Pool, es *esfake.Server, out string, committed, rolledBack map[string]bool) {
	t.Helper()
	lines := readOutput(t, out)
	seen := map[string]int{}
	version := map[string]int64{}
	for _, d := range lines {
		seen[d.ID]++
		if rolledBack[d.ID] {
			t.Fatalf("stdout: rolled-back event %s delivered", d.ID)
		}
		if d.Version <= version[d.StreamID] {
			t.Fatalf("stdout: stream %s version %d after version %d", d.StreamID, d.Version, version[d.StreamID])
		}
		version[d.StreamID] = d.Version
	}
	for id := range committed {
		if seen[id] != 1 {
			t.Fatalf("stdout: event %s delivered %d times", id, seen[id])
		}
	}
	if len(seen) != len(committed) {
		t.Fatalf("stdout: %d distinct events, %d committed", len(seen), len(committed))
	}
	var n, distinct int
	mustDo(t, "archive", pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT id) FROM archive.events`).Scan(&n, &distinct))
	if n != len(committed) || distinct != n {
		t.Fatalf("archive: %d rows (%d distinct), want %d", n, distinct, len(committed))
	}
	docs := es.Docs("events")
	if len(docs) != len(committed) {
		t.Fatalf("search: %d documents, want %d", len(docs), len(committed))
	}
	for id := range committed {
		if _, ok := docs[id]; !ok {
			t.Fatalf("search: event %s missing", id)
		}
	}
}

// TestStartBeginning: a pipeline with source.start: beginning on a store
// with history, while a gap-making workload appends (transactions that take
// their seq_ids before the backfill's snapshot and commit after it, and
// rollbacks): every sink gets every committed event exactly once, each
// stream in order, none rolled back, and goes on live.
func TestStartBeginning(t *testing.T) {
	dsn, pool := martenStore(t)
	es := esfake.New()
	defer es.Close()
	dir := t.TempDir()

	history := startWriters(t, pool, 2, 0)
	pgtest.Eventually(t, 30*time.Second, func() bool { c, _ := history.snapshot(); return len(c) >= 300 }, "history")
	committed, rolledBack := history.finish(t)

	cfg := backfillConfig(t, dir, "beginning", es, "")
	live := startWriters(t, pool, 2, 2*time.Millisecond)
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)
	t.Cleanup(func() {
		if t.Failed() {
			rows, _ := pool.Query(context.Background(), `SELECT sink, state, done_events, total_events, next_ordinal, cursor, error, segments::text FROM helpdesk.cdc_backfills`)
			for rows.Next() {
				var sink, state, errMsg, segs string
				var cursor *string
				var done, total, next int64
				_ = rows.Scan(&sink, &state, &done, &total, &next, &cursor, &errMsg, &segs)
				t.Logf("backfill %s: %s done %d/%d next %d cursor %v error %q segments %s", sink, state, done, total, next, cursor, errMsg, segs)
			}
			rows.Close()
			rows, _ = pool.Query(context.Background(), `SELECT sink, lsn::text, tx_index, flush_lsn::text, state, error FROM helpdesk.cdc_checkpoints`)
			for rows.Next() {
				var sink, lsn, flush, state, errMsg string
				var idx int64
				_ = rows.Scan(&sink, &lsn, &idx, &flush, &state, &errMsg)
				t.Logf("checkpoint %s: %s#%d flush %s %s %q", sink, lsn, idx, flush, state, errMsg)
			}
			rows.Close()
		}
	})
	pgtest.Eventually(t, 60*time.Second, func() bool {
		return backfillState(t, pool, "out") == "done" && backfillState(t, pool, "archive") == "done" && backfillState(t, pool, "search") == "done"
	}, "every backfill done")
	more, rb := live.finish(t)
	for id := range more {
		committed[id] = true
	}
	for id := range rb {
		rolledBack[id] = true
	}
	waitAllSinks(t, pool, es, run.out, committed)
	run.stopOK()
	checkExactlyOnce(t, pool, es, run.out, committed, rolledBack)
	if !strings.Contains(run.stderr(), "backfill done") {
		t.Errorf("no 'backfill done' log line")
	}
}

// slowWriters keep a transaction open most of the time: each takes its
// seq_ids, waits a few hundred milliseconds and commits, so that some take
// their seq_ids before a backfill's snapshot and commit after it.
func startSlowWriters(t *testing.T, store *pgxpool.Pool, n int) *writers {
	// A pool of their own: the store's default pool (4 connections on
	// 2 cores) would let only some of them hold a transaction at a time.
	pc := store.Config().Copy()
	pc.MaxConns = int32(n)
	pool, err := pgxpool.NewWithConfig(t.Context(), pc)
	mustDo(t, "slow writers' pool", err)
	t.Cleanup(pool.Close)
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{committed: map[string]bool{}, rolledBack: map[string]bool{}, stop: cancel, errs: make(chan error, n)}
	st := marten.Store{Layout: marten.LayoutDefault, Schema: "helpdesk"}
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				tx, err := pool.Begin(ctx)
				if err != nil {
					if ctx.Err() == nil {
						w.errs <- err
					}
					return
				}
				stream := st.NewStreamID()
				events := marten.SampleEvents(stream, "incident_logged", "incident_categorised")
				if _, _, err := marten.QuickAppend(ctx, tx, "helpdesk", stream, "incident", marten.DefaultTenantID, events); err != nil {
					_ = tx.Rollback(context.Background())
					if ctx.Err() == nil {
						w.errs <- err
					}
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(150+40*i) * time.Millisecond):
				}
				if err := tx.Commit(context.Background()); err != nil {
					w.errs <- err
					return
				}
				w.mu.Lock()
				for _, id := range marten.IDs(events) {
					w.committed[id] = true
				}
				w.mu.Unlock()
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

// crossings counts the events of the archive table the live stream
// delivered (lsn at or after the hand-off) whose seq_id is below the largest
// one the backfill delivered: transactions that took their seq_ids before
// the snapshot and committed after it.
func crossings(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	mustDo(t, "crossings", pool.QueryRow(t.Context(), `WITH h AS (SELECT (segments->0->>'start')::pg_lsn AS lsn FROM helpdesk.cdc_backfills WHERE sink = 'archive'),
b AS (SELECT max(seq_id) AS seq FROM archive.events, h WHERE archive.events.lsn = h.lsn - 1)
SELECT count(*) FROM archive.events e, h, b WHERE e.lsn >= h.lsn AND e.seq_id < b.seq`).Scan(&n))
	return n
}

// TestReplayRunning: cdc replay of a Postgres and of an Elasticsearch sink
// against a running instance, while appends go on (some holding their
// seq_ids across the snapshot): the instance fills the sink with the
// history (which it never had: it started with start: now), hands it back
// to the live stream, and the command shows it and exits 0; the sink then
// holds every committed event once. The other sinks stream on meanwhile,
// and the metrics count the replayed events.
func TestReplayRunning(t *testing.T) {
	for _, sink := range []string{"archive", "search"} {
		t.Run(sink, func(t *testing.T) { testReplayRunning(t, sink) })
	}
}

func testReplayRunning(t *testing.T, sink string) {
	dsn, pool := martenStore(t)
	es := esfake.New()
	defer es.Close()
	dir := t.TempDir()
	env := []string{"CDC_TEST_DSN=" + dsn}

	history := startWriters(t, pool, 2, 0)
	pgtest.Eventually(t, 30*time.Second, func() bool { c, _ := history.snapshot(); return len(c) >= 300 }, "history")
	old, _ := history.finish(t)

	cfg := backfillConfig(t, dir, "now", es, "")
	run := startCDC(t, dir, "run", env, "run", "--config", cfg, "--metrics-addr", "127.0.0.1:0", "--log-format", "json")
	pgtest.Eventually(t, 15*time.Second, func() bool { return holderPID(t, pool) == run.pid() || run.wait0() }, "run streams")
	live := startWriters(t, pool, 2, 2*time.Millisecond)
	slow := startSlowWriters(t, pool, 6)
	pgtest.Eventually(t, 30*time.Second, func() bool { return countLines(run.out) >= 50 }, "live events flow")

	before := countLines(run.out)
	replay := startCDC(t, dir, "replay", env, "replay", "--config", cfg, "--sink", sink, "--log-format", "json")
	if code := replay.wait(2 * time.Minute); code != 0 {
		t.Fatalf("cdc replay exited %d:\n%s", code, replay.stderr())
	}
	if !strings.Contains(replay.stderr(), "handed to the running instance") || !strings.Contains(replay.stderr(), "done,") {
		t.Errorf("cdc replay's output:\n%s", replay.stderr())
	}
	if countLines(run.out) <= before {
		t.Errorf("the stdout sink delivered nothing during the replay")
	}
	committed, _ := live.finish(t)
	slowCommitted, _ := slow.finish(t)
	for id := range slowCommitted {
		committed[id] = true
	}
	all := map[string]bool{}
	for id := range committed {
		all[id] = true
	}
	for id := range old {
		all[id] = true
	}
	held := func() map[string]int {
		if sink == "archive" {
			return archiveIDs(t, pool)
		}
		out := map[string]int{}
		for id := range es.Docs("events") {
			out[id]++
		}
		return out
	}
	pgtest.Eventually(t, 60*time.Second, func() bool {
		return len(held()) >= len(all) && allDelivered(t, committed, run.out)
	}, "the replayed sink and stdout caught up")

	// The replayed sink: the history and everything live, once each.
	checkOnce(t, sink, held(), all)
	if sink == "archive" {
		if n := crossings(t, pool); n == 0 {
			t.Errorf("no transaction took its seq_ids before the snapshot and committed after it: the test did not exercise the hand-off (%d slow transactions committed)", len(slowCommitted)/2)
		} else {
			t.Logf("%d events took their seq_ids before the snapshot and committed after it", n)
		}
	}
	// The metrics counted the replayed events: the history and what was
	// committed before the hand-off.
	addr := metricsAddr(t, run)
	var done int64
	mustDo(t, "backfill", pool.QueryRow(t.Context(), `SELECT done_events FROM helpdesk.cdc_backfills WHERE sink = $1`, sink).Scan(&done))
	resp, err := http.Get("http://" + addr + "/metrics")
	mustDo(t, "metrics", err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`cdc_replay_events_total{pipeline="helpdesk",sink=%q} %d`, sink, done)
	if done < int64(len(old)) || !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s (history %d)", want, len(old))
	}
	run.stopOK()

	// The other sinks: only what was appended after cdc started, once each.
	checkOnce(t, "stdout", deliveries(t, run.out), committed)
}

// checkOnce fails unless got holds every event of want once, and nothing
// else.
func checkOnce(t *testing.T, what string, got map[string]int, want map[string]bool) {
	t.Helper()
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("%s: event %s held %d times", what, id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
}

// deliveries counts the lines of each event id in stdout sink outputs.
func deliveries(t *testing.T, files ...string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, f := range files {
		for _, d := range readOutput(t, f) {
			seen[d.ID]++
		}
	}
	return seen
}

// archiveIDs returns the event ids in the archive table.
func archiveIDs(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	out := map[string]int{}
	rows, err := pool.Query(t.Context(), `SELECT id::text FROM archive.events`)
	mustDo(t, "archive", err)
	defer rows.Close()
	for rows.Next() {
		var id string
		mustDo(t, "scan", rows.Scan(&id))
		out[id]++
	}
	mustDo(t, "archive", rows.Err())
	return out
}

// TestBackfillCrash: SIGKILL in the middle of a backfill, then a restart:
// the backfill resumes from what each sink made durable, in a second
// snapshot; nothing is lost, the Postgres sink applies every event once,
// and the stdout sink repeats at most the pages it had not made durable.
func TestBackfillCrash(t *testing.T) {
	dsn, pool := martenStore(t)
	es := esfake.New()
	defer es.Close()
	dir := t.TempDir()
	env := []string{"CDC_TEST_DSN=" + dsn}
	history := startWriters(t, pool, 2, 0)
	pgtest.Eventually(t, 60*time.Second, func() bool { c, _ := history.snapshot(); return len(c) >= 4000 }, "history")
	committed, _ := history.finish(t)

	const page, inFlight = 50, 1
	cfg := backfillConfig(t, dir, "beginning", es, "")
	b, err := os.ReadFile(cfg)
	mustDo(t, "config", err)
	mustDo(t, "config", os.WriteFile(cfg, []byte(strings.Replace(string(b), "    status_interval: 200ms\n",
		fmt.Sprintf("    status_interval: 200ms\n    backfill: {page_size: %d, pages_in_flight: %d}\n", page, inFlight), 1)), 0o600))

	first := startCDC(t, dir, "first", env, "run", "--config", cfg)
	pgtest.Eventually(t, 60*time.Second, func() bool {
		var n int
		_ = pool.QueryRow(t.Context(), `SELECT count(*) FROM archive.events`).Scan(&n)
		return n >= 500
	}, "the backfill is under way")
	first.kill()
	killedAt := len(archiveIDs(t, pool))
	// cdc status shows the backfill in progress, from the tables.
	_, out, _ := runInProcess(t, map[string]string{"CDC_TEST_DSN": dsn}, "status", "--config", cfg, "--json")
	var st struct{ Pipelines []status.Pipeline }
	mustDo(t, "status --json", json.Unmarshal([]byte(out), &st))
	for _, sk := range st.Pipelines[0].Sinks {
		if sk.Name != "archive" {
			continue
		}
		if b := sk.Backfill; b == nil || b.State != "running" || b.From != "beginning" || b.Total != int64(len(committed)) || b.Segments != 1 || sk.State != cdc.SinkBackfilling {
			t.Errorf("status of the archive sink while it backfills: %+v %+v", sk, sk.Backfill)
		}
	}
	_, out, _ = runInProcess(t, map[string]string{"CDC_TEST_DSN": dsn}, "status", "--config", cfg)
	if !strings.Contains(out, "sink archive (postgres): backfilling") || !strings.Contains(out, "backfill from beginning: ") {
		t.Errorf("status while backfilling:\n%s", out)
	}
	if killedAt >= len(committed) {
		t.Fatalf("the backfill was done (%d events) before the kill", killedAt)
	}
	second := startCDC(t, dir, "second", env, "run", "--config", cfg)
	pgtest.Eventually(t, 60*time.Second, func() bool {
		return backfillState(t, pool, "out") == "done" && backfillState(t, pool, "archive") == "done" && backfillState(t, pool, "search") == "done"
	}, "the backfills resume and finish")
	waitAllSinks(t, pool, es, second.out, map[string]bool{})
	pgtest.Eventually(t, 60*time.Second, func() bool {
		return len(archiveIDs(t, pool)) >= len(committed) && len(es.Docs("events")) >= len(committed)
	}, "every event archived and indexed")
	second.stopOK()

	checkOnce(t, "archive", archiveIDs(t, pool), committed)
	seen := deliveries(t, first.out, second.out)
	dups := 0
	for id := range committed {
		switch n := seen[id]; {
		case n == 0:
			t.Fatalf("stdout: event %s missing", id)
		case n > 1:
			dups += n - 1
		}
	}
	// What the stdout sink repeats is what it had not made durable: at
	// most the pages in flight, and the one being read.
	if dups > page*(inFlight+1) {
		t.Fatalf("stdout: %d events delivered twice: more than the pages in flight", dups)
	}
	var segments int
	mustDo(t, "segments", pool.QueryRow(t.Context(), `SELECT jsonb_array_length(segments) FROM helpdesk.cdc_backfills WHERE sink = 'archive'`).Scan(&segments))
	if segments != 2 {
		t.Errorf("archive's backfill read %d snapshots, want 2 (before and after the kill)", segments)
	}
	t.Logf("killed with %d of %d events archived; stdout repeated %d", killedAt, len(committed), dups)
}

// TestReplayWithoutInstance: with no cdc run, cdc replay runs the pipeline
// itself until the sink is back on the live stream, then exits 0; it
// narrows to --from seq:N, and the sinks get what was appended while
// nothing ran, once.
func TestReplayWithoutInstance(t *testing.T) {
	dsn, pool := martenStore(t)
	es := esfake.New()
	defer es.Close()
	dir := t.TempDir()
	env := []string{"CDC_TEST_DSN=" + dsn}

	cfg := backfillConfig(t, dir, "now", es, "")
	run := startStreaming(t, dir, "run", env, cfg, pool)
	w := startWriters(t, pool, 2, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { c, _ := w.snapshot(); return len(c) >= 300 }, "appends")
	live, _ := w.finish(t)
	waitAllSinks(t, pool, es, run.out, live)
	run.stopOK()

	// Appended while nothing runs: the slot keeps them.
	w = startWriters(t, pool, 2, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { c, _ := w.snapshot(); return len(c) >= 200 }, "appends while stopped")
	pending, _ := w.finish(t)

	var from int64
	mustDo(t, "seq", pool.QueryRow(t.Context(), `SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY seq_id) FROM helpdesk.mt_events`).Scan(&from))
	replay := startCDC(t, dir, "replay", env, "replay", "--config", cfg, "--sink", "archive", "--from", fmt.Sprintf("seq:%d", from))
	if code := replay.wait(2 * time.Minute); code != 0 {
		t.Fatalf("cdc replay exited %d:\n%s", code, replay.stderr())
	}
	if !strings.Contains(replay.stderr(), "no instance runs pipeline helpdesk") || !strings.Contains(replay.stderr(), "done,") {
		t.Errorf("cdc replay's output:\n%s", replay.stderr())
	}
	all := map[string]bool{}
	for id := range live {
		all[id] = true
	}
	for id := range pending {
		all[id] = true
	}
	checkOnce(t, "archive", archiveIDs(t, pool), all)
	// The replay delivered the events from seq_id N again: stdout got the
	// pending ones (the command ran the pipeline), once.
	seen := deliveries(t, replay.out)
	for id := range pending {
		if seen[id] > 1 {
			t.Fatalf("stdout: pending event %s delivered %d times", id, seen[id])
		}
	}
	// A cdc run afterwards goes on from there: no backfill again.
	again := startStreaming(t, dir, "again", env, cfg, pool)
	again.stopOK()
	if strings.Contains(again.stderr(), "backfill: reading") {
		t.Errorf("the next cdc run backfilled again:\n%s", again.stderr())
	}
}

// TestReplayTenantPartitioned: under Marten 9 per-tenant partitioning,
// where every tenant has its own seq_ids, cdc replay --tenant T --from
// seq:N delivers exactly tenant T's events from its seq_id N (not another
// tenant's with the same seq_ids), while the sink keeps the live stream.
func TestReplayTenantPartitioned(t *testing.T) {
	dsn := pgtest.NewMartenDatabaseLayout(t, pg, marten.LayoutConjoinedPartitioned, "helpdesk")
	pool := storePool(t, dsn)
	st := marten.Store{Layout: marten.LayoutConjoinedPartitioned, Schema: "helpdesk"}
	for _, tenant := range []string{"acme", "globex"} {
		mustDo(t, "tenant", st.AddTenant(t.Context(), pool, tenant))
	}
	appendSome := func(n int) {
		for i := range n {
			tenant := []string{"acme", "globex"}[i%2]
			stream := st.NewStreamID()
			_, _, err := st.QuickAppend(t.Context(), pool, stream, "incident", tenant, marten.SampleEvents(stream, "incident_logged", "incident_closed"))
			mustDo(t, "append", err)
		}
	}
	appendSome(40) // history: seq_ids 1..40 in each tenant
	es := esfake.New()
	defer es.Close()
	dir := t.TempDir()
	env := []string{"CDC_TEST_DSN=" + dsn}
	cfg := backfillConfig(t, dir, "now", es, "")
	run := startStreaming(t, dir, "run", env, cfg, pool)
	appendSome(10) // live
	replay := startCDC(t, dir, "replay", env, "replay", "--config", cfg, "--sink", "archive", "--from", "seq:11", "--tenant", "acme")
	if code := replay.wait(2 * time.Minute); code != 0 {
		t.Fatalf("cdc replay exited %d:\n%s", code, replay.stderr())
	}
	appendSome(10) // live, after the replay

	want := map[string]bool{}
	rows, err := pool.Query(t.Context(), `SELECT id::text, tenant_id, seq_id, seq_id > (SELECT max(seq_id) FROM helpdesk.mt_events e2 WHERE e2.tenant_id = e.tenant_id) - 0
FROM helpdesk.mt_events e`)
	mustDo(t, "events", err)
	type ev struct {
		tenant string
		seq    int64
	}
	events := map[string]ev{}
	for rows.Next() {
		var id, tenant string
		var seq int64
		var ignored bool
		mustDo(t, "scan", rows.Scan(&id, &tenant, &seq, &ignored))
		events[id] = ev{tenant, seq}
	}
	rows.Close()
	// Live: the events appended after cdc started (seq_ids above the 40
	// events of history per tenant); replayed: acme's from seq_id 11.
	for id, e := range events {
		if e.seq > 40 || e.tenant == "acme" && e.seq >= 11 {
			want[id] = true
		}
	}
	pgtest.Eventually(t, 60*time.Second, func() bool { return len(archiveIDs(t, pool)) >= len(want) }, "archive caught up")
	run.stopOK()
	got := archiveIDs(t, pool)
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("archive: event %s (tenant %s, seq %d) %d times", id, events[id].tenant, events[id].seq, got[id])
		}
	}
	for id := range got {
		if !want[id] {
			t.Fatalf("archive: event %s (tenant %s, seq %d) delivered, outside the replay and the live stream", id, events[id].tenant, events[id].seq)
		}
	}
}

// TestLostSlot: a slot whose WAL PostgreSQL removed (max_slot_wal_keep_size)
// is said to be lost in one line, with the recovery, by cdc run (which
// stops instead of retrying in a loop), and by cdc status.
func TestLostSlot(t *testing.T) {
	cluster, err := pgcluster.Start(t.Context(), pgcluster.Options{Settings: map[string]string{"max_slot_wal_keep_size": "1MB"}})
	mustDo(t, "start a cluster", err)
	t.Cleanup(func() { _ = cluster.Stop() })
	dsn := pgtest.NewMartenDatabase(t, cluster, "helpdesk")
	pool := storePool(t, dsn)
	dir := t.TempDir()
	env := []string{"CDC_TEST_DSN=" + dsn}
	cfg := writeConfig(t, dir, "")
	run := startStreaming(t, dir, "run", env, cfg, pool)
	run.stopOK()

	// Write more WAL than the slot may keep while nothing reads it.
	mustDo(t, "junk", func() error {
		_, err := pool.Exec(t.Context(), `CREATE TABLE junk (x text)`)
		return err
	}())
	pgtest.Eventually(t, 60*time.Second, func() bool {
		for _, sql := range []string{`INSERT INTO junk SELECT repeat('x', 1000) FROM generate_series(1, 5000)`, `SELECT pg_switch_wal()`, `CHECKPOINT`} {
			if _, err := pool.Exec(t.Context(), sql); err != nil {
				t.Fatal(err)
			}
		}
		var status string
		_ = pool.QueryRow(t.Context(), `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'cdc_helpdesk'`).Scan(&status)
		return status == "lost"
	}, "the slot is lost")

	again := startCDC(t, dir, "again", env, "run", "--config", cfg)
	if code := again.wait(time.Minute); code != 1 {
		t.Fatalf("cdc run on a lost slot exited %d, want 1:\n%s", code, again.stderr())
	}
	for _, want := range []string{"cdc_helpdesk is lost", "cdc teardown", "source.start: beginning", "cdc replay"} {
		if !strings.Contains(again.stderr(), want) {
			t.Errorf("cdc run's error lacks %q:\n%s", want, again.stderr())
		}
	}
	code, _, errOut := runInProcess(t, map[string]string{"CDC_TEST_DSN": dsn}, "validate", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "cdc_helpdesk is lost") {
		t.Errorf("validate on a lost slot: exit %d\n%s", code, errOut)
	}
	code, out, errOut := runInProcess(t, map[string]string{"CDC_TEST_DSN": dsn}, "status", "--config", cfg)
	if !strings.Contains(out, "LOST") || !strings.Contains(out, "unknown events") {
		t.Errorf("status (exit %d):\n%s%s", code, out, errOut)
	}
}

// TestBackfillLayouts: source.start: beginning under archived-stream
// partitioning (archiving moves rows: in the table each event is there
// once, the live stream sees copies that are not events) and string stream
// ids in a named schema, with every write path before and while cdc runs:
// the sinks hold every event of mt_events once.
func TestBackfillLayouts(t *testing.T) {
	for _, layout := range []marten.Layout{marten.LayoutArchivedPartitioned, marten.LayoutStringIDs} {
		t.Run(layout.String(), func(t *testing.T) {
			dsn := pgtest.NewMartenDatabaseLayout(t, pg, layout, "helpdesk")
			pool := storePool(t, dsn)
			st := marten.Store{Layout: layout, Schema: "helpdesk"}
			history, _, err := st.Exercise(t.Context(), pool, marten.DefaultTenantID, 3, 20)
			mustDo(t, "history", err)
			var archived []string
			for range 2 {
				id := st.NewStreamID()
				_, _, err = st.QuickAppend(t.Context(), pool, id, "incident", marten.DefaultTenantID, marten.SampleEvents(id, "incident_logged", "incident_closed"))
				mustDo(t, "append", err)
				archived = append(archived, id)
			}
			mustDo(t, "archive", st.ArchiveStream(t.Context(), pool, archived[0], marten.DefaultTenantID))

			es := esfake.New()
			defer es.Close()
			dir := t.TempDir()
			env := []string{"CDC_TEST_DSN=" + dsn}
			cfg := backfillConfig(t, dir, "beginning", es, "")
			run := startStreaming(t, dir, "run", env, cfg, pool)
			live, _, err := st.Exercise(t.Context(), pool, marten.DefaultTenantID, 2, 10)
			mustDo(t, "live", err)
			// Archiving while cdc runs: the live stream sees the copies.
			mustDo(t, "archive", st.ArchiveStream(t.Context(), pool, archived[1], marten.DefaultTenantID))

			want := map[string]bool{}
			rows, err := pool.Query(t.Context(), `SELECT id::text FROM helpdesk.mt_events WHERE type <> 'tombstone'`)
			mustDo(t, "events", err)
			for rows.Next() {
				var id string
				mustDo(t, "scan", rows.Scan(&id))
				want[id] = true
			}
			rows.Close()
			if len(want) < len(history)+len(live) {
				t.Fatalf("mt_events has %d events, exercised %d", len(want), len(history)+len(live))
			}
			pgtest.Eventually(t, 60*time.Second, func() bool {
				return len(archiveIDs(t, pool)) >= len(want) && len(es.Docs("events")) >= len(want) && allDelivered(t, want, run.out)
			}, "every sink holds every event")
			run.stopOK()
			checkOnce(t, "archive", archiveIDs(t, pool), want)
			checkOnce(t, "stdout", deliveries(t, run.out), want)
		})
	}
}
