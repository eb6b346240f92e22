package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/netproxy"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/wait"
)

// startPair starts two `cdc run` processes on the pipeline of cfg, each with
// an admin listener, and returns the one streaming and the standby with
// their admin addresses.
func startPair(t *testing.T, dir string, env []string, cfg string, pool *pgxpool.Pool) (active, standby *child, activeAddr, standbyAddr string) {
	t.Helper()
	args := []string{"run", "--config", cfg, "--admin-addr", "127.0.0.1:0", "--wait-poll", "20ms", "--log-format", "json"}
	active, standby = pairRoles(t, pool, startCDC(t, dir, "a", env, args...), startCDC(t, dir, "b", env, args...), 20*time.Second)
	return active, standby, "http://" + metricsAddr(t, active), "http://" + metricsAddr(t, standby)
}

// TestReadYourWrites: concurrent writers each append, read
// pg_current_wal_lsn() on their connection, wait through /v1/wait (of the
// instance streaming, or of the standby, which answers from the checkpoint
// table and the slot) and then read their own write from the Postgres read
// model: it is never stale.
func TestReadYourWrites(t *testing.T) {
	dsn, pool := martenStore(t)
	targetDSN, target := readModelTarget(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, readModelSink(t, ""))
	env := []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN}
	_, _, activeURL, standbyURL := startPair(t, dir, env, cfg, pool)

	const writers, rounds = 8, 250 // 2,000 waits
	var (
		mu        sync.Mutex
		latencies = map[string][]time.Duration{}
		froms     = map[string]int{}
	)
	ctx := t.Context()
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				conn, err := pool.Acquire(ctx)
				if err != nil {
					return err
				}
				defer conn.Release()
				hd := marten.NewHelpdesk(mrand.New(mrand.NewPCG(uint64(i), 99)))
				clients := map[string]*wait.Client{
					"active":  {BaseURL: activeURL, Pipeline: "helpdesk", Sink: "readmodel"},
					"standby": {BaseURL: standbyURL, Pipeline: "helpdesk", Sink: "readmodel"},
				}
				for r := range rounds {
					stream, events := hd.Next()
					tx, err := conn.Begin(ctx)
					if err != nil {
						return err
					}
					version, _, err := marten.QuickAppend(ctx, tx, "helpdesk", stream, "incident", marten.DefaultTenantID, events)
					if err != nil {
						return err
					}
					if err := tx.Commit(ctx); err != nil {
						return err
					}
					lsn, err := wait.CommitLSN(ctx, conn)
					if err != nil {
						return err
					}
					via := "active"
					if (i+r)%2 == 1 {
						via = "standby"
					}
					start := time.Now()
					wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					st, err := clients[via].Wait(wctx, lsn)
					cancel()
					if err != nil {
						return fmt.Errorf("writer %d round %d: wait for %s through the %s instance: %w", i, r, lsn, via, err)
					}
					took := time.Since(start)
					var got int64
					if err := target.QueryRow(ctx, `SELECT version FROM incident_details WHERE id = $1::uuid`, stream).Scan(&got); err != nil {
						return fmt.Errorf("writer %d round %d: read model of stream %s after the wait answered %+v: %w", i, r, stream, st, err)
					}
					if got < version {
						return fmt.Errorf("writer %d round %d: stale read: stream %s at version %d in the read model, %d appended (wait answered %+v)", i, r, stream, got, version, st)
					}
					mu.Lock()
					latencies[via] = append(latencies[via], took)
					froms[via+" from "+st.From]++
					mu.Unlock()
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for via, l := range latencies {
		slices.Sort(l)
		t.Logf("%d waits through the %s instance: median %v, p99 %v, max %v", len(l), via, l[len(l)/2], l[len(l)*99/100], l[len(l)-1])
	}
	t.Logf("answered: %v", froms)
	if froms["standby from checkpoint_table"] == 0 || froms["active from local"] == 0 {
		t.Fatalf("answers: %v; want the streaming instance to answer locally and the standby from the checkpoint table", froms)
	}
}

