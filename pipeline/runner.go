package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/internal/retry"
)

type itemKind uint8

const (
	itemEvent  itemKind = iota + 1 // an event
	itemCommit                     // the end of a transaction
	itemFloor                      // a loaded checkpoint: skip everything at or below it
)

// item is one entry of a chunk. Chunks are shared by every sink and never
// modified once dispatched.
type item struct {
	kind       itemKind
	pos        cdc.Position // event position; (commit LSN, EndOfTx) for a commit
	event      *cdc.Event   // itemEvent
	end        cdc.LSN      // itemCommit, itemFloor: end LSN of the transaction
	commitTime time.Time    // itemCommit, itemFloor
	events     int64        // itemFloor: events delivered so far
}

// runner is the goroutine of one sink: it batches, writes, retries and
// checkpoints.
type runner struct {
	p       *Pipeline
	name    string
	sink    cdc.Sink
	policy  cdc.BatchPolicy
	filter  *matcher
	onError OnError
	resume  Resumer
	log     *slog.Logger

	in        chan []item
	closeOnce sync.Once
	done      chan struct{}
	finalErr  error // set before done is closed

	// Owned by the stream goroutine.
	detached bool

	// Shared.
	detachedFlag atomic.Bool
	failing      atomic.Bool
	stopped      atomic.Bool
	savedFlush   atomic.Uint64 // flush LSN of the last saved checkpoint
	savedTime    atomic.Int64  // commit time of the last saved checkpoint, Unix nanoseconds
	queued       atomic.Int64  // events dispatched and not yet taken
	batched      atomic.Int64  // events in the pending batch
	missed       atomic.Int64  // events not dispatched while detached
	delivered    atomic.Int64

	// Owned by the runner goroutine.
	consumed      cdc.Position // last position taken
	consumedFlush cdc.LSN      // end LSN of the last commit taken
	consumedTime  time.Time    // commit time of the last commit taken
	saved         cdc.Position // position of the last saved checkpoint
	events        int64        // events delivered, as saved in the checkpoint row
	batch         []*cdc.Event
	batchBytes    int
	timer         *time.Timer
	timerOn       bool
	resyncAsked   bool
}

func newRunner(p *Pipeline, sc SinkConfig, m *matcher) *runner {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &runner{
		p:       p,
		name:    sc.Name,
		sink:    sc.Sink,
		policy:  sc.Batch.WithDefaults(),
		filter:  m,
		onError: sc.OnError,
		resume:  sc.Resume,
		log:     p.log.With("sink", sc.Name),
		in:      make(chan []item, p.cfg.QueueChunks),
		done:    make(chan struct{}),
		timer:   t,
	}
}

func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	save := time.NewTicker(r.p.cfg.CheckpointInterval)
	defer save.Stop()
	for {
		select {
		case c, ok := <-r.in:
			if !ok {
				r.finalErr = r.finish(ctx)
				return
			}
			if err := r.take(ctx, c); err != nil {
				return // ctx ended
			}
		case <-r.timer.C:
			r.timerOn = false
			if err := r.flush(ctx); err != nil {
				return
			}
		case <-save.C:
			if len(r.batch) == 0 && r.consumed != r.saved && !r.stopped.Load() {
				if err := r.save(ctx); err != nil {
					return
				}
			}
		case <-ctx.Done():
			return
		}
		r.maybeResync()
	}
}

// maybeResync asks for the stream to be re-read once a detached sink has
// written everything it had.
func (r *runner) maybeResync() {
	if !r.detachedFlag.Load() {
		r.resyncAsked = false
		return
	}
	if r.resyncAsked || r.stopped.Load() || len(r.in) > 0 || len(r.batch) > 0 || r.failing.Load() {
		return
	}
	r.resyncAsked = true
	r.log.Info("sink recovered; catching up from its checkpoint", "flush_lsn", cdc.LSN(r.savedFlush.Load()).String())
	r.p.requestRestart()
}

