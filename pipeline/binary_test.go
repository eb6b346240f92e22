package pipeline_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
)

// TestBinaryBodies: an event whose body is only in Marten 9's bdata column
// (data is {}) cannot be delivered as JSON. It is never dropped silently:
// under dead_letter it is set aside with a clear error and the sink goes on;
// under stop the sink stops just before it. A JSON event with a bdata value
// is delivered as usual (bdata is ignored when data has the body).
func TestBinaryBodies(t *testing.T) {
	h := newHarness(t)
	if _, err := h.pool.Exec(t.Context(), `ALTER TABLE public.mt_events ADD COLUMN bdata bytea NULL`); err != nil {
		t.Fatal(err)
	}
	dead, stopper := &recorder{}, &recorder{}
	r := h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{
		{Name: "dead", Sink: dead, OnError: pipeline.DeadLetter},
		{Name: "stopper", Sink: stopper, OnError: pipeline.Stop},
	}})
	_, err := h.pool.Exec(t.Context(), `
INSERT INTO public.mt_streams (id, type, version, tenant_id) VALUES ('b1b2c3d4-0000-4000-8000-000000000001', 'incident', 4, '*DEFAULT*');
INSERT INTO public.mt_events (seq_id, id, stream_id, version, data, bdata, type, timestamp, tenant_id) VALUES
 (nextval('mt_events_sequence'), '018f0000-0000-7000-8000-000000000001', 'b1b2c3d4-0000-4000-8000-000000000001', 1, '{"A":1}', NULL,     'incident_logged', now(), '*DEFAULT*'),
 (nextval('mt_events_sequence'), '018f0000-0000-7000-8000-000000000002', 'b1b2c3d4-0000-4000-8000-000000000001', 2, '{"A":2}', '\x00ff', 'incident_noted',  now(), '*DEFAULT*'),
 (nextval('mt_events_sequence'), '018f0000-0000-7000-8000-000000000003', 'b1b2c3d4-0000-4000-8000-000000000001', 3, '{}',      '\x0a0b', 'incident_binary', now(), '*DEFAULT*'),
 (nextval('mt_events_sequence'), '018f0000-0000-7000-8000-000000000004', 'b1b2c3d4-0000-4000-8000-000000000001', 4, '{"A":4}', NULL,     'incident_closed', now(), '*DEFAULT*');`)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 10*time.Second, func() bool { return dead.count() == 3 }, "dead_letter sink delivers the JSON events")
	wantIDs := []string{"018f0000-0000-7000-8000-000000000001", "018f0000-0000-7000-8000-000000000002", "018f0000-0000-7000-8000-000000000004"}
	if got := ids(dead.snapshot()); !slices.Equal(got, wantIDs) {
		t.Fatalf("dead_letter sink delivered %v, want %v", got, wantIDs)
	}
	var payloadID, errText string
	var n int
	if err := h.pool.QueryRow(t.Context(), `SELECT count(*) OVER (), payload->>'id', error FROM cdc_dead_letters WHERE sink = 'dead'`).Scan(&n, &payloadID, &errText); err != nil {
		t.Fatal(err)
	}
	if n != 1 || payloadID != "018f0000-0000-7000-8000-000000000003" || !strings.Contains(errText, "bdata") {
		t.Fatalf("dead letters: %d, first %s %q; want one, the binary event, saying why", n, payloadID, errText)
	}
	pgtest.Eventually(t, 10*time.Second, func() bool { return sinkStatus(r.p, "stopper").Stopped }, "stop sink stops")
	if got := ids(stopper.snapshot()); !slices.Equal(got, wantIDs[:2]) {
		t.Fatalf("stopped sink delivered %v, want the two events before the binary one", got)
	}
	cps, err := h.store.Load(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	got := dead.snapshot()
	if cp, want := cps["stopper"].Position, (cdc.Position{LSN: got[1].LSN, Index: 1}); cp != want {
		t.Fatalf("stopped sink's checkpoint %s, want %s (just before the binary event)", cp, want)
	}
}
