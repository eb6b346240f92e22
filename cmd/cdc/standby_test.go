package main

import (
	"strings"
	"testing"
	"time"

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
	var active, standby *child
	pgtest.Eventually(t, 15*time.Second, func() bool {
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
	for _, d := range out2 {
		if pos[d.ID].Compare(cp) <= 0 {
			t.Fatalf("the new active instance delivered %s at %s, at or below the checkpoint %s", d.ID, pos[d.ID], cp)
		}
	}
	t.Logf("%d committed; first instance delivered %d, the one that took over %d (checkpoint %s at the kill)", len(committed), len(out1), len(out2), cp)
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