// TestWaitSinkTrouble: a wait on a stopped sink answers 503 at once; on a
// failing one 503 with its error when the timeout ends; on a stalled one
// (its write blocked, not failing) 408 within the timeout, then 200 once
// it moves; through the streaming instance and through the standby alike.
func TestWaitSinkTrouble(t *testing.T) {
	dsn, pool := martenStore(t)
	targetDSN, target := readModelTarget(t)
	_, err := target.Exec(t.Context(), `CREATE TABLE notes (id text PRIMARY KEY, body text NOT NULL CHECK (body <> 'poison'));
CREATE TABLE slow_notes (id text PRIMARY KEY);
CREATE TABLE flaky_notes (id text PRIMARY KEY)`)
	mustDo(t, "tables", err)
	proxy, err := netproxy.New(hostPort(t, targetDSN))
	mustDo(t, "proxy", err)
	t.Cleanup(func() { _ = proxy.Close() })
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `      - name: stops
        kind: postgres
        dsn: ${CDC_TEST_TARGET}
        projections:
          - name: notes
            on: [note_added]
            sql: insert into notes (id, body) values ($id, $data->>'Body') on conflict do nothing
      - name: slow
        kind: postgres
        dsn: ${CDC_TEST_TARGET}
        projections:
          - name: slow
            on: [note_added]
            sql: insert into slow_notes (id) values ($id) on conflict do nothing
      - name: flaky
        kind: postgres
        dsn: ${CDC_TEST_FLAKY}
        projections:
          - name: flaky
            on: [note_added]
            sql: insert into flaky_notes (id) values ($id) on conflict do nothing
`)
	flakyDSN := withHost(t, targetDSN, proxy.Addr())
	env := []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN, "CDC_TEST_FLAKY=" + flakyDSN}
	_, _, activeURL, standbyURL := startPair(t, dir, env, cfg, pool)
	ctx := t.Context()
	currentLSN := func() cdc.LSN {
		var s string
		mustDo(t, "pg_current_wal_lsn", pool.QueryRow(ctx, wait.CommitLSNQuery).Scan(&s))
		l, err := cdc.ParseLSN(s)
		mustDo(t, "parse", err)
		return l
	}
	ask := func(base, sink string, lsn cdc.LSN, timeout string) (int, string, time.Duration) {
		start := time.Now()
		code, body := httpGet(t, base+"/v1/wait?pipeline=helpdesk&sink="+sink+"&lsn="+lsn.String()+"&timeout="+timeout)
		return code, body, time.Since(start)
	}

	// Every sink healthy: all answer 200.
	appendNotes(t, pool, []string{"first"})
	first := currentLSN()
	for _, sink := range []string{"stops", "slow", "flaky"} {
		for _, base := range []string{activeURL, standbyURL} {
			if code, body, _ := ask(base, sink, first, "20s"); code != 200 {
				t.Fatalf("healthy sink %s via %s: %d %s", sink, base, code, body)
			}
		}
	}

	// Stalled: a lock held on slow_notes blocks the sink's write.
	lock, err := target.Begin(ctx)
	mustDo(t, "begin", err)
	defer func() { _ = lock.Rollback(context.Background()) }()
	_, err = lock.Exec(ctx, `LOCK TABLE slow_notes IN ACCESS EXCLUSIVE MODE`)
	mustDo(t, "lock", err)
	// Failing: the flaky sink's target refuses connections.
	mustDo(t, "refuse", proxy.Refuse(true))
	proxy.Reset()
	// Stopped: the poison note breaks the stops sink's check constraint.
	appendNotes(t, pool, []string{"poison"})
	second := currentLSN()

	for _, base := range []string{activeURL, standbyURL} {
		code, body, took := ask(base, "stops", second, "20s")
		if code != 503 || !strings.Contains(body, `"state":"stopped"`) || !strings.Contains(body, "poison") && !strings.Contains(body, "check constraint") {
			t.Fatalf("stopped sink via %s: %d %s", base, code, body)
		}
		t.Logf("stopped sink via %s: %d after %v: %s", base, code, took.Round(time.Millisecond), body)
		if took > 15*time.Second {
			t.Fatalf("a stopped sink's wait took %v: it should answer at once", took)
		}
		code, body, took = ask(base, "slow", second, "1s")
		if code != 408 || !strings.Contains(body, `"applied":false`) {
			t.Fatalf("stalled sink via %s: %d %s", base, code, body)
		}
		t.Logf("stalled sink via %s: %d after %v: %s", base, code, took.Round(time.Millisecond), body)
	}
	// The flaky sink is seen failing (its state persisted for the standby)
	// within a few of its retries.
	for _, base := range []string{activeURL, standbyURL} {
		var code int
		var body string
		pgtest.Eventually(t, 30*time.Second, func() bool {
			var took time.Duration
			code, body, took = ask(base, "flaky", second, "1s")
			if took > 10*time.Second {
				t.Fatalf("a 1s wait took %v", took)
			}
			return code == 503
		}, "the failing sink answered 503 via %s (last: %d %s)", base, code, body)
		if !strings.Contains(body, `"state":"failing"`) && !strings.Contains(body, `"state":"detached"`) || !strings.Contains(body, `"error":`) {
			t.Fatalf("failing sink via %s: %d %s", base, code, body)
		}
		t.Logf("failing sink via %s: %s", base, body)
	}

	// Recovery: the stalled and the failing sink pass the LSN. second may
	// be past the poison transaction's end (WAL other sessions wrote
	// before pg_current_wal_lsn() was read: checkpoint saves, the stopped
	// sink's state): the streaming instance's sinks pass it at the next
	// keepalive, but the standby reads the slot's confirmed position for
	// that, which the stopped sink holds back. A later event carries every
	// healthy sink's own checkpoint past it (see README: Read your own
	// writes).
	mustDo(t, "unlock", lock.Rollback(ctx))
	mustDo(t, "listen", proxy.Refuse(false))
	appendNotes(t, pool, []string{"after"})
	for _, sink := range []string{"slow", "flaky"} {
		for _, base := range []string{activeURL, standbyURL} {
			if code, body, _ := ask(base, sink, second, "60s"); code != 200 {
				t.Fatalf("recovered sink %s via %s: %d %s", sink, base, code, body)
			}
		}
	}
}

