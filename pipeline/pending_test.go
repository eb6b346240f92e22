package pipeline_test

import (
	"context"
	"math/rand/v2"
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
	if got := r.p.PendingSeq("held", cdc.Position{}); got[marten.DefaultTenantID] != seqsA[0] {
		t.Fatalf("pending from the start: %v, want the lowest seq_id %d", got, seqsA[0])
	}
	close(held.release)
	pgtest.Eventually(t, 10*time.Second, func() bool { return held.count() == int(total) }, "everything written")
	if got := held.snapshot(); got[0].SeqID != seqsB[0] || got[len(seqsB)].SeqID != seqsA[0] {
		t.Fatalf("delivered seq_ids %d then %d, want B's %d first (committed first), then A's %d", got[0].SeqID, got[len(seqsB)].SeqID, seqsB[0], seqsA[0])
	}
	// Once the sink's checkpoint passes them, nothing is pending, whatever
	// position the caller gives.
	pgtest.Eventually(t, 10*time.Second, func() bool { return len(r.p.PendingSeq("held", cdc.Position{})) == 0 }, "nothing pending once saved")
}
