package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/retry"
)

// This file holds the checkpoint invariant of a sink, in one place: its
// flush LSN (what the slot may confirm on its behalf, flushLSN) only
// advances in attach and raiseFloor (a checkpoint loaded from the store)
// and in saveAt (after the store saved it, and so after Write returned nil
// for everything at or below it).

// flushLSN returns the flush LSN of the sink's saved checkpoint: every
// transaction ending at or before it is durable in the sink. Safe for
// concurrent use.
func (r *runner) flushLSN() cdc.LSN { return cdc.LSN(r.savedFlush.Load()) }

// advanceFlush raises the saved flush LSN to f; it never lowers it.
func (r *runner) advanceFlush(f cdc.LSN) {
	if r.flushLSN() < f {
		r.savedFlush.Store(uint64(f))
		r.progressed()
	}
}

// raiseFloor applies a loaded checkpoint: everything at or below it is done.
func (r *runner) raiseFloor(it *item) {
	if it.pos.Compare(r.consumed) > 0 {
		if len(r.batch) > 0 {
			// Another instance got further while this one lost the slot;
			// the pending events are at or below its checkpoint.
			r.clearBatch()
		}
		r.consumed = it.pos
		r.saved = it.pos
		r.consumedTime = it.commitTime
		if !it.commitTime.IsZero() {
			r.savedTime.Store(it.commitTime.UnixNano())
		}
	}
	r.consumedFlush = max(r.consumedFlush, it.end)
	if it.pos.Compare(r.durable()) > 0 {
		pos := it.pos
		r.durablePos.Store(&pos)
	}
	r.events = max(r.events, it.events)
	r.delivered.Store(r.events)
	r.advanceFlush(it.end)
}

// save saves the checkpoint at the consumed position.
func (r *runner) save(ctx context.Context) error {
	if r.consumed == r.saved {
		return nil
	}
	return r.saveAt(ctx, r.consumed, r.consumedFlush, r.consumedTime)
}

// saveStopped saves the checkpoint just before the rejected event.
func (r *runner) saveStopped(ctx context.Context, bad *cdc.Event) error {
	before := cdc.Position{LSN: bad.LSN, Index: bad.Index - 1}
	if bad.Index == 0 {
		before = cdc.Position{LSN: bad.LSN - 1, Index: cdc.EndOfTx}
	}
	r.clearBatch()
	if before.Compare(r.saved) <= 0 {
		return nil
	}
	// The flush LSN stays at the last saved one: the rejected event's
	// transaction and everything after it stay in the slot.
	return r.saveAt(ctx, before, r.flushLSN(), time.Time{})
}

// saveAt saves the checkpoint (pos, flush), retrying until the store takes
// it or ctx ends, and only then advances the flush LSN.
func (r *runner) saveAt(ctx context.Context, pos cdc.Position, flush cdc.LSN, commitTime time.Time) error {
	cp := r.checkpoint(pos, flush, commitTime)
	delay := retry.Backoff{Min: r.retryMin, Max: r.retryMax}
	for {
		// Each attempt is bounded: on a connection that went silent (a
		// partition, a frozen proxy) it would otherwise wait for the
		// kernel to give up, and the sink with it.
		sctx, cancel := context.WithTimeout(ctx, r.saveTimeout())
		err := r.checkpoints.Save(sctx, r.pipeline, r.name, cp)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, cdc.ErrCheckpointBackwards) {
			// Another instance holds the slot now and got further; this
			// one reloads the checkpoint when it gets the slot back.
			r.log.Warn("checkpoint not saved: it is already further (another instance took over?)", "err", err)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.failing.Store(true)
		r.health.fail(err)
		wait := delay.Next()
		r.log.Warn("could not save checkpoint; retrying", "err", err, "retry_in", wait)
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	if r.failing.Swap(false) {
		r.health.recover()
	}
	r.persisted = persisted{state: cp.State, since: cp.Since, err: cp.Error, pending: cp.Pending}
	r.saved = pos
	r.durablePos.Store(&pos)
	if !commitTime.IsZero() {
		r.savedTime.Store(commitTime.UnixNano())
	}
	if flush > r.flushLSN() {
		r.advanceFlush(flush)
		if r.advanced != nil {
			r.advanced() // the stream confirms it promptly
		}
	}
	return nil
}

// checkpoint is the row saved for position pos: the checkpoint, the
// progress figures and the sink's state.
func (r *runner) checkpoint(pos cdc.Position, flush cdc.LSN, commitTime time.Time) cdc.Checkpoint {
	state, since, msg := r.state()
	return cdc.Checkpoint{
		Position:   pos,
		Flush:      flush,
		CommitTime: commitTime,
		Events:     r.events,
		Pending:    r.pending(),
		Instance:   r.instance,
		State:      state,
		Since:      since,
		Error:      msg,
	}
}

// saveTimeout bounds one attempt to save a checkpoint or a dead letter:
// the stream's timeout when it has one, else 30 s.
func (r *runner) saveTimeout() time.Duration {
	if r.fence > 0 {
		return r.fence
	}
	return 30 * time.Second
}
