package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/martencdc/cdc"
)

// health is what a runner reports of its state: since when it fails and
// why, when it was detached, where it stopped. Safe for concurrent use.
type health struct {
	mu       sync.Mutex
	failing  time.Time // zero unless failing
	detached time.Time // zero unless detached
	stopped  time.Time // zero unless stopped
	err      string    // the last failure, or why it stopped
}

// fail records a failure; the first of a run of failures sets the time.
func (h *health) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing.IsZero() {
		h.failing = time.Now()
	}
	h.err = err.Error()
}

// recover records that writes succeed again.
func (h *health) recover() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing, h.detached = time.Time{}, time.Time{}
	if h.stopped.IsZero() {
		h.err = ""
	}
}

func (h *health) detach() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.detached.IsZero() {
		h.detached = time.Now()
	}
}

func (h *health) attach() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.detached = time.Time{}
}

func (h *health) stop(msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped, h.err = time.Now(), msg
}

// state returns the runner's state, since when, and the error behind it.
func (r *runner) state() (cdc.SinkState, time.Time, string) {
	h := &r.health
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.stopped.IsZero():
		return cdc.SinkStopped, h.stopped, h.err
	case r.detachedFlag.Load() && !h.detached.IsZero():
		return cdc.SinkDetached, h.detached, h.err
	case r.failing.Load() && !h.failing.IsZero():
		return cdc.SinkFailing, h.failing, h.err
	case r.backfilling.Load() || r.catchUpH.Load() != 0:
		return cdc.SinkBackfilling, time.Time{}, ""
	}
	return cdc.SinkOK, time.Time{}, ""
}

// persistState writes the runner's state into its checkpoint row when it
// changed since the last save (and, for a stopped sink, when its pending
// count did), without moving the checkpoint. It is best effort: one try,
// bounded, since the checkpoint database may be what fails.
func (r *runner) persistState(ctx context.Context) {
	state, since, msg := r.state()
	pending := r.pending()
	if state == r.persisted.state && since.Equal(r.persisted.since) && msg == r.persisted.err &&
		(state != cdc.SinkStopped || pending == r.persisted.pending) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cp := r.checkpoint(r.saved, r.flushLSN(), unixNano(r.savedTime.Load()))
	if err := r.checkpoints.Save(ctx, r.pipeline, r.name, cp); err != nil {
		return
	}
	r.persisted = persisted{state: cp.State, since: cp.Since, err: cp.Error, pending: cp.Pending}
}

// persisted is what the checkpoint row says of the runner's state.
type persisted struct {
	state   cdc.SinkState
	since   time.Time
	err     string
	pending int64
}
