package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgtest"
)

// TestStandbyTakeover: two `cdc run` processes on one slot: exactly one
// streams while the other stands by; SIGKILL the active one and the standby
// takes over and continues from the checkpoint.
func TestStandbyTakeover(t *testing.T) {
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	env := []string{"CDC_TEST_DSN=" + dsn}

	a := startCDC(t, dir, "a", env, "run", "--config", cfg)
	b := startCDC(t, dir, "b", env, "run", "--config", cfg)
	active, standby := pairRoles(t, pool, a, b, 15*time.Second)
	if !strings.Contains(standby.stderr(), "cdc helpdesk") {
		t.Fatalf("standby does not log who holds the slot:\n%s", standby.stderr())
	}

	w := startWriters(t, pool, 3, 2*time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(active.out) >= 200 }, "active instance delivers")
	if n := countLines(standby.out); n != 0 {
		t.Fatalf("the standby delivered %d events while the other held the slot", n)
	}
	active.kill()
	cp, ok := checkpointOf(t, pool, "out")
	if !ok {
		t.Fatal("no checkpoint")
	}
	pgtest.Eventually(t, 15*time.Second, func() bool { return holderPID(t, pool) == standby.pid() }, "the standby takes the slot over")
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(standby.out) >= 100 }, "the new active instance delivers")
	w.halt()
	committed, _ := w.snapshot()
	pgtest.Eventually(t, 30*time.Second, func() bool { return allDelivered(t, committed, active.out, standby.out) }, "every committed event delivered")
	standby.stopOK()
	out1, out2 := readOutput(t, active.out), readOutput(t, standby.out)
	pos := positions(out1, out2)
	checkStream(t, "first active", out1, pos)
	checkStream(t, "taken over", out2, pos)
	// The checkpoint the new holder resumed from: a save the killed
	// instance had already sent may still commit after the new holder read
	// its checkpoints (the server finishes a statement it received), so
	// the row read right after the kill can be a little further.
	resumed := resumedFrom(t, standby, "out")
	for _, d := range out2 {
		if pos[d.ID].Compare(resumed) <= 0 {
			t.Fatalf("the new active instance delivered %s at %s, at or below the checkpoint %s it resumed from", d.ID, pos[d.ID], resumed)
		}
	}
	t.Logf("%d committed; first instance delivered %d, the one that took over %d (checkpoint %s at the kill, resumed from %s)", len(committed), len(out1), len(out2), cp, resumed)
}

// TestSignalFlush: SIGTERM and SIGINT make cdc flush, checkpoint the last
// event it wrote and exit 0.
func TestSignalFlush(t *testing.T) {
	for _, sig := range []string{"TERM", "INT"} {
		t.Run(sig, func(t *testing.T) {
			dsn, pool := martenStore(t)
			dir := t.TempDir()
			cfg := writeConfig(t, dir, "")
			c := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)
			w := startWriters(t, pool, 2, time.Millisecond)
			pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(c.out) >= 100 }, "delivers")
			var code int
			if sig == "TERM" {
				code = c.stop()
			} else {
				if err := c.cmd.Process.Signal(interruptSignal); err != nil {
					t.Fatal(err)
				}
				code = c.wait(30 * time.Second)
			}
			w.halt()
			if code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			out := readOutput(t, c.out)
			pos := positions(out)
			last := pos[out[len(out)-1].ID]
			cp, _ := checkpointOf(t, pool, "out")
			if cp.LSN != last.LSN || cp.Compare(last) < 0 {
				t.Fatalf("checkpoint %s after shutdown, want the last written event's transaction %s", cp, last)
			}
			if !strings.Contains(c.stderr(), "all pipelines stopped cleanly") {
				t.Fatalf("no clean-stop log:\n%s", c.stderr())
			}
		})
	}
}

// resumedFrom returns the checkpoint c logged that sink resumes from
// ("sink resumes from checkpoint"), its last such record.
func resumedFrom(t *testing.T, c *child, sink string) cdc.Position {
	t.Helper()
	var pos string
	for _, line := range strings.Split(c.stderr(), "\n") {
		var l struct{ Msg, Sink, Position string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "sink resumes from checkpoint" && l.Sink == sink {
			pos = l.Position
		}
	}
	lsn, idx, ok := strings.Cut(pos, "#")
	if !ok {
		t.Fatalf("%s logged no checkpoint to resume %s from:\n%s", c.cmd.Path, sink, c.stderr())
	}
	p := cdc.Position{Index: cdc.EndOfTx}
	var err error
	if p.LSN, err = cdc.ParseLSN(lsn); err != nil {
		t.Fatalf("resume position %q: %v", pos, err)
	}
	if idx != "end" {
		n, err := strconv.ParseUint(idx, 10, 32)
		if err != nil {
			t.Fatalf("resume position %q: %v", pos, err)
		}
		p.Index = uint32(n)
	}
	return p
}

// pairRoles waits until one of two instances on the same slot streams and
// the other stands by, and returns them in that order.
func pairRoles(t *testing.T, pool *pgxpool.Pool, a, b *child, within time.Duration) (active, standby *child) {
	t.Helper()
	pgtest.Eventually(t, within, func() bool {
		a.wait0()
		b.wait0()
		switch holderPID(t, pool) {
		case a.pid():
			active, standby = a, b
		case b.pid():
			active, standby = b, a
		}
		return active != nil && strings.Contains(standby.stderr(), "standing by")
	}, "one instance streams and the other stands by")
	return active, standby
}
