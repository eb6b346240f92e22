package pipeline_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

// fixedResume is a sink's own checkpoint at a fixed position.
type fixedResume struct{ pos cdc.Position }

func (f fixedResume) Checkpoint(context.Context) (cdc.Position, bool, error) { return f.pos, true, nil }

// TestResumeFromSinkCheckpoint: a sink whose target keeps its own
// checkpoint (committed with its writes) resumes from it when it is ahead
// of the checkpoint table, as after a crash between the two: it gets
// exactly the events after it.
func TestResumeFromSinkCheckpoint(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	probeCfg := h.rcfg
	probeCfg.Slot = "cdc_probe"
	if _, err := replication.Setup(ctx, h.pool, probeCfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _, _ = replication.Teardown(context.Background(), h.pool, probeCfg) })
	want := appendN(t, h, 9, 6)

	// Learn the events' positions through another slot.
	mainCfg := h.rcfg
	h.rcfg = probeCfg
	probe := &recorder{}
	rp := h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "probe", Sink: probe}}})
	pgtest.Eventually(t, 10*time.Second, func() bool { return probe.count() == len(want) }, "probe delivery")
	if err := rp.stop(); err != nil {
		t.Fatal(err)
	}
	h.rcfg = mainCfg
	events := probe.snapshot()
	k := len(events) / 2

	rec := &recorder{}
	h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "target", Sink: rec, Resume: fixedResume{events[k-1].Position()}}}})
	pgtest.Eventually(t, 10*time.Second, func() bool { return rec.count() >= len(events)-k }, "delivery after the sink's own checkpoint")
	if got, want := ids(rec.snapshot()), ids(events[k:]); !slices.Equal(got, want) {
		t.Fatalf("delivered %d events, want the %d after the sink's own checkpoint", len(got), len(want))
	}
}
