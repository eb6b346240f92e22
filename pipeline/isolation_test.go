package pipeline_test

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

// appendN appends n transactions of helpdesk events and returns the event
// ids in commit order.
func appendN(t *testing.T, h *harness, seed uint64, n int) []string {
	t.Helper()
	hd := marten.NewHelpdesk(mrand.New(mrand.NewPCG(seed, 3)))
	var out []string
	for range n {
		tx, ids, _ := appendTx(t, t.Context(), h.pool, hd)
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		out = append(out, ids...)
	}
	return out
}

func slotState(t *testing.T, h *harness) replication.SlotState {
	t.Helper()
	s, err := replication.Slot(t.Context(), h.pool, h.rcfg.Slot)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSinkIsolation: with two sinks where one fails for a while, the healthy
// one keeps delivering, the slot keeps the failed one's WAL, and once it
// recovers it catches up with nothing missed and nothing twice.
func TestSinkIsolation(t *testing.T) {
	h := newHarness(t)
	healthy, flaky := &recorder{}, &recorder{}
	r := h.start(pipeline.Config{
		Sinks: []pipeline.SinkConfig{
			{Name: "healthy", Sink: healthy},
			{Name: "flaky", Sink: flaky},
		},
		QueueChunks:  4, // small, so the failing sink is detached quickly
		StallTimeout: 500 * time.Millisecond,
	})
	before := appendN(t, h, 1, 5)
	pgtest.Eventually(t, 10*time.Second, func() bool { return flaky.count() == len(before) && healthy.count() == len(before) }, "both sinks get the first events")
	checkpointCaughtUp(t, h, "flaky", flaky.snapshot()[len(before)-1].Position())
	cps, err := h.store.Load(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	flakyFlush := cps["flaky"].Flush

	flaky.fail.Store(true)
	during := appendN(t, h, 2, 60)
	all := slices.Concat(before, during)
	pgtest.Eventually(t, 20*time.Second, func() bool { return healthy.count() == len(all) }, "the healthy sink keeps delivering while the other fails")
	if got := flaky.count(); got != len(before) {
		t.Fatalf("failing sink recorded %d events, want %d", got, len(before))
	}
	// The slot holds the failing sink's WAL: nothing after its checkpoint is
	// confirmed, except WAL without events (the checkpoint table's own
	// writes, confirmed from keepalives while both sinks were caught up):
	// the first transaction the failing sink lacks is still sent again, as
	// its commit record does not start before the confirmed position.
	firstMissed := healthy.snapshot()[len(before)].LSN
	if s := slotState(t, h); s.ConfirmedFlush > firstMissed {
		t.Fatalf("slot confirmed %s past the commit %s of the first transaction the failing sink lacks (its checkpoint: %s)", s.ConfirmedFlush, firstMissed, flakyFlush)
	}
	if st := sinkStatus(r.p, "flaky"); !st.Failing && !st.Detached {
		t.Fatalf("failing sink not reported failing or detached: %+v", st)
	}

	flaky.fail.Store(false)
	after := appendN(t, h, 3, 5)
	all = slices.Concat(all, after)
	pgtest.Eventually(t, 20*time.Second, func() bool { return flaky.count() >= len(all) && healthy.count() >= len(all) }, "the recovered sink catches up")
	for name, rec := range map[string]*recorder{"healthy": healthy, "flaky": flaky} {
		got := rec.snapshot()
		checkOrdered(t, name, got)
		if !slices.Equal(ids(got), all) {
			t.Fatalf("%s delivered %d events, want exactly the %d committed, in order", name, len(got), len(all))
		}
	}
	last := healthy.snapshot()[len(all)-1].Position()
	checkpointCaughtUp(t, h, "flaky", last)
	checkpointCaughtUp(t, h, "healthy", last)
	pgtest.Eventually(t, 10*time.Second, func() bool { return slotState(t, h).ConfirmedFlush > flakyFlush }, "the slot confirms again once both sinks caught up")
}

func sinkStatus(p *pipeline.Pipeline, name string) pipeline.SinkStatus {
	for _, s := range p.Status() {
		if s.Name == name {
			return s
		}
	}
	return pipeline.SinkStatus{}
}

// TestRestartResumesFromCheckpoints: a pipeline stopped cleanly and started
// again delivers what was committed meanwhile, and nothing twice.
func TestRestartResumesFromCheckpoints(t *testing.T) {
	h := newHarness(t)
	first := &recorder{}
	r := h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: first}}})
	a := appendN(t, h, 1, 10)
	pgtest.Eventually(t, 10*time.Second, func() bool { return first.count() == len(a) }, "first run delivers")
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	b := appendN(t, h, 2, 10) // while nothing runs
	second := &recorder{}
	h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: second}}})
	c := appendN(t, h, 3, 5)
	want := slices.Concat(b, c)
	pgtest.Eventually(t, 10*time.Second, func() bool { return second.count() >= len(want) }, "second run delivers")
	got := second.snapshot()
	checkOrdered(t, "second", got)
	if !slices.Equal(ids(got), want) {
		t.Fatalf("second run delivered %v\nwant %v", ids(got), want)
	}
}