// take processes one chunk.
func (r *runner) take(ctx context.Context, c []item) error {
	for i := range c {
		it := &c[i]
		if it.kind == itemEvent {
			r.queued.Add(-1)
		}
		if it.kind == itemFloor {
			r.raiseFloor(it)
			continue
		}
		if r.stopped.Load() || it.pos.Compare(r.consumed) <= 0 {
			continue // stopped, or already taken before a restart
		}
		if it.kind == itemEvent && it.event.BData != nil && r.filter.match(it.event) {
			if err := r.refuse(ctx, it.event, cdc.ErrBinaryBody); err != nil {
				return err
			}
			if r.stopped.Load() {
				continue
			}
		}
		r.consumed = it.pos
		switch it.kind {
		case itemCommit:
			r.consumedFlush = it.end
			r.consumedTime = it.commitTime
		case itemEvent:
			if it.event.BData != nil || !r.filter.match(it.event) {
				continue
			}
			r.add(it.event)
			if len(r.batch) >= r.policy.MaxEvents || r.batchBytes >= r.policy.MaxBytes {
				if err := r.flush(ctx); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// raiseFloor applies a loaded checkpoint: everything at or below it is done.
func (r *runner) raiseFloor(it *item) {
	if it.pos.Compare(r.consumed) > 0 {
		if len(r.batch) > 0 {
			// Another instance got further while this one lost the slot;
			// the pending events are at or below its checkpoint.
			r.batch = r.batch[:0]
			r.batchBytes = 0
			r.batched.Store(0)
		}
		r.consumed = it.pos
		r.saved = it.pos
		r.consumedTime = it.commitTime
		if !it.commitTime.IsZero() {
			r.savedTime.Store(it.commitTime.UnixNano())
		}
	}
	r.consumedFlush = max(r.consumedFlush, it.end)
	r.events = max(r.events, it.events)
	r.delivered.Store(r.events)
	if cdc.LSN(r.savedFlush.Load()) < it.end {
		r.savedFlush.Store(uint64(it.end))
	}
}

func (r *runner) add(e *cdc.Event) {
	if len(r.batch) == 0 && !r.timerOn {
		r.timer.Reset(r.policy.MaxWait)
		r.timerOn = true
	}
	r.batch = append(r.batch, e)
	r.batchBytes += e.Size()
	r.batched.Store(int64(len(r.batch)))
}

// flush writes the pending batch, retrying until it succeeds or ctx ends,
// then saves the checkpoint.
func (r *runner) flush(ctx context.Context) error {
	if r.timerOn {
		r.timer.Stop()
		r.timerOn = false
	}
	if len(r.batch) > 0 {
		if err := r.write(ctx); err != nil {
			return err
		}
	}
	if r.stopped.Load() {
		return nil
	}
	return r.save(ctx)
}

// write delivers r.batch. On return without error every event of it is
// durable or dead-lettered, or the sink is stopped.
func (r *runner) write(ctx context.Context) error {
	delay := retry.Backoff{Min: r.p.cfg.RetryMin, Max: r.p.cfg.RetryMax}
	events := r.batch
	for len(events) > 0 {
		err := r.sink.Write(ctx, cdc.Batch{Events: events})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var rej *cdc.RejectedError
		if errors.As(err, &rej) && rej.Index >= 0 && rej.Index < len(events) {
			bad := events[rej.Index]
			if r.onError == Stop {
				r.stop(bad, rej.Err)
				r.delivered.Add(int64(rej.Index))
				r.events += int64(rej.Index)
				return r.saveStopped(ctx, bad)
			}
			if err := r.deadLetter(ctx, bad, rej.Err); err != nil {
				return err
			}
			r.delivered.Add(int64(rej.Index))
			r.events += int64(rej.Index)
			events = events[rej.Index+1:]
			delay.Reset()
			continue
		}
		r.failing.Store(true)
		wait := delay.Next()
		r.log.Warn("sink write failed; retrying", "events", len(events), "err", err, "retry_in", wait)
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	if r.failing.Swap(false) {
		r.log.Info("sink write succeeded again")
	}
	r.delivered.Add(int64(len(events)))
	r.events += int64(len(events))
	r.batch = r.batch[:0]
	r.batchBytes = 0
	r.batched.Store(0)
	return nil
}

// refuse handles an event no sink can take (see cdc.ErrBinaryBody) as if
// the sink had rejected it: what is pending is written first, then on_error
// decides. It must be called before the event is consumed.
func (r *runner) refuse(ctx context.Context, bad *cdc.Event, cause error) error {
	if err := r.flush(ctx); err != nil {
		return err
	}
	if r.stopped.Load() {
		return nil
	}
	if r.onError == Stop {
		r.stop(bad, cause)
		return r.saveStopped(ctx, bad)
	}
	return r.deadLetter(ctx, bad, cause)
}

func (r *runner) stop(bad *cdc.Event, cause error) {
	r.stopped.Store(true)
	r.log.Error("sink stopped: an event was rejected permanently (on_error: stop); fix the cause and restart, or set on_error: dead_letter",
		"position", bad.Position().String(), "event_id", bad.ID, "stream_id", bad.StreamID, "type", bad.Type, "err", cause)
}

// saveStopped saves the checkpoint just before the rejected event.
func (r *runner) saveStopped(ctx context.Context, bad *cdc.Event) error {
	before := cdc.Position{LSN: bad.LSN, Index: bad.Index - 1}
	if bad.Index == 0 {
		before = cdc.Position{LSN: bad.LSN - 1, Index: cdc.EndOfTx}
	}
	r.batch = r.batch[:0]
	r.batchBytes = 0
	r.batched.Store(0)
	if before.Compare(r.saved) <= 0 {
		return nil
	}
	// The flush LSN stays at the last saved one: the rejected event's
	// transaction and everything after it stay in the slot.
	return r.saveAt(ctx, before, cdc.LSN(r.savedFlush.Load()), time.Time{})
}

func (r *runner) deadLetter(ctx context.Context, e *cdc.Event, cause error) error {
	delay := retry.Backoff{Min: r.p.cfg.RetryMin, Max: r.p.cfg.RetryMax}
	for {
		err := r.p.cfg.DeadLetters.Write(ctx, r.p.cfg.Name, r.name, e, cause)
		if err == nil {
			r.log.Warn("event rejected; written to the dead-letter table",
				"position", e.Position().String(), "event_id", e.ID, "type", e.Type, "err", cause)
			return nil
		}
		r.failing.Store(true)
		wait := delay.Next()
		r.log.Warn("could not write a dead letter; retrying", "event_id", e.ID, "err", err, "retry_in", wait)
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// save saves the checkpoint at the consumed position.
func (r *runner) save(ctx context.Context) error {
	if r.consumed == r.saved {
		return nil
	}
	return r.saveAt(ctx, r.consumed, r.consumedFlush, r.consumedTime)
}

func (r *runner) saveAt(ctx context.Context, pos cdc.Position, flush cdc.LSN, commitTime time.Time) error {
	cp := checkpoint.Checkpoint{
		Position:   pos,
		Flush:      flush,
		CommitTime: commitTime,
		Events:     r.events,
		Pending:    r.queued.Load() + r.batched.Load() + r.missed.Load(),
		Instance:   r.p.cfg.Instance,
	}
	delay := retry.Backoff{Min: r.p.cfg.RetryMin, Max: r.p.cfg.RetryMax}
	for {
		err := r.p.cfg.Checkpoints.Save(ctx, r.p.cfg.Name, r.name, cp)
		if err == nil {
			break
		}
		if errors.Is(err, checkpoint.ErrBackwards) {
			// Another instance holds the slot now and got further; this
			// one reloads the checkpoint when it gets the slot back.
			r.log.Warn("checkpoint not saved: it is already further (another instance took over?)", "err", err)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.failing.Store(true)
		wait := delay.Next()
		r.log.Warn("could not save checkpoint; retrying", "err", err, "retry_in", wait)
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	r.failing.Store(false)
	r.saved = pos
	if !commitTime.IsZero() {
		r.savedTime.Store(commitTime.UnixNano())
	}
	if cdc.LSN(r.savedFlush.Load()) < flush {
		r.savedFlush.Store(uint64(flush))
	}
	return nil
}

// finish writes what is pending when the queue is closed (shutdown).
func (r *runner) finish(ctx context.Context) error {
	if r.stopped.Load() {
		return nil
	}
	if err := r.flush(ctx); err != nil {
		return fmt.Errorf("sink %s: final write: %w", r.name, err)
	}
	return nil
}
