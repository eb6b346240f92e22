package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/martencdc/cdc"
)

// runnerConfig is what a runner needs: its sink's configuration and the
// pipeline's stores and settings.
type runnerConfig struct {
	SinkConfig
	filter      *matcher
	pipeline    string      // names the checkpoint rows and dead letters
	instance    string      // written into checkpoint rows
	checkpoints Checkpoints // where the sink's checkpoint is saved
	deadLetters DeadLetters // nil unless OnError is DeadLetter
	retryMin    time.Duration
	retryMax    time.Duration
	saveEvery   time.Duration // how often a position that moved without a write is saved
	stall       time.Duration // how long enqueue waits for a sink that is not failing
	queue       int           // chunks that may wait
	restart     func()        // asks the stream to re-read the slot
	log         *slog.Logger
}

// runner is one sink's goroutine: it batches, writes, retries and saves the
// sink's checkpoint (batch.go, checkpoint.go).
//
// The stream goroutine talks to it only through enqueue, attach, flushLSN,
// closeInput and wait; anyone may call snapshot.
type runner struct {
	runnerConfig
	name   string
	policy cdc.BatchPolicy

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

func newRunner(cfg runnerConfig) *runner {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &runner{
		runnerConfig: cfg,
		name:         cfg.Name,
		policy:       cfg.Batch.WithDefaults(),
		in:           make(chan []item, cfg.queue),
		done:         make(chan struct{}),
		timer:        t,
	}
}

// ownCheckpoint returns the checkpoint the sink starts from: cp (from the
// checkpoint table, ok when it has a row), or the sink's own checkpoint when
// that is further (a crash between the target's commit and the table's save).
func (r *runner) ownCheckpoint(ctx context.Context, cp cdc.Checkpoint, ok bool) (cdc.Checkpoint, bool, error) {
	if r.Resume == nil {
		return cp, ok, nil
	}
	own, has, err := r.Resume.Checkpoint(ctx)
	if err != nil {
		return cp, ok, fmt.Errorf("sink %s: read its checkpoint: %w", r.name, err)
	}
	if has && own.Compare(cp.Position) > 0 {
		r.log.Info("sink's own checkpoint is ahead of the checkpoint table; it resumes from its own",
			"position", own.String(), "table_position", cp.Position.String())
		cp.Position, ok = own, true
	}
	return cp, ok, nil
}

// attach re-attaches the sink when streaming (re)starts, with cp its
// loaded checkpoint (ok when there is one); first is true on the first
// start of the pipeline.
func (r *runner) attach(ctx context.Context, cp cdc.Checkpoint, ok, first bool) error {
	if first {
		// Before the first chunk the runner is idle: set its starting
		// point directly so that Confirmable sees it at once.
		r.advanceFlush(cp.Flush)
		if ok {
			r.log.Info("sink resumes from checkpoint", "position", cp.Position.String(), "lsn", cp.Flush.String())
		} else {
			r.log.Info("sink has no checkpoint; it starts with what the slot sends next")
		}
	}
	r.detached = false
	r.detachedFlag.Store(false)
	r.missed.Store(0)
	if ok || first {
		return r.enqueue(ctx, []item{floorItem(cp)})
	}
	return nil
}

// enqueue hands a chunk to the sink. A detached sink only counts the events
// it misses. The sink is detached when it is failing with a full queue, or
// does not take the chunk within its stall timeout: the stream goes on
// without it.
func (r *runner) enqueue(ctx context.Context, c []item) error {
	n := countEvents(c)
	if r.detached {
		r.missed.Add(n)
		return nil
	}
	r.queued.Add(n)
	select {
	case r.in <- c:
		return nil
	default:
	}
	deadline := time.Now().Add(r.stall)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if r.failing.Load() || !time.Now().Before(deadline) {
			r.queued.Add(-n)
			r.missed.Add(n)
			r.detach()
			return nil
		}
		select {
		case r.in <- c:
			return nil
		case <-poll.C:
		case <-ctx.Done():
			r.queued.Add(-n)
			return ctx.Err()
		}
	}
}

// detach stops handing the sink chunks; it asks for a restart once it has
// written what it holds (maybeResync).
func (r *runner) detach() {
	r.detached = true
	r.detachedFlag.Store(true)
	reason := "stalled"
	if r.failing.Load() {
		reason = "failing"
	}
	r.log.Warn("sink is "+reason+"; the other sinks go on and it catches up from its checkpoint when it recovers",
		"lsn", r.flushLSN().String())
}

// closeInput tells the runner nothing more comes: it writes what it holds,
// saves its checkpoint and ends.
func (r *runner) closeInput() {
	r.closeOnce.Do(func() { close(r.in) })
}

// wait waits for the runner to end after closeInput and returns the error
// of its final write, or an error when ctx ends first.
func (r *runner) wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.finalErr
	case <-ctx.Done():
		return fmt.Errorf("sink %s did not flush in time; it resumes from its checkpoint at the next start", r.name)
	}
}

// close closes the sink.
func (r *runner) close(ctx context.Context) error {
	if err := r.Sink.Close(ctx); err != nil {
		return fmt.Errorf("close sink %s: %w", r.name, err)
	}
	return nil
}

// snapshot returns the sink's progress. Safe for concurrent use.
func (r *runner) snapshot() SinkStatus {
	return SinkStatus{
		Name:      r.name,
		Flush:     r.flushLSN(),
		Saved:     unixNano(r.savedTime.Load()),
		Delivered: r.delivered.Load(),
		Pending:   r.queued.Load() + r.batched.Load() + r.missed.Load(),
		Failing:   r.failing.Load(),
		Detached:  r.detachedFlag.Load(),
		Stopped:   r.stopped.Load(),
	}
}

// run is the runner's goroutine: it takes chunks, writes batches when they
// are full or their wait is over, and saves positions that moved without a
// write, until its input is closed or ctx ends.
func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	save := time.NewTicker(r.saveEvery)
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
	r.log.Info("sink recovered; catching up from its checkpoint", "lsn", r.flushLSN().String())
	r.restart()
}
