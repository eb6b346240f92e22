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
	"github.com/martencdc/cdc/internal/retry"
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
	advanced    func()        // tells the stream that the flush LSN moved; must not block
	fresh       func() bool   // the stream heard from the server lately (or drains); nil: always
	fence       time.Duration // Config.Fence
	log         *slog.Logger

	onReached func(sink string, lsn cdc.LSN) // Config.Reached; may be nil
}

// chunk is a run of items handed to a runner, with the epoch (the stream's
// connection) it came from; or a backfill's pages, or a backfill's request
// (backfill.go).
type chunk struct {
	epoch    uint64 // live chunks: the stream's connection; pages: the backfill's generation
	items    []item
	backfill bool     // pages of a backfill, not the live stream
	control  *control // a backfill's request; items is empty
}

// runner is one sink's goroutine: it batches, writes, retries and saves the
// sink's checkpoint (batch.go, checkpoint.go) and keeps its health
// (health.go).
//
// The stream goroutine talks to it only through enqueue, attach,
// attachUnresumed, abandon, flushLSN, closeInput and wait; anyone may call
// snapshot.
type runner struct {
	runnerConfig
	name   string
	policy cdc.BatchPolicy

	in        chan chunk
	closeOnce sync.Once
	closing   chan struct{} // closed by closeInput before in
	senders   sync.RWMutex  // held for reading by senders other than the stream goroutine
	done      chan struct{}
	finalErr  error // set before done is closed

	// Owned by the stream goroutine.
	detached bool

	// The epoch: abandon starts a new one and cancels the writes of the
	// old; chunks of an older epoch are dropped.
	mu          sync.Mutex
	epoch       uint64
	epochCtx    context.Context
	cancelEpoch context.CancelFunc
	ctxEpoch    uint64 // the epoch of epochCtx

	// Shared.
	detachedFlag atomic.Bool
	failing      atomic.Bool
	stopped      atomic.Bool
	savedFlush   atomic.Uint64 // flush LSN of the last saved checkpoint
	savedTime    atomic.Int64  // commit time of the last saved checkpoint, Unix nanoseconds
	queued       atomic.Int64  // events dispatched and not yet taken
	batched      atomic.Int64  // events in the pending batch
	missed       atomic.Int64  // events not dispatched while detached, or skipped while stopped
	delivered    atomic.Int64
	resuming     atomic.Bool // the sink's own checkpoint could not be read: retried before it takes events
	health       health
	backfilling  atomic.Bool                  // held or fed by a backfill: it takes nothing live
	bfGen        atomic.Uint64                // generation of the backfill's pages: Abort starts a new one
	catchUpH     atomic.Uint64                // the hand-off LSN it catches up to, 0 if none
	durablePos   atomic.Pointer[cdc.Position] // the saved checkpoint's position
	armed        atomic.Pointer[armed]        // a mode for the stream's next connection
	live         atomic.Pointer[armed]        // that mode, armed: taken with the next live chunk

	// Shared: the reached LSN (reached.go).
	reached atomic.Uint64
	front   atomic.Pointer[frontier] // the last keepalive's frontier

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
	seenEpoch     uint64      // the epoch of the state above
	resumeTimer   *time.Timer // retries reading the sink's own checkpoint
	resumeArmed   bool        // resumeTimer is set
	resumeDelay   retry.Backoff
	persisted     persisted       // the state the checkpoint row holds
	base          context.Context // the runner's context, which only its end cancels
	batchGen      uint64          // the backfill generation of the batch's events
	catchUp       *catchUp        // taking the live stream up to a backfill's hand-off LSN
	pendingBegin  *control        // the Begin waiting for the catch-up
	handoff       *Handoff        // the filter of a finished backfill, until passed
}

