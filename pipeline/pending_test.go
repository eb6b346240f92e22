package pipeline_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
)

// TestPendingSeq: with TrackPending, the seq_ids received after a sink's
// last durable event are reported until the sink has written them: a
// transaction that took lower seq_ids but committed later is pending after
// the one that committed first.
func TestPendingSeq(t *testing.T) {
	h := newHarness(t)
	held := &gate{blocked: make(chan struct{}), release: make(chan struct{})}
	r := h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "held", Sink: held}}, TrackPending: true})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// A takes its seq_ids first and commits last; each appends to a new
	// stream of its own (no lock between them).
	txA, _, seqsA := appendTx(t, ctx, h.pool, marten.NewHelpdesk(rand.New(rand.NewPCG(11, 11))))
	txB, _, seqsB := appendTx(t, ctx, h.pool, marten.NewHelpdesk(rand.New(rand.NewPCG(12, 12))))
	if err := txB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	<-held.blocked // B's events are in the sink's first write, which waits
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	total := int64(len(seqsA) + len(seqsB))
	pgtest.Eventually(t, 10*time.Second, func() bool { n, _ := r.p.Received(); return n == total }, "both transactions received")
	if got := r.p.PendingSeq(cdc.Position{}); got[marten.DefaultTenantID] != seqsA[0] {
		t.Fatalf("pending from the start: %v, want the lowest seq_id %d", got, seqsA[0])
	}
	close(held.release)
	pgtest.Eventually(t, 10*time.Second, func() bool { return held.count() == int(total) }, "everything written")
	got := held.snapshot()
	lastB := got[len(seqsB)-1].Position()
	if p := r.p.PendingSeq(lastB); p[marten.DefaultTenantID] != slices.Min(seqsA) {
		t.Fatalf("pending after B's last event: %v, want A's lowest seq_id %d (below B's %v)", p, slices.Min(seqsA), seqsB)
	}
	if p := r.p.PendingSeq(got[len(got)-1].Position()); len(p) != 0 {
		t.Fatalf("pending after the last event: %v, want none", p)
	}
}
