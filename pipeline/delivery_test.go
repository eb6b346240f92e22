package pipeline_test

import (
	"context"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
)

// appendTx appends the next events of a helpdesk incident in one
// transaction and returns their ids, with the transaction still open.
func appendTx(t *testing.T, ctx context.Context, pool *pgxpool.Pool, hd *marten.Helpdesk) (tx interface {
	Commit(context.Context) error
	Rollback(context.Context) error
}, eventIDs []string, seqIDs []int64) {
	t.Helper()
	stream, events := hd.Next()
	ptx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, seqs, err := marten.QuickAppend(ctx, ptx, "public", stream, "incident", marten.DefaultTenantID, events)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		eventIDs = append(eventIDs, e.ID)
	}
	return ptx, eventIDs, seqs
}

// workload is concurrent writers appending through mt_quick_append_events:
// some transactions stay open a while after taking their seq_ids, so later
// seq_ids commit first, and some roll back.
type workload struct {
	mu         sync.Mutex
	committed  []string   // event ids, in the order their writer committed them
	perWriter  [][]string // per writer, event ids in commit order
	rolledBack map[string]bool
}

func runWorkload(t *testing.T, pool *pgxpool.Pool, writers, txPerWriter int) *workload {
	t.Helper()
	w := &workload{perWriter: make([][]string, writers), rolledBack: make(map[string]bool)}
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(i), 7))
			hd := marten.NewHelpdesk(rng)
			for range txPerWriter {
				tx, ids, _ := appendTx(t, t.Context(), pool, hd)
				switch r := rng.IntN(10); {
				case r == 0:
					if err := tx.Rollback(t.Context()); err != nil {
						t.Error(err)
						return
					}
					w.mu.Lock()
					for _, id := range ids {
						w.rolledBack[id] = true
					}
					w.mu.Unlock()
					continue
				case r < 3:
					time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // commit late
				}
				if err := tx.Commit(t.Context()); err != nil {
					t.Error(err)
					return
				}
				w.mu.Lock()
				w.committed = append(w.committed, ids...)
				w.perWriter[i] = append(w.perWriter[i], ids...)
				w.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return w
}

// TestGapsCommitOrder: concurrent writers through mt_quick_append_events,
// with late commits and rollbacks. Every committed event arrives exactly
// once, in commit order, none of the rolled-back ones, and an event
// committed after a slow transaction took its seq_ids is delivered while
// that transaction is still open.
func TestGapsCommitOrder(t *testing.T) {
	h := newHarness(t)
	sink := &recorder{}
	h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: sink}}})
	ctx := t.Context()

	// A slow transaction takes its seq_ids first and stays open...
	// (Separate generators: separate streams, so no row lock is shared.)
	slow, slowIDs, slowSeqs := appendTx(t, ctx, h.pool, marten.NewHelpdesk(mrand.New(mrand.NewPCG(99, 1))))
	// ...while a later one commits.
	fast, fastIDs, fastSeqs := appendTx(t, ctx, h.pool, marten.NewHelpdesk(mrand.New(mrand.NewPCG(98, 1))))
	if err := fast.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if slowSeqs[len(slowSeqs)-1] >= fastSeqs[0] {
		t.Fatalf("test setup: slow seq_ids %v should precede fast %v", slowSeqs, fastSeqs)
	}
	// The later commit is delivered without waiting for the gap to close.
	pgtest.Eventually(t, 10*time.Second, func() bool { return sink.count() == len(fastIDs) },
		"events committed after an open transaction are delivered while it is still open")
	if got := ids(sink.snapshot()); !slices.Equal(got, fastIDs) {
		t.Fatalf("delivered %v, want %v", got, fastIDs)
	}

	// Concurrent writers while the slow transaction is still open.
	w := runWorkload(t, h.pool, 6, 40)
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want := len(fastIDs) + len(w.committed) + len(slowIDs)
	pgtest.Eventually(t, 20*time.Second, func() bool { return sink.count() >= want }, "all %d committed events delivered", want)

	got := sink.snapshot()
	checkOrdered(t, "rec", got)
	if len(got) != want {
		t.Fatalf("delivered %d events, want %d", len(got), want)
	}
	delivered := make(map[string]int, len(got))
	for i, e := range got {
		delivered[e.ID] = i
		if w.rolledBack[e.ID] {
			t.Fatalf("rolled-back event %s was delivered", e.ID)
		}
	}
	for _, id := range slices.Concat(fastIDs, w.committed, slowIDs) {
		if _, ok := delivered[id]; !ok {
			t.Fatalf("committed event %s not delivered", id)
		}
	}
	// Commit order: the slow transaction, committed last, comes last; each
	// writer's transactions come in the order that writer committed them.
	if tail := ids(got[len(got)-len(slowIDs):]); !slices.Equal(tail, slowIDs) {
		t.Fatalf("slow transaction delivered as %v, want last: %v", tail, slowIDs)
	}
	for i, seq := range w.perWriter {
		for j := 1; j < len(seq); j++ {
			if delivered[seq[j]] < delivered[seq[j-1]] {
				t.Fatalf("writer %d: event %s committed after %s but delivered before it", i, seq[j], seq[j-1])
			}
		}
	}
	// Events of one transaction share its commit LSN and commit time.
	if got[0].LSN == 0 || got[0].CommitTime.IsZero() {
		t.Fatalf("event without commit LSN or time: %+v", got[0])
	}
	checkpointCaughtUp(t, h, "rec", got[len(got)-1].Position())
}

// checkpointCaughtUp waits until the sink's checkpoint covers pos.
func checkpointCaughtUp(t *testing.T, h *harness, sink string, pos cdc.Position) {
	t.Helper()
	pgtest.Eventually(t, 10*time.Second, func() bool {
		cps, err := h.store.Load(t.Context(), "test")
		if err != nil {
			t.Fatal(err)
		}
		return cps[sink].Position.Compare(pos) >= 0
	}, "checkpoint of %s reaches %s", sink, pos)
}
