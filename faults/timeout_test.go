package faults

import (
	"fmt"
	"strings"
	"time"

	"testing"
)

// interruptedMsg is the warning cdc logs when its replication connection
// ends and it reconnects.
const interruptedMsg = "replication stream interrupted; reconnecting"

// silentDrops returns the interruption warnings of p whose error says the
// server was silent for source.timeout.
func silentDrops(p *Proc) []LogRecord {
	var out []LogRecord
	for _, r := range p.Records(interruptedMsg) {
		if err := r.Str("err"); strings.Contains(err, "sent nothing for") && strings.Contains(err, "(source.timeout)") {
			out = append(out, r)
		}
	}
	return out
}

// logTime returns the time of a log record.
func logTime(t *testing.T, r LogRecord) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, r.Str("time"))
	if err != nil {
		t.Fatalf("log record without a readable time: %v: %v", r, err)
	}
	return at
}

// walsender returns the pid of the walsender holding the Env's slot, or 0.
func (e *Env) walsender() int {
	var pid *int32
	if err := e.Pool.QueryRow(e.t.Context(), `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, e.Slot).Scan(&pid); err != nil || pid == nil {
		return 0
	}
	return int(*pid)
}

// backendAlive reports whether the server process pid still runs.
func (e *Env) backendAlive(pid int) bool {
	var n int
	if err := e.Pool.QueryRow(e.t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
		return true
	}
	return n > 0
}

// TestSourceTimeout: cdc's connections to PostgreSQL are frozen mid-stream
// with writers running: no byte passes either way, no reset, no FIN, as in a
// partition or a hung load balancer. With source.timeout: 2s, cdc must
//
//   - keep answering /readyz ("streaming", 200) while the connection is
//     silent and not yet dropped;
//   - drop it with the warning "replication stream interrupted;
//     reconnecting" whose err says the server "sent nothing for"
//     ... "(source.timeout)", no sooner than source.timeout;
//   - have set wal_sender_timeout to source.timeout on its replication
//     connection: the server ends the old walsender (it hears nothing
//     either) within seconds, not after its own 60s;
//   - reconnect through the proxy (new connections work after Freeze) and
//     deliver every committed event: stdout at least once (a batch written
//     but not checkpointed comes again), the Postgres sink (its target on a
//     proxy of its own, untouched) exactly once.
//
// Then the same freeze with new connections black-holed, so that the
// reconnect keeps failing: /readyz says 200 "reconnecting" for the first
// source.timeout after the drop and 503 "replication stream reconnecting
// for" after that, and 200 "streaming" once connections work again.
//
// "replication path": the checkpoint connections (checkpoints.dsn, the
// same database) go through a proxy of their own that stays up, so only
// the replication connection (and the source pool) is frozen. "whole
// path": the default configuration, where the checkpoint connections share
// the frozen path (each checkpoint save is bounded by source.timeout, so a
// save caught by the freeze gives up and is retried on a new connection).
func TestSourceTimeout(t *testing.T) {
	t.Parallel()
	t.Run("replication path", func(t *testing.T) {
		t.Parallel()
		testSourceTimeout(t, Options{CheckpointProxy: true})
	})
	t.Run("whole path", func(t *testing.T) {
		t.Parallel()
		testSourceTimeout(t, Options{})
	})
}

// testSourceTimeout is TestSourceTimeout with the Env's options.
func testSourceTimeout(t *testing.T, opts Options) {
	const timeout = 2 * time.Second
	e := NewEnv(t, opts)
	e.Stdout("out")
	e.Postgres("readmodel", PostgresOptions{OwnProxy: true})
	run := e.StartStreaming("run", e.WriteConfig(Config{Source: "timeout: 2s"}), startDeadline, metricsFlag...)
	addr := run.MetricsAddr(startDeadline)
	e.StartWorkload(WorkloadOptions{})
	e.WaitHeld(warmup, progressDeadline)

	var dropTimes, freedTimes []time.Duration
	for i := range scale(1, 3) {
		drops := len(silentDrops(run))
		old := e.walsender()
		if old == 0 {
			t.Fatal("no walsender holds the slot before the freeze")
		}
		accepted := e.Proxy.Stats().Accepted
		f := e.Inject(fmt.Sprintf("freeze %d of cdc's PostgreSQL connections", i+1))
		if n := e.Proxy.Freeze(); n == 0 {
			t.Fatal("the proxy had no connection of cdc to freeze")
		}

		// Silent, not yet dropped: /readyz answers and says streaming.
		answered := 0
		var freed time.Duration
		e.Eventually(progressDeadline, func() bool {
			if freed == 0 && !e.backendAlive(old) {
				freed = time.Since(f.Start)
			}
			if len(silentDrops(run)) > drops {
				return true
			}
			code, body, err := Readyz(addr)
			if len(silentDrops(run)) > drops {
				return true // the answer may be from after the drop
			}
			if err != nil || code != 200 || body != "pipeline helpdesk: streaming\n" {
				t.Fatalf("/readyz while the connection is silent (not yet dropped): %d %q, %v; want 200 \"pipeline helpdesk: streaming\"", code, body, err)
			}
			answered++
			return false
		}, "cdc drops the frozen replication connection (source.timeout %v)", timeout)
		dropped := time.Since(f.Start)
		// The fault, as cdc sees it, ends with the drop: recovery counts
		// from there. (Not from the freeze: the walsender may send a
		// transaction before its commit returns to the writer, so an event
		// committed just after the freeze may have passed before it.)
		e.Lift(f)
		if answered == 0 {
			t.Fatal("/readyz was never asked while the connection was frozen: the drop came before the first poll")
		}
		d := silentDrops(run)[drops]
		if lvl := d.Str("level"); lvl != "WARN" {
			t.Errorf("the drop was logged at level %s, want WARN: %v", lvl, d)
		}
		if silent := silence(t, d); silent < timeout {
			t.Errorf("cdc dropped the connection after %v of silence, before source.timeout (%v): %v", silent, timeout, d)
		}

		// Reconnecting: /readyz says so (200 within the timeout, 503
		// after it), until the stream is back through new connections.
		var answers runs
		e.Eventually(recoverDeadline, func() bool {
			if freed == 0 && !e.backendAlive(old) {
				freed = time.Since(f.Start)
			}
			code, body, err := Readyz(addr)
			if err != nil {
				t.Fatalf("/readyz after the drop: %v", err)
			}
			checkReconnecting(t, code, body)
			answers.add(fmt.Sprintf("%d %s", code, strings.TrimSpace(body)))
			return freed != 0 && e.Holder() == run.PID() && code == 200 && body == "pipeline helpdesk: streaming\n"
		}, "cdc streams again after the drop (readyz answers: %v)", lazy(func() any { return answers.String() }))
		if e.Proxy.Stats().Accepted == accepted {
			t.Fatal("cdc streams again without a new connection through the proxy")
		}
		e.AwaitRecovery(f, recoverDeadline)
		e.Progress(afterFault, progressDeadline)
		t.Logf("freeze %d: dropped after %v, the old walsender ended after %v, /readyz answered %d times before the drop, then:%v",
			i+1, dropped.Round(time.Millisecond), freed.Round(time.Millisecond), answered, answers.String())
		dropTimes = append(dropTimes, dropped)
		freedTimes = append(freedTimes, freed)
		// The server's own wal_sender_timeout is 60s: only cdc's setting
		// ends the walsender this fast.
		if freed > 5*timeout {
			t.Errorf("the server ended the walsender of the frozen connection %v after the freeze: wal_sender_timeout is not source.timeout (%v)", freed, timeout)
		}
	}

	// The reconnect keeps failing: new connections are black-holed.
	drops := len(silentDrops(run))
	f := e.Inject("freeze, new connections black-holed")
	e.Proxy.Blackhole(true)
	if n := e.Proxy.Freeze(); n == 0 {
		t.Fatal("the proxy had no connection of cdc to freeze")
	}
	e.Eventually(progressDeadline, func() bool { return len(silentDrops(run)) > drops },
		"cdc drops the frozen replication connection (source.timeout %v)", timeout)
	droppedAt := logTime(t, silentDrops(run)[drops])
	var ok200, got503 int
	var first503, last200 time.Duration
	e.Eventually(progressDeadline, func() bool {
		sent := time.Now()
		code, body, err := Readyz(addr)
		if err != nil {
			t.Fatalf("/readyz while reconnecting: %v", err)
		}
		checkReconnecting(t, code, body)
		switch {
		case code == 200 && strings.HasPrefix(body, "pipeline helpdesk: reconnecting: "):
			// The answer was made after the request was sent.
			ok200++
			last200 = sent.Sub(droppedAt)
		case code == 503:
			got503++
			if got503 == 1 {
				// The answer was made before it arrived: if it arrived
				// less than source.timeout after the drop, it was early.
				first503 = time.Since(droppedAt)
				if first503 < timeout {
					t.Fatalf("/readyz said 503 %v after the drop, before source.timeout (%v): %q", first503, timeout, body)
				}
			}
		case ok200 > 0:
			t.Fatalf("/readyz says %d %q while new connections are black-holed", code, body)
		}
		return got503 >= 3
	}, "/readyz says 503 once the stream has reconnected for longer than source.timeout")
	if ok200 == 0 {
		t.Error("/readyz never said 200 \"reconnecting\" in the first source.timeout after the drop")
	}
	if last200 > timeout+time.Second {
		t.Errorf("/readyz still said 200 %v after the drop (source.timeout %v)", last200, timeout)
	}
	t.Logf("black-holed: /readyz said 200 reconnecting %d times (the last %v after the drop), then 503 from %v after it",
		ok200, last200.Round(time.Millisecond), first503.Round(time.Millisecond))
	e.Proxy.Blackhole(false)
	e.Proxy.Reset()
	e.Lift(f)
	e.AwaitRecovery(f, recoverDeadline)
	e.Eventually(progressDeadline, func() bool {
		code, body, err := Readyz(addr)
		return err == nil && code == 200 && body == "pipeline helpdesk: streaming\n"
	}, "/readyz says 200 streaming again")
	e.Progress(afterFault, progressDeadline)

	e.WaitDelivered(deliverDeadline)
	run.StopOK()
	r := e.Check()
	r.Note("dropped_after_ms", durationsMS(dropTimes))
	r.Note("walsender_ended_after_ms", durationsMS(freedTimes))
	r.Note("readyz_503_after_ms", first503.Milliseconds())
	r.Log(e)
	r.Assert(e, Expect{})
}

// silence returns how long the server had been silent according to a
// drop's warning ("the server sent nothing for 2.001s (source.timeout): ...").
func silence(t *testing.T, r LogRecord) time.Duration {
	t.Helper()
	_, rest, _ := strings.Cut(r.Str("err"), "sent nothing for ")
	s, _, _ := strings.Cut(rest, " ")
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("the drop's warning does not say how long the server was silent: %v", r)
	}
	return d
}

// checkReconnecting fails the test unless a /readyz answer is one a pipeline
// may give around a reconnect: streaming, standing by (the old walsender
// still holds the slot), reconnecting (200) or reconnecting for longer than
// source.timeout (503).
func checkReconnecting(t *testing.T, code int, body string) {
	t.Helper()
	switch {
	case code == 200 && body == "pipeline helpdesk: streaming\n":
	case code == 200 && body == "pipeline helpdesk: standby (another instance holds the slot)\n":
	case code == 200 && strings.HasPrefix(body, "pipeline helpdesk: reconnecting: "):
	case code == 503 && strings.HasPrefix(body, "pipeline helpdesk: replication stream reconnecting for "):
	default:
		t.Fatalf("/readyz around a reconnect: %d %q", code, body)
	}
}

// runs is a run-length list of answers, for the log.
type runs struct {
	items []string
	count []int
}

// add appends s, or counts it again when it repeats the last one.
func (r *runs) add(s string) {
	if n := len(r.items); n > 0 && r.items[n-1] == s {
		r.count[n-1]++
		return
	}
	r.items = append(r.items, s)
	r.count = append(r.count, 1)
}

// String lists the answers with their repeats.
func (r *runs) String() string {
	var b strings.Builder
	for i, s := range r.items {
		fmt.Fprintf(&b, "\n  %dx %s", r.count[i], s)
	}
	return b.String()
}

// durationsMS converts durations to milliseconds, for a report's notes.
func durationsMS(ds []time.Duration) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.Milliseconds()
	}
	return out
}
