package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/retry"
)

// This file is the runner's write path: taking chunks, batching, writing
// with retries, and what happens to a rejected event.

// take processes one chunk.
func (r *runner) take(ctx context.Context, ch chunk) error {
	c := ch.items
	r.queued.Add(-countEvents(c))
	if !ch.backfill {
		r.takeArmed()
	}
	if ch.backfill != r.backfilling.Load() {
		// Live events while a backfill holds the sink (it reads them again
		// once handed back; its checkpoint it takes), or pages of a
		// backfill it has left.
		if !ch.backfill {
			r.missed.Add(countEvents(c))
			for i := range c {
				if c[i].kind == itemFloor {
					r.raiseFloor(&c[i])
				}
			}
		}
		return nil
	}
	for i := range c {
		it := &c[i]
		if it.kind == itemFloor {
			r.raiseFloor(it)
			continue
		}
		if it.kind == itemIdle {
			// Group commit: the stream has nothing more for now. When
			// more chunks wait behind this one the stream went on while
			// the sink was busy: they join the batch, and the idle marker
			// they end with (or the linger) writes it.
			if len(r.batch) > 0 && len(r.in) == 0 {
				if err := r.flush(ctx); err != nil {
					return err
				}
			}
			continue
		}
		if cu := r.catchUp; cu != nil && (it.pos.LSN >= cu.h || it.kind == itemFrontier && it.end >= cu.h) {
			// Every live event before the hand-off LSN is taken; the
			// rest of the chunk comes again after the backfill.
			return r.caughtUp(ctx)
		}
		if it.kind == itemFrontier || it.pos.Compare(r.consumed) <= 0 {
			continue // a marker, or already taken before a restart
		}
		if r.stopped.Load() {
			if it.kind == itemEvent && r.filter.match(it.event) {
				r.missed.Add(1) // pending behind the rejected event
			}
			continue
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
			if it.event.BData != nil || !r.filter.match(it.event) || !r.wantsLive(ch, it.event) {
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

// errAborted ends the write of a backfill's batch that the backfill
// aborted: the sink drops it.
var errAborted = errors.New("backfill aborted")

// awaitFresh waits until the stream has heard from the server lately: an
// instance cut off from PostgreSQL (a partition, a pause) may have lost the
// slot to another instance, which delivers the same events; it must not
// write a stale tail after them. It returns when the stream hears from the
// server again, or drains on shutdown, or the connection is abandoned
// (ctx), or the backfill of the batch is aborted.
func (r *runner) awaitFresh(ctx context.Context) error {
	if r.fresh == nil || r.fresh() {
		return nil
	}
	r.log.Warn("the stream has not heard from PostgreSQL lately; the sink waits before writing (another instance may hold the slot now)")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !r.fresh() {
		if r.fed() && r.batchGen != r.bfGen.Load() {
			return errAborted
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// wantsLive reports whether a live event goes to the sink while a backfill
// is involved: not when the backfill covers it.
func (r *runner) wantsLive(ch chunk, e *cdc.Event) bool {
	switch {
	case ch.backfill:
		return true
	case r.catchUp != nil:
		return !r.catchUp.scope(e)
	case r.handoff != nil:
		ok := r.handoff.live(e)
		if e.LSN >= r.handoff.end() {
			r.handoff = nil // passed: every event from here on is live
		}
		return ok
	}
	return true
}

func (r *runner) add(e *cdc.Event) {
	if len(r.batch) == 0 && !r.timerOn {
		r.timer.Reset(r.policy.MaxWait)
		r.timerOn = true
	}
	r.batch = append(r.batch, e)
	r.batchBytes += e.Size()
	if r.fed() {
		r.batchGen = r.bfGen.Load()
	}
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
	// What is written is saved even if the connection is abandoned
	// meanwhile: dropping the save would write it again.
	return r.save(r.base)
}

// write delivers r.batch. On return without error every event of it is
// durable or dead-lettered, or the sink is stopped.
func (r *runner) write(ctx context.Context) error {
	delay := retry.Backoff{Min: r.retryMin, Max: r.retryMax}
	events := r.batch
	for len(events) > 0 {
		if err := r.awaitFresh(ctx); err != nil {
			return err
		}
		err := r.Sink.Write(ctx, cdc.Batch{Events: events})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var rej *cdc.RejectedError
		if errors.As(err, &rej) && rej.Index >= 0 && rej.Index < len(events) {
			bad := events[rej.Index]
			if r.OnError == Stop {
				r.stop(bad, rej.Err)
				// The rejected event and the rest of the batch are pending
				// behind the stop.
				r.missed.Add(int64(len(events) - rej.Index))
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
		first := !r.failing.Swap(true)
		r.health.fail(err)
		if first {
			r.persistState(ctx)
		}
		wait := delay.Next()
		r.log.Warn("sink write failed; retrying", "events", len(events), "err", err, "retry_in", wait)
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	if r.failing.Swap(false) {
		r.health.recover()
		r.log.Info("sink write succeeded again")
	}
	r.delivered.Add(int64(len(events)))
	r.events += int64(len(events))
	r.clearBatch()
	return nil
}

func (r *runner) clearBatch() {
	r.batch = r.batch[:0]
	r.batchBytes = 0
	r.batched.Store(0)
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
	if r.OnError == Stop {
		r.stop(bad, cause)
		r.missed.Add(1) // pending behind the stop
		return r.saveStopped(ctx, bad)
	}
	return r.deadLetter(ctx, bad, cause)
}

func (r *runner) stop(bad *cdc.Event, cause error) {
	r.stopped.Store(true)
	r.health.stop(fmt.Sprintf("event %s (%s, stream %s) at %s rejected: %v", bad.ID, bad.Type, bad.StreamID, bad.Position(), cause))
	r.log.Error("sink stopped: an event was rejected permanently (on_error: stop); fix the cause and restart, or set on_error: dead_letter",
		"position", bad.Position().String(), "event_id", bad.ID, "stream_id", bad.StreamID, "type", bad.Type, "err", cause)
}

func (r *runner) deadLetter(ctx context.Context, e *cdc.Event, cause error) error {
	delay := retry.Backoff{Min: r.retryMin, Max: r.retryMax}
	for {
		dctx, cancel := context.WithTimeout(ctx, r.saveTimeout())
		err := r.deadLetters.Write(dctx, r.pipeline, r.name, e, cause)
		cancel()
		if err == nil {
			r.log.Warn("event rejected; written to the dead-letter table",
				"position", e.Position().String(), "event_id", e.ID, "type", e.Type, "err", cause)
			return nil
		}
		r.failing.Store(true)
		r.health.fail(err)
		wait := delay.Next()
		r.log.Warn("could not write a dead letter; retrying", "event_id", e.ID, "err", err, "retry_in", wait)
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// finish writes what is pending when the input is closed (shutdown).
func (r *runner) finish(ctx context.Context) error {
	if r.stopped.Load() {
		return nil
	}
	if err := r.flush(ctx); err != nil {
		return fmt.Errorf("final write: %w", err)
	}
	return nil
}
