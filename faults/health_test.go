package faults

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSinkTargetDownAtStart: cdc starts while the Postgres sink's target
// is down (its connections refused through its proxy). The Postgres sink
// reads its own checkpoint from its target when the pipeline opens; that
// must not stall the others. A first run gives every sink a checkpoint (the
// Postgres sink's in its target), then cdc is restarted with the target
// down and writers running:
//
//   - stdout, Kafka and Elasticsearch deliver the events committed after
//     the start at once, while nothing is applied in the target;
//   - `cdc status --json` shows the Postgres sink "failing" or "detached",
//     with an error;
//   - /readyz answers 503 naming the sink once failure_grace (2s) has
//     passed, and not before;
//   - when the target accepts connections again, the Postgres sink catches
//     up exactly once (read models equal a recomputation), /readyz is 200
//     "streaming" again, and the healthy sinks hold no duplicate: the slot
//     read again for the recovered sink is skipped where they have it.
func TestSinkTargetDownAtStart(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Second
	e := NewEnv(t, Options{})
	e.Stdout("out")
	e.Kafka("bus", KafkaOptions{})
	e.Elastic("search")
	rm := e.Postgres("readmodel", PostgresOptions{OwnProxy: true, ReadModels: true})
	cfg := e.WriteConfig(Config{Pipeline: "failure_grace: 2s"})
	first := e.StartStreaming("run-1", cfg, startDeadline)
	e.StartWorkload(WorkloadOptions{})
	e.WaitHeld(warmup, progressDeadline)
	first.StopOK()

	mustDo(t, "refuse the target's connections", rm.Proxy.Refuse(true))
	applied := rm.Applied(t.Context())
	f := e.Inject("cdc restarted with the Postgres sink's target down")
	run := e.StartStreaming("run-2", cfg, startDeadline, metricsFlag...)
	started := run.Started
	e.Lift(f)
	healthy := []string{"out", "bus", "search"}
	e.AwaitRecoveryOf(f, recoverDeadline, healthy...)
	for _, name := range healthy {
		from := e.Held(name)
		e.Eventually(progressDeadline, func() bool { return e.Held(name) >= from+afterFault },
			"sink %s delivers while the Postgres sink's target is down", name)
	}
	if n := rm.Applied(t.Context()); n != applied {
		t.Fatalf("%d events applied while the target refused connections", n-applied)
	}

	// cdc status: the sink is failing or detached, with the error.
	var st StatusSink
	e.Eventually(progressDeadline, func() bool {
		sinks, code := e.StatusJSON(cfg)
		st = sinks["readmodel"]
		return code == 0 && (st.State == "failing" || st.State == "detached") && st.Error != ""
	}, "cdc status --json shows sink readmodel failing or detached with an error (shows %+v)", lazy(func() any { return st }))
	t.Logf("cdc status --json: sink readmodel %s: %s", st.State, st.Error)
	for _, name := range healthy {
		sinks, _ := e.StatusJSON(cfg)
		if s := sinks[name]; s.State != "ok" {
			t.Errorf("cdc status --json: healthy sink %s is %q (%s)", name, s.State, s.Error)
		}
	}

	// /readyz: 503 naming the sink, only once failure_grace has passed.
	addr := run.MetricsAddr(startDeadline)
	var body string
	var at time.Duration
	e.Eventually(progressDeadline, func() bool {
		code, b, err := Readyz(addr)
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		// The answer was made before it arrived, and the sink failed after
		// the process started.
		at = time.Since(started)
		body = b
		named := code == 503 && strings.Contains(b, "sink readmodel ")
		if named && at < grace {
			t.Fatalf("/readyz named the sink %v after the start, before failure_grace (%v): %q", at, grace, b)
		}
		return named
	}, "/readyz says 503 naming sink readmodel (says %q)", lazy(func() any { return body }))
	if !regexp.MustCompile(`^pipeline helpdesk: sink readmodel (failing|detached) for \d+s: .+\n$`).MatchString(body) {
		t.Errorf("/readyz 503 body %q, want \"pipeline helpdesk: sink readmodel failing|detached for Ns: <error>\"", body)
	}
	t.Logf("/readyz %v after the start: 503 %q", at.Round(time.Millisecond), strings.TrimSpace(body))

	f2 := e.Inject("the Postgres sink's target accepts connections again")
	mustDo(t, "accept the target's connections", rm.Proxy.Refuse(false))
	e.Lift(f2)
	e.AwaitRecovery(f2, recoverDeadline)
	e.Eventually(progressDeadline, func() bool {
		code, b, err := Readyz(addr)
		return err == nil && code == 200 && b == "pipeline helpdesk: streaming\n"
	}, "/readyz says 200 streaming once the sink recovered")
	e.Progress(afterFault, progressDeadline)
	e.WaitDelivered(deliverDeadline)
	run.StopOK()
	r := e.Check()
	r.Note("readyz_503_after_start_ms", at.Milliseconds())
	r.Log(e)
	r.Assert(e, Expect{NoDuplicates: []string{"out", "bus"}})
	rm.CheckReadModels()
}

