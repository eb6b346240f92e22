package main

import (
	"testing"
	"time"

	"github.com/martencdc/cdc/internal/pgtest"
)

// TestCrashResume: SIGKILL a running `cdc run` mid-stream and start it again:
// nothing committed is missing, nothing rolled back appears, the restarted
// process delivers nothing at or below the stdout sink's checkpoint, and the
// only duplicates are the unacknowledged tail of the killed process.
func TestCrashResume(t *testing.T) {
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	env := []string{"CDC_TEST_DSN=" + dsn}

	first := startStreaming(t, dir, "first", env, cfg, pool)
	w := startWriters(t, pool, 4, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(first.out) >= 400 }, "first run delivers")
	first.kill()
	cp, ok := checkpointOf(t, pool, "out")
	if !ok {
		t.Fatal("no checkpoint after the first run")
	}

	second := startCDC(t, dir, "second", env, "run", "--config", cfg)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(second.out) >= 200 }, "second run delivers")
	committed, rolledBack := w.finish(t)
	pgtest.Eventually(t, 30*time.Second, func() bool { return allDelivered(t, committed, first.out, second.out) }, "every committed event delivered by one run or the other")
	second.stopOK()

	out1, out2 := readOutput(t, first.out), readOutput(t, second.out)
	pos := positions(out1, out2)
	checkStream(t, "first run", out1, pos)
	checkStream(t, "second run", out2, pos)
	for _, d := range out2 {
		if pos[d.ID].Compare(cp) <= 0 {
			t.Fatalf("second run delivered %s at %s, at or below the checkpoint %s", d.ID, pos[d.ID], cp)
		}
	}
	in2 := map[string]bool{}
	for _, d := range out2 {
		in2[d.ID] = true
	}
	dups := 0
	for _, d := range out1 {
		if in2[d.ID] {
			dups++
			if pos[d.ID].Compare(cp) <= 0 {
				t.Fatalf("event %s at %s delivered twice though its checkpoint %s covered it", d.ID, pos[d.ID], cp)
			}
		}
	}
	for _, out := range [][]delivered{out1, out2} {
		for _, d := range out {
			if rolledBack[d.ID] {
				t.Fatalf("rolled-back event %s delivered", d.ID)
			}
			if !committed[d.ID] {
				t.Fatalf("delivered event %s that no writer committed", d.ID)
			}
		}
	}
	t.Logf("%d events committed (%d rolled back); killed after %d lines, checkpoint %s; %d re-delivered from the unacknowledged tail",
		len(committed), len(rolledBack), len(out1), cp, dups)
	if end, ok := checkpointOf(t, pool, "out"); !ok || end.Compare(pos[out2[len(out2)-1].ID]) < 0 {
		t.Fatalf("after SIGTERM the checkpoint is %s, want the last delivered event %s", end, pos[out2[len(out2)-1].ID])
	}
}

// wait0 reports whether the process has already exited (it should not).
func (c *child) wait0() bool {
	select {
	case <-c.done:
		c.t.Fatalf("cdc exited early: %v\n%s", c.err, c.stderr())
	default:
	}
	return false
}