// hostPort returns the host:port of a DSN.
func hostPort(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	mustDo(t, "parse dsn", err)
	return u.Host
}

// withHost returns dsn with its host:port replaced.
func withHost(t *testing.T, dsn, hostport string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	mustDo(t, "parse dsn", err)
	u.Host = hostport
	return u.String()
}

// httpGet returns the status and body of GET u.
func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	mustDo(t, "GET "+u, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustDo(t, "read body", err)
	return resp.StatusCode, string(b)
}

// TestAdminAddress: --admin-addr, its former name --metrics-addr, both
// when they agree; two different addresses are a usage error.
func TestAdminAddress(t *testing.T) {
	for _, tc := range []struct {
		admin, metrics, want, flag string
		usage                      bool
	}{
		{"", "", "", "metrics-addr", false},
		{":9187", "", ":9187", "admin-addr", false},
		{"", ":9187", ":9187", "metrics-addr", false},
		{":9187", ":9187", ":9187", "admin-addr", false},
		{":9187", ":9188", "", "", true},
	} {
		addr, flag, err := adminAddress(tc.admin, tc.metrics)
		var ue *cli.UsageError
		if addr != tc.want || flag != tc.flag || (err != nil) != tc.usage || tc.usage && !errors.As(err, &ue) {
			t.Errorf("adminAddress(%q, %q) = %q, %q, %v", tc.admin, tc.metrics, addr, flag, err)
		}
	}
}

// TestWaitByTxID: waits by pg_current_xact_id(): a committed transaction is
// waited for until applied (its write is then in the read model); one in
// progress times out (408) and is answered once committed; one rolled back
// answers 409; an id from the future 400; through both instances.
func TestWaitByTxID(t *testing.T) {
	dsn, pool := martenStore(t)
	targetDSN, target := readModelTarget(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, readModelSink(t, ""))
	env := []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN}
	_, _, activeURL, standbyURL := startPair(t, dir, env, cfg, pool)
	ctx := t.Context()
	hd := marten.NewHelpdesk(mrand.New(mrand.NewPCG(5, 5)))
	// begin appends a new incident in a transaction left open, returning
	// it, its txid and the stream.
	begin := func() (pgx.Tx, uint64, string) {
		stream, events := hd.Next()
		tx, err := pool.Begin(ctx)
		mustDo(t, "begin", err)
		_, _, err = marten.QuickAppend(ctx, tx, "helpdesk", stream, "incident", marten.DefaultTenantID, events)
		mustDo(t, "append", err)
		var txid uint64
		mustDo(t, "txid", tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&txid))
		return tx, txid, stream
	}
	inModel := func(stream string) bool {
		var n int
		mustDo(t, "read model", target.QueryRow(ctx, `SELECT count(*) FROM incident_details WHERE id = $1::uuid`, stream).Scan(&n))
		return n == 1
	}
	for _, base := range []string{activeURL, standbyURL} {
		client := &wait.Client{BaseURL: base, Pipeline: "helpdesk", Sink: "readmodel"}
		// Committed, then waited for.
		tx, txid, stream := begin()
		mustDo(t, "commit", tx.Commit(ctx))
		if st, err := client.WaitTx(ctx, txid); err != nil || !st.Applied || !inModel(stream) {
			t.Fatalf("committed txid %d via %s: %+v, %v (in the read model: %v)", txid, base, st, err, inModel(stream))
		}
		// In progress: 408, then committed while a wait is asleep.
		tx, txid, stream = begin()
		code, body := httpGet(t, fmt.Sprintf("%s/v1/wait?pipeline=helpdesk&sink=readmodel&txid=%d&timeout=200ms", base, txid))
		if code != 408 || !strings.Contains(body, "still in progress") {
			t.Fatalf("txid %d in progress via %s: %d %s", txid, base, code, body)
		}
		done := make(chan error, 1)
		go func() {
			_, err := client.WaitTx(ctx, txid)
			done <- err
		}()
		mustDo(t, "commit", tx.Commit(ctx))
		if err := <-done; err != nil || !inModel(stream) {
			t.Fatalf("txid %d committed during the wait via %s: %v (in the read model: %v)", txid, base, err, inModel(stream))
		}
		// Rolled back.
		tx, txid, _ = begin()
		mustDo(t, "rollback", tx.Rollback(ctx))
		if _, err := client.WaitTx(ctx, txid); !errors.Is(err, wait.ErrRolledBack) {
			t.Fatalf("rolled-back txid %d via %s: %v", txid, base, err)
		}
		// From the future.
		if _, err := client.WaitTx(ctx, txid+1_000_000); !errors.Is(err, wait.ErrBadRequest) {
			t.Fatalf("future txid via %s: %v", base, err)
		}
	}
}