// stoppedLine is the line of `cdc status` for a stopped sink, and the line
// after it with the rejected event and the reason.
var stoppedLine = regexp.MustCompile(`(?m)^  sink readmodel \(postgres\): stopped since [^,]+, checkpoint \S+, lag [^/]+/ (\d+) events / [^,]+, delivered (\d+)\n    event (\S+) \((\S+), stream \S+\) at (\S+) rejected: (.+)$`)

// TestSinkStopped: the Postgres sink's target rejects an event for good
// mid-stream (a check constraint fails for one event type: the "gate"
// projection on incident_closed), and the sink stops just before it
// (on_error: stop, the default) while stdout goes on:
//
//   - cdc logs "sink stopped: an event was rejected permanently ..." with
//     the event's id;
//   - /readyz answers 503 "sink readmodel stopped: event <id> ...";
//   - `cdc status` shows "stopped since", the event id and the reason (the
//     constraint), and counts the events pending behind it: not 0, and once
//     the writers stop, exactly the events from the rejected one on;
//   - the target holds exactly the events before the rejected one, each
//     once, and nothing from it on; stdout holds everything.
func TestSinkStopped(t *testing.T) {
	t.Parallel()
	const gate = "incident_closed"
	e := NewEnv(t, Options{})
	e.Stdout("out")
	rm := e.Postgres("readmodel", PostgresOptions{Gate: gate})
	cfg := e.WriteConfig(Config{})
	run := e.StartStreaming("run", cfg, startDeadline, metricsFlag...)
	addr := run.MetricsAddr(startDeadline)
	e.StartWorkload(WorkloadOptions{})
	e.WaitHeld(warmup, progressDeadline)

	rm.CloseGate()
	const stoppedMsg = "sink stopped: an event was rejected permanently (on_error: stop); fix the cause and restart, or set on_error: dead_letter"
	var rec LogRecord
	e.Eventually(progressDeadline, func() bool {
		for _, r := range run.Records(stoppedMsg) {
			rec = r
		}
		return rec != nil
	}, "cdc logs that sink readmodel stopped")
	id := rec.Str("event_id")
	if rec.Str("sink") != "readmodel" || rec.Str("type") != gate || id == "" || !strings.Contains(rec.Str("err"), "faults_gated_open") {
		t.Fatalf("the stop's log record: %v; want sink readmodel, type %s, an event_id, and the constraint in err", rec, gate)
	}

	code, body, err := Readyz(addr)
	if err != nil || code != 503 || !strings.HasPrefix(body, "pipeline helpdesk: sink readmodel stopped: event "+id+" ("+gate+", stream ") ||
		!strings.Contains(body, "faults_gated_open") {
		t.Fatalf("/readyz with a stopped sink: %d %q, %v; want 503 naming the sink, \"stopped\", the event %s and the constraint", code, body, err, id)
	}
	t.Logf("/readyz: %d %s", code, strings.TrimSpace(body))

	// stdout goes on; the status counts what is pending behind the event.
	out := e.Held("out")
	e.Eventually(progressDeadline, func() bool { return e.Held("out") >= out+1000 }, "stdout goes on after sink readmodel stopped")
	var text string
	var m []string
	e.Eventually(progressDeadline, func() bool {
		var code int
		text, _, code = e.Command("status", "--config", cfg)
		m = stoppedLine.FindStringSubmatch(text)
		return code == 0 && m != nil && m[1] != "0"
	}, "cdc status shows sink readmodel stopped, with the event and a pending count (shows:\n%s)", lazy(func() any { return text }))
	if m[3] != id || m[4] != gate || !strings.Contains(m[6], "faults_gated_open") {
		t.Errorf("cdc status names event %s (%s) rejected for %q; want %s (%s) and the constraint faults_gated_open", m[3], m[4], m[6], id, gate)
	}
	t.Logf("cdc status while the writers run: %d events pending behind %s", atoi(t, m[1]), id)

	e.WaitDeliveredTo(deliverDeadline, "out")
	// Every event from the rejected one on is pending: count them in the
	// stdout sink, which holds every event with its position.
	var pos Pos
	var ok bool
	recs := e.Records("out")
	for _, r := range recs {
		if r.ID == id {
			pos, ok = r.Pos, true
			break
		}
	}
	if !ok {
		t.Fatalf("stdout does not hold the rejected event %s", id)
	}
	before, behind := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		if r.Torn {
			continue
		}
		if pos.after(r.Pos) {
			before[r.ID] = true
		} else {
			behind[r.ID] = true
		}
	}
	// The count settles once the writers stopped and the sink took what
	// was committed.
	pending, settled := -1, time.Now()
	e.Eventually(progressDeadline, func() bool {
		text, _, _ = e.Command("status", "--config", cfg)
		m = stoppedLine.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("cdc status no longer shows sink readmodel stopped:\n%s", text)
		}
		if n := atoi(t, m[1]); n != pending {
			pending, settled = n, time.Now()
		}
		return pending == len(behind) || time.Since(settled) > 2*time.Second
	}, "cdc status counts the %d events from the rejected one on as pending (shows:\n%s)", len(behind), lazy(func() any { return text }))
	t.Logf("cdc status, writers stopped:\n%s", text)
	undercount := len(behind) - pending
	// Beyond the rest of one batch (max_events 200), the count is wrong.
	if undercount < 0 || undercount > 200 {
		t.Errorf("cdc status counts %d events pending behind the rejected event; %d are not in the sink", pending, len(behind))
	}

	run.StopOK()
	r := e.Check()
	r.Note("pending_behind_the_rejected_event", len(behind))
	r.Note("pending_in_cdc_status", pending)
	r.Log(e)
	r.Assert(e, Expect{NoDuplicates: []string{"out"}, Stopped: []string{"readmodel"}})
	// The target holds exactly the events before the rejected one.
	var applied []string
	for _, rec := range e.Records("readmodel") {
		applied = append(applied, rec.ID)
	}
	var extra []string
	for _, a := range applied {
		if !before[a] {
			extra = append(extra, a)
		}
	}
	if len(extra) > 0 || len(applied) != len(before) {
		t.Fatalf("the stopped sink applied %d events, %d of them at or after the rejected one (%v); want exactly the %d before it",
			len(applied), len(extra), extra[:min(len(extra), 5)], len(before))
	}
	if slices.Contains(applied, id) {
		t.Fatalf("the rejected event %s was applied", id)
	}
	t.Logf("the stopped sink holds the %d events before %s; %d are pending behind it", len(before), id, len(behind))
	if undercount != 0 {
		regression(t, fmt.Sprintf("cdc status counts %d events pending behind the rejected event %s, but %d events, from it on, "+
			"are not in the sink (%d fewer)\n%s", pending, id, len(behind), undercount, pendingDefect))
	}
}

// pendingDefect says why a stopped sink's pending count falls short.
const pendingDefect = `the count leaves out the rejected event and the events batched behind it: when the sink stops
(pipeline/checkpoint.go saveStopped), clearBatch drops the rest of the batch and sets the batched count to 0, and
those events are never counted as missed; only the events taken after the stop are (pipeline/batch.go take). The
shortfall is at most one batch (max_events).`

// atoi converts a figure matched in the output of a command.
func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}