// TestFilters: include, exclude and tenants select what a sink receives;
// the others' positions still count as processed.
func TestFilters(t *testing.T) {
	h := newHarness(t)
	all, logged := &recorder{}, &recorder{}
	h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{
		{Name: "all", Sink: all},
		{Name: "logged", Sink: logged, Filter: pipeline.Filter{Include: []string{"incident_*"}, Exclude: []string{"incident_closed"}}},
	}})
	appendN(t, h, 4, 40)
	events := appendN(t, h, 5, 1) // the last transaction
	_ = events
	pgtest.Eventually(t, 10*time.Second, func() bool {
		got := all.snapshot()
		return len(got) > 0 && got[len(got)-1].ID == events[len(events)-1]
	}, "all events delivered")
	var want []string
	for _, e := range all.snapshot() {
		if strings.HasPrefix(e.Type, "incident_") && e.Type != "incident_closed" {
			want = append(want, e.ID)
		}
	}
	last := all.snapshot()[all.count()-1].Position()
	checkpointCaughtUp(t, h, "logged", last) // filtered events still move the checkpoint
	if got := ids(logged.snapshot()); !slices.Equal(got, want) {
		t.Fatalf("filtered sink got %d events, want %d", len(got), len(want))
	}
}

// TestRejectedEvents: a poison event goes to the dead-letter table under
// dead_letter and the sink goes on; under stop the sink stops just before it
// while the other sink goes on, and the slot keeps the WAL.
func TestRejectedEvents(t *testing.T) {
	h := newHarness(t)
	isPoison := func(e *cdc.Event) bool { return e.Type == "incident_categorised" }
	dead := &recorder{reject: isPoison}
	stopper := &recorder{reject: isPoison}
	healthy := &recorder{}
	r := h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{
		{Name: "dead", Sink: dead, OnError: pipeline.DeadLetter},
		{Name: "stopper", Sink: stopper, OnError: pipeline.Stop},
		{Name: "healthy", Sink: healthy},
	}})
	appendN(t, h, 6, 30)
	pgtest.Eventually(t, 10*time.Second, func() bool { return healthy.count() > 0 && dead.count() > 0 }, "delivery")
	last := appendN(t, h, 7, 1)
	pgtest.Eventually(t, 10*time.Second, func() bool {
		got := healthy.snapshot()
		return len(got) > 0 && got[len(got)-1].ID == last[len(last)-1]
	}, "healthy sink gets everything")
	everything := healthy.snapshot()
	var poison, clean []string
	firstPoison := -1
	for i, e := range everything {
		if isPoison(e) {
			poison = append(poison, e.ID)
			if firstPoison < 0 {
				firstPoison = i
			}
		} else {
			clean = append(clean, e.ID)
		}
	}
	if len(poison) == 0 {
		t.Fatal("test setup: the workload has no poison event")
	}
	pgtest.Eventually(t, 10*time.Second, func() bool { return dead.count() == len(clean) }, "dead_letter sink delivers all clean events")
	if got := ids(dead.snapshot()); !slices.Equal(got, clean) {
		t.Fatalf("dead_letter sink delivered %d events, want the %d clean ones", len(got), len(clean))
	}
	n, err := h.dead.Count(t.Context(), "test", "dead")
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(poison)) {
		t.Fatalf("%d dead letters, want %d", n, len(poison))
	}
	var payloadID, errText string
	if err := h.pool.QueryRow(t.Context(), `SELECT payload->>'id', error FROM cdc_dead_letters WHERE sink = 'dead' ORDER BY id LIMIT 1`).Scan(&payloadID, &errText); err != nil {
		t.Fatal(err)
	}
	if payloadID != poison[0] || !strings.Contains(errText, "refused (test)") {
		t.Fatalf("dead letter = %s %q, want %s with the sink's error", payloadID, errText, poison[0])
	}

	// The stopping sink has everything before the first poison event and
	// nothing after; its checkpoint sits just before it.
	if got, want := ids(stopper.snapshot()), ids(everything[:firstPoison]); !slices.Equal(got, want) {
		t.Fatalf("stopped sink delivered %d events, want the %d before the poison event", len(got), len(want))
	}
	if st := sinkStatus(r.p, "stopper"); !st.Stopped {
		t.Fatalf("sink not reported stopped: %+v", st)
	}
	cps, err := h.store.Load(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	bad := everything[firstPoison].Position()
	if cp := cps["stopper"].Position; cp.Compare(bad) >= 0 || (firstPoison > 0 && cp.Compare(everything[firstPoison-1].Position()) < 0) {
		t.Fatalf("stopped sink's checkpoint %s, want just before the poison event at %s", cp, bad)
	}
	if s := slotState(t, h); s.ConfirmedFlush > bad.LSN {
		t.Fatalf("slot confirmed %s past the stopped sink's poison event at %s", s.ConfirmedFlush, bad)
	}
	if err := r.stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("stop: %v", err)
	}
}

