package pipeline_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
)

// longWait is a batch linger far longer than any test waits: a batch
// written before it was written because the stream went idle, or because it
// was full.
const longWait = 10 * time.Second

// batchLog is a test sink that records the size of every batch written.
type batchLog struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchLog) Write(_ context.Context, batch cdc.Batch) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, len(batch.Events))
	return nil
}

func (b *batchLog) Close(context.Context) error { return nil }

// written returns the sizes of the batches written so far and their sum.
func (b *batchLog) written() (sizes []int, events int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.sizes {
		events += n
	}
	return slices.Clone(b.sizes), events
}

// firstTransaction returns the messages of the capture up to the commit of
// the first transaction that has events, and how many it has.
func firstTransaction(t *testing.T, msgs [][]byte) ([][]byte, int) {
	t.Helper()
	d := decoder.New(decoder.Config{})
	events := 0
	for i, b := range msgs {
		m, err := d.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case m.Kind == decoder.KindEvent:
			events++
		case m.Kind == decoder.KindCommit && events > 0:
			return msgs[:i+1], events
		}
	}
	t.Fatal("the capture has no transaction with events")
	return nil, 0
}

// TestGroupCommit: a batch is written as soon as the stream goes idle, long
// before its linger (MaxWait) is over, and while the stream hands over
// transactions without going idle (a catch-up) batches fill to MaxEvents.
func TestGroupCommit(t *testing.T) {
	msgs := readCapture(t, capture)
	all, _ := decodeCapture(t, msgs)
	first, firstEvents := firstTransaction(t, msgs)
	const maxEvents = 3
	tests := []struct {
		name string
		msgs [][]byte
		idle bool // the source goes idle after the messages
		// want is how many events are written before the linger is over;
		// every batch but the last of them is full when full is set.
		want int
		full bool
	}{
		{name: "one transaction then idle", msgs: first, idle: true, want: firstEvents},
		{name: "busy stream then idle", msgs: msgs, idle: true, want: len(all), full: true},
		{name: "busy stream", msgs: msgs, want: len(all) / maxEvents * maxEvents, full: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &batchLog{}
			p, err := pipeline.New(pipeline.Config{
				Name: "core", Checkpoints: &memCheckpoints{}, Logger: testLogger(t),
				Sinks: []pipeline.SinkConfig{{Name: "log", Sink: sink, Batch: cdc.BatchPolicy{MaxEvents: maxEvents, MaxWait: longWait}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- p.Run(ctx, sourceFunc(func(ctx context.Context, c cdc.Consumer) error {
					if err := c.Open(ctx); err != nil {
						return err
					}
					for _, b := range tc.msgs {
						if err := c.Message(ctx, b); err != nil {
							return err
						}
					}
					if tc.idle {
						c.Idle()
					}
					<-ctx.Done()
					return c.Drain(context.WithoutCancel(ctx))
				}))
			}()
			pgtest.Eventually(t, longWait/2, func() bool {
				_, n := sink.written()
				return n >= tc.want
			}, "%d events written before the linger is over", tc.want)
			sizes, n := sink.written()
			if n != tc.want {
				t.Fatalf("%d events written (batches %v), want %d", n, sizes, tc.want)
			}
			if tc.full {
				for i, s := range sizes[:len(sizes)-1] {
					if s != maxEvents {
						t.Fatalf("batch %d has %d events, want %d (batches %v): the stream was busy", i, s, maxEvents, sizes)
					}
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestGroupCommitLive: with the real stream, a transaction appended to an
// idle event store reaches the sink long before the batch's linger is over,
// and the slot confirms it long before the next status update is due.
func TestGroupCommitLive(t *testing.T) {
	h := newHarness(t)
	h.rcfg.StatusInterval = longWait
	rec := &recorder{}
	h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: rec, Batch: cdc.BatchPolicy{MaxWait: longWait}}}})
	total := 0
	for round, txs := range []int{1, 20} { // one transaction, then a burst
		total += len(appendN(t, h, uint64(round+1), txs))
		pgtest.Eventually(t, longWait/2, func() bool { return rec.count() == total },
			"round %d: %d events delivered before the linger is over", round, total)
		last := rec.snapshot()[total-1].Position()
		var end cdc.LSN
		pgtest.Eventually(t, longWait/2, func() bool {
			cps, err := h.store.Load(t.Context(), "test")
			if err != nil {
				t.Fatal(err)
			}
			end = cps["rec"].Flush
			return cps["rec"].Position.Compare(last) > 0
		}, "round %d: the checkpoint passes %s", round, last)
		pgtest.Eventually(t, longWait/2, func() bool { return slotState(t, h).ConfirmedFlush >= end },
			"round %d: the slot confirms %s before the status interval is over", round, end)
	}
}
