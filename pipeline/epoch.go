package pipeline

import (
	"context"
)

// This file holds the runner's epochs: each connection of the stream is
// one. When the stream abandons a connection (cdc.Consumer.Abandon), the
// runner's writes of it are cancelled and what it holds of it is dropped;
// pages of a backfill are not of any connection and go on.

// abandon drops what the runner holds of the current connection, and with
// cancel its write in flight too: the stream lost the slot. Without cancel
// the write in flight finishes (and is saved) before the runner drops the
// rest (epochContext cancels the old context then). Called by the stream
// goroutine; it does not block.
func (r *runner) abandon(cancel bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch++
	if cancel && r.cancelEpoch != nil {
		r.cancelEpoch()
	}
}

// currentEpoch returns the epoch chunks are tagged with now.
func (r *runner) currentEpoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch
}

// epochContext returns the context of the current epoch's writes (ended by
// abandon or by parent) and the epoch.
func (r *runner) epochContext(parent context.Context) (context.Context, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epochCtx == nil || r.ctxEpoch != r.epoch {
		if r.cancelEpoch != nil {
			r.cancelEpoch()
		}
		r.epochCtx, r.cancelEpoch = context.WithCancel(parent)
		r.ctxEpoch = r.epoch
	}
	return r.epochCtx, r.ctxEpoch
}

// reset drops what the runner holds of an abandoned connection: it goes
// back to its last saved checkpoint. A sink fed by a backfill holds nothing
// of the connection: it goes on (Abort stops a backfill).
func (r *runner) reset() {
	if r.fed() {
		return
	}
	r.drop()
}

// fed reports whether the sink takes a backfill's pages, not the live
// stream.
func (r *runner) fed() bool { return r.backfilling.Load() && r.catchUp == nil }

// drop forgets what is not saved: the pending batch and the positions
// taken since the last checkpoint.
func (r *runner) drop() {
	if r.timerOn {
		r.timer.Stop()
		r.timerOn = false
	}
	r.clearBatch()
	r.consumed = r.saved
	r.consumedFlush = r.flushLSN()
	r.consumedTime = unixNano(r.savedTime.Load())
	r.resyncAsked = false
	if !r.resuming.Load() && r.failing.Swap(false) {
		r.health.recover()
	}
}