func newRunner(cfg runnerConfig) *runner {
	t := time.NewTimer(time.Hour)
	t.Stop()
	rt := time.NewTimer(time.Hour)
	rt.Stop()
	r := &runner{
		runnerConfig: cfg,
		name:         cfg.Name,
		policy:       cfg.Batch.WithDefaults(),
		in:           make(chan chunk, cfg.queue),
		closing:      make(chan struct{}),
		done:         make(chan struct{}),
		timer:        t,
		resumeTimer:  rt,
		resumeDelay:  retry.Backoff{Min: cfg.retryMin, Max: cfg.retryMax},
	}
	if b := cfg.Backfill; b != nil {
		r.backfilling.Store(b.Held)
		if !b.Held {
			r.handoff = b.Handoff
		}
	}
	return r
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
	r.health.attach()
	r.resuming.Store(false)
	r.missed.Store(0)
	if ok || first {
		if r.backfilling.Load() {
			// A held sink takes no live event, but its checkpoint it
			// must know: a backfill resumes from it.
			return r.enqueueFloor(ctx, floorItem(cp))
		}
		return r.enqueue(ctx, []item{floorItem(cp)})
	}
	return nil
}

// enqueueFloor hands the runner a loaded checkpoint, held or not.
func (r *runner) enqueueFloor(ctx context.Context, it item) error {
	select {
	case r.in <- chunk{epoch: r.currentEpoch(), items: []item{it}}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attachUnresumed attaches a sink whose own checkpoint could not be read
// (its target is down): it starts from cp, the checkpoint table's, detached
// and failing, and retries reading its own checkpoint on its own; once it
// can, it asks for the slot to be read again and catches up. The other
// sinks go on meanwhile.
func (r *runner) attachUnresumed(ctx context.Context, cp cdc.Checkpoint, ok, first bool, cause error) error {
	r.log.Warn("sink's target is unreachable: it is retried on its own and catches up from its checkpoint; the other sinks go on", "err", cause)
	r.health.fail(cause)
	r.resuming.Store(true)
	if err := r.attach(ctx, cp, ok, first); err != nil {
		return err
	}
	r.resuming.Store(true)
	r.failing.Store(true)
	r.detached = true
	r.detachedFlag.Store(true)
	r.health.detach()
	return nil
}

// enqueue hands a chunk to the sink. A detached sink only counts the events
// it misses. The sink is detached when it is failing with a full queue, or
// does not take the chunk within its stall timeout: the stream goes on
// without it.
func (r *runner) enqueue(ctx context.Context, items []item) error {
	n := countEvents(items)
	if r.detached || r.backfilling.Load() {
		r.missed.Add(n)
		return nil
	}
	c := chunk{epoch: r.currentEpoch(), items: items}
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
	r.health.detach()
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
	r.closeOnce.Do(func() {
		close(r.closing)
		r.senders.Lock() // wait for the other senders to give up
		close(r.in)
		r.senders.Unlock()
	})
}

// errClosed is returned to a backfill that hands the runner something
// after its input was closed (shutdown).
var errClosed = errors.New("the sink is shutting down")

// send hands the runner a chunk from a goroutine other than the stream's
// (a backfill), unless its input is closed or ctx ends.
func (r *runner) send(ctx context.Context, c chunk) error {
	r.senders.RLock()
	defer r.senders.RUnlock()
	select {
	case <-r.closing:
		return errClosed
	default:
	}
	select {
	case r.in <- c:
		return nil
	case <-r.closing:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait waits for the runner to end after closeInput and returns the error
// of its final write, or an error when ctx ends first.
func (r *runner) wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.finalErr
	case <-ctx.Done():
		return errors.New("the shutdown timeout is over")
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
	state, since, msg := r.state()
	return SinkStatus{
		Name:      r.name,
		Flush:     r.flushLSN(),
		Reached:   r.reachedLSN(),
		Saved:     unixNano(r.savedTime.Load()),
		Delivered: r.delivered.Load(),
		Pending:   r.pending(),
		Failing:   r.failing.Load(),
		Detached:  r.detachedFlag.Load(),
		Stopped:   r.stopped.Load(),
		State:     state,
		Since:     since,
		Error:     msg,
	}
}

// pending is how many events the sink received, or missed, and has not
// written.
func (r *runner) pending() int64 {
	return r.queued.Load() + r.batched.Load() + r.missed.Load()
}

// run is the runner's goroutine: it takes chunks, writes batches when they
// are full or their wait is over, and saves positions that moved without a
// write, until its input is closed or ctx ends. Its writes use the epoch's
// context: when the stream abandons the connection they are cancelled, and
// the runner drops what it holds and goes on with the next connection.
func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	r.base = ctx
	save := time.NewTicker(r.saveEvery)
	defer save.Stop()
	for {
		ectx, epoch := r.epochContext(ctx)
		if epoch != r.seenEpoch {
			r.reset()
			r.seenEpoch = epoch
		}
		if r.fed() {
			// Pages of a backfill do not come from the connection: losing
			// it does not cancel their writes (Abort does).
			ectx = ctx
		}
		var err error
		select {
		case c, ok := <-r.in:
			if !ok {
				r.finalErr = r.finish(ectx)
				return
			}
			// The stream may have abandoned its connection while this
			// goroutine waited: look again before taking the chunk.
			if ectx, epoch = r.epochContext(ctx); epoch != r.seenEpoch {
				r.reset()
				r.seenEpoch = epoch
			}
			if r.fed() {
				ectx = ctx
			}
			if c.control != nil {
				r.handle(ectx, c.control)
				break
			}
			if !c.backfill && c.epoch < epoch || c.backfill && c.epoch != r.bfGen.Load() {
				r.queued.Add(-countEvents(c.items)) // of an abandoned connection, or an aborted backfill
				continue
			}
			err = r.take(ectx, c)
		case <-r.timer.C:
			r.timerOn = false
			err = r.flush(ectx)
		case <-r.resumeTimer.C:
			r.resume(ectx)
		case <-save.C:
			switch {
			case r.stopped.Load():
				r.persistState(ectx) // the pending count of a stopped sink grows
			case len(r.batch) == 0 && r.consumed != r.saved:
				err = r.save(ectx)
			default:
				r.persistState(ectx)
			}
		case <-ctx.Done():
			r.interrupted()
			return
		}
		if err != nil && ctx.Err() != nil {
			r.interrupted()
			return
		}
		if errors.Is(err, errAborted) {
			r.drop()
		}
		if r.resuming.Load() && !r.resumeArmed {
			r.resumeTimer.Reset(r.resumeDelay.Next())
			r.resumeArmed = true
		}
		r.maybeResync()
	}
}

// resume retries reading the sink's own checkpoint (see attachUnresumed).
// Once it can, the sink is no longer failing: maybeResync asks for the slot
// to be read again, and it catches up.
func (r *runner) resume(ctx context.Context) {
	r.resumeArmed = false
	if !r.resuming.Load() {
		return
	}
	own, has, err := r.Resume.Checkpoint(ctx)
	if err != nil {
		r.health.fail(err)
		r.log.Warn("sink's target still unreachable; retrying", "err", err)
		r.resumeTimer.Reset(r.resumeDelay.Next())
		r.resumeArmed = true
		return
	}
	if has && own.Compare(r.consumed) > 0 {
		r.raiseFloor(&item{kind: itemFloor, pos: own})
	}
	r.resumeDelay.Reset()
	r.resuming.Store(false)
	r.failing.Store(false)
	r.health.recover()
	r.log.Info("sink's target is reachable again")
}

// interrupted records why the runner ends before its input is closed: the
// hard stop of a shutdown (or the source's failure) cancelled it with
// events it had not made durable; a clean stop must not claim otherwise.
func (r *runner) interrupted() {
	if len(r.batch) > 0 || r.consumed != r.saved || r.failing.Load() || len(r.in) > 0 {
		r.finalErr = errors.New("the shutdown timeout ended its writes before it flushed")
	}
}

// maybeResync asks for the stream to be re-read once a detached sink has
// written everything it had.
func (r *runner) maybeResync() {
	if !r.detachedFlag.Load() {
		r.resyncAsked = false
		return
	}
	if r.resyncAsked || r.stopped.Load() || len(r.in) > 0 || len(r.batch) > 0 || r.failing.Load() || r.backfilling.Load() {
		return
	}
	r.resyncAsked = true
	r.log.Info("sink recovered; catching up from its checkpoint", "lsn", r.flushLSN().String())
	r.restart()
}

// tryEnqueue hands the runner a chunk if its queue has room, without
// waiting: for markers the stream can afford to lose.
func (r *runner) tryEnqueue(items []item) {
	if r.detached || r.backfilling.Load() {
		return
	}
	select {
	case r.in <- chunk{epoch: r.currentEpoch(), items: items}:
	default:
	}
}

// durable returns the position of the saved checkpoint.
func (r *runner) durable() cdc.Position {
	if p := r.durablePos.Load(); p != nil {
		return *p
	}
	return cdc.Position{}
}