// TestWaitOtherPipeline: an instance running another pipeline of the same
// configuration answers waits for a pipeline it does not run, from that
// pipeline's checkpoint table and slot.
func TestWaitOtherPipeline(t *testing.T) {
	dsn, pool := martenStore(t)
	targetDSN, target := readModelTarget(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, readModelSink(t, "")+`  - name: other
    source:
      dsn: ${CDC_TEST_DSN}
      schema: helpdesk
    standby_retry: 100ms
    sinks:
      - name: out2
        kind: stdout
`)
	env := []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN}
	args := func(p string) []string {
		return []string{"run", "--config", cfg, "--pipeline", p, "--admin-addr", "127.0.0.1:0", "--wait-poll", "20ms", "--log-format", "json"}
	}
	runner := startCDC(t, dir, "helpdesk", env, args("helpdesk")...)
	other := startCDC(t, dir, "other", env, args("other")...)
	pgtest.Eventually(t, 20*time.Second, func() bool { return holderPID(t, pool) == runner.pid() || runner.wait0() }, "the helpdesk instance streams")
	otherURL := "http://" + metricsAddr(t, other)
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	mustDo(t, "acquire", err)
	defer conn.Release()
	hd := marten.NewHelpdesk(mrand.New(mrand.NewPCG(3, 3)))
	client := &wait.Client{BaseURL: otherURL, Pipeline: "helpdesk", Sink: "readmodel"}
	for i := range 50 {
		stream, events := hd.Next()
		tx, err := conn.Begin(ctx)
		mustDo(t, "begin", err)
		version, _, err := marten.QuickAppend(ctx, tx, "helpdesk", stream, "incident", marten.DefaultTenantID, events)
		mustDo(t, "append", err)
		mustDo(t, "commit", tx.Commit(ctx))
		lsn, err := wait.CommitLSN(ctx, conn)
		mustDo(t, "lsn", err)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := client.Wait(wctx, lsn)
		cancel()
		if err != nil || st.From != "checkpoint_table" {
			t.Fatalf("append %d: %+v, %v", i, st, err)
		}
		var got int64
		mustDo(t, "read model", target.QueryRow(ctx, `SELECT version FROM incident_details WHERE id = $1::uuid`, stream).Scan(&got))
		if got < version {
			t.Fatalf("append %d: stale read: version %d in the read model, %d appended", i, got, version)
		}
	}
	// Its own pipeline it answers locally.
	lsn, err := wait.CommitLSN(ctx, conn)
	mustDo(t, "lsn", err)
	st, err := (&wait.Client{BaseURL: otherURL, Pipeline: "other", Sink: "out2"}).Wait(ctx, lsn)
	if err != nil || st.From != "local" {
		t.Fatalf("own pipeline: %+v, %v", st, err)
	}
	// Nobody streams helpdesk any more: a wait says so instead of timing out
	// silently.
	runner.stopOK()
	appendNotes(t, pool, []string{"after the stop"})
	lsn, err = wait.CommitLSN(ctx, conn)
	mustDo(t, "lsn", err)
	code, body := httpGet(t, otherURL+"/v1/wait?pipeline=helpdesk&sink=readmodel&timeout=300ms&lsn="+lsn.String())
	if code != 503 || !strings.Contains(body, "no instance streams pipeline helpdesk: its slot cdc_helpdesk is not active") {
		t.Fatalf("wait on a pipeline nobody streams: %d %s", code, body)
	}
}