// TestReconnect: when the replication connection drops (the walsender is
// terminated), the stream reconnects with backoff and delivery goes on with
// nothing missed and nothing twice.
func TestReconnect(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	r := h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: rec}}})
	want := appendN(t, h, 1, 20)
	pgtest.Eventually(t, 10*time.Second, func() bool { return rec.count() == len(want) }, "delivery before the drop")
	for range 3 {
		if _, err := h.pool.Exec(t.Context(), `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1`, h.rcfg.Slot); err != nil {
			t.Fatal(err)
		}
		want = append(want, appendN(t, h, uint64(len(want)), 10)...)
		pgtest.Eventually(t, 15*time.Second, func() bool { return rec.count() >= len(want) && r.stream.State() == replication.StateStreaming }, "delivery after the drop")
	}
	got := rec.snapshot()
	checkOrdered(t, "rec", got)
	if !slices.Equal(ids(got), want) {
		t.Fatalf("delivered %d events, want the %d committed in order", len(got), len(want))
	}
}

// TestLargeTransactionResumesMidway: one transaction of 3000 events goes out
// in many batches; a sink stopped in the middle of it resumes, after a
// restart, right after its checkpoint inside the transaction.
func TestLargeTransactionResumesMidway(t *testing.T) {
	h := newHarness(t)
	const n, poisonAt = 3000, 1500
	rows, err := h.pool.Query(t.Context(), `SELECT gen_random_uuid()::text FROM generate_series(1, $1)`, n)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	rows.Close()
	poisonID := want[poisonAt]
	first := &recorder{reject: func(e *cdc.Event) bool { return e.ID == poisonID }}
	batch := cdc.BatchPolicy{MaxEvents: 100}
	r := h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: first, Batch: batch}}})
	_, err = h.pool.Exec(t.Context(), `SELECT mt_quick_append_events('0b0b0b0b-0000-4000-8000-000000000001', 'incident', '*DEFAULT*',
    $1::uuid[], array_fill('incident_noted'::varchar, ARRAY[$2::int]), array_fill('X'::varchar, ARRAY[$2::int]),
    array_fill('{"n":1}'::jsonb, ARRAY[$2::int]), array_fill(NULL::varchar, ARRAY[$2::int]),
    array_fill(NULL::varchar, ARRAY[$2::int]), array_fill(NULL::jsonb, ARRAY[$2::int]))`, want, n)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 10*time.Second, func() bool { return sinkStatus(r.p, "rec").Stopped }, "sink stops at the poison event")
	if got := ids(first.snapshot()); !slices.Equal(got, want[:poisonAt]) {
		t.Fatalf("first run delivered %d events, want the %d before the poison one", len(got), poisonAt)
	}
	if w := first.writeCount(); w < poisonAt/batch.MaxEvents {
		t.Fatalf("%d writes: the transaction was not split into batches", w)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	cps, _ := h.store.Load(t.Context(), "test")
	if idx := cps["rec"].Position.Index; idx != poisonAt-1 {
		t.Fatalf("checkpoint %s, want index %d inside the transaction", cps["rec"].Position, poisonAt-1)
	}

	second := &recorder{}
	h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: second, Batch: batch}}})
	pgtest.Eventually(t, 10*time.Second, func() bool { return second.count() >= n-poisonAt }, "the rest of the transaction")
	got := second.snapshot()
	checkOrdered(t, "second", got)
	if !slices.Equal(ids(got), want[poisonAt:]) {
		t.Fatalf("second run delivered %d events, want the %d from the poison event on", len(got), n-poisonAt)
	}
}

// TestTombstonesNotDelivered: Marten's tombstone rows (filler for the seq_ids
// of a failed append) are not events, but their transactions still move the
// checkpoint.
func TestTombstonesNotDelivered(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	r := h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: rec}}})
	// What Marten writes after a failed Rich-mode append: one tombstone per
	// lost seq_id, type 'tombstone', data {}.
	_, err := h.pool.Exec(t.Context(), `
INSERT INTO mt_streams (id, type, version, tenant_id) VALUES ('00000000-0000-0000-0000-000000000000', NULL, 0, '*DEFAULT*');
INSERT INTO mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, is_archived)
SELECT nextval('mt_events_sequence'), gen_random_uuid(), '00000000-0000-0000-0000-000000000000', g, '{}', 'tombstone', now(), '*DEFAULT*', 'Marten.Events.Tombstone', false
FROM generate_series(1, 3) g`)
	if err != nil {
		t.Fatal(err)
	}
	var tombstoneTx cdc.LSN
	pgtest.Eventually(t, 10*time.Second, func() bool {
		cps, _ := h.store.Load(t.Context(), "test")
		tombstoneTx = cps["rec"].Position.LSN
		return tombstoneTx != 0
	}, "the tombstones' transaction is checkpointed")
	events := appendN(t, h, 9, 2)
	pgtest.Eventually(t, 10*time.Second, func() bool { return rec.count() == len(events) }, "the events after the tombstones")
	if got := ids(rec.snapshot()); !slices.Equal(got, events) {
		t.Fatalf("delivered %v, want only the events %v", got, events)
	}
	if _, skipped := r.p.Received(); skipped != 3 {
		t.Fatalf("%d rows skipped, want the 3 tombstones", skipped)
	}
}
