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
	"github.com/martencdc/cdc/decoder"
)

// Pipeline routes one slot's events to its sinks. It implements
// cdc.Consumer (consumer.go); the methods of that interface are called by the
// stream's goroutine only. Status and Received are safe for concurrent use.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	dec     *decoder.Decoder
	runners []*runner
	restart chan struct{}
	// advanced delivers a value when a sink's flush LSN moved, so that the
	// stream confirms it promptly (cdc.Consumer.Advanced).
	advanced chan struct{}

	// Owned by the stream goroutine.
	chunk   []item
	inTx    bool
	lastEnd cdc.LSN // largest end LSN dispatched
	idleEnd cdc.LSN // largest WAL end from a keepalive outside a transaction
	opened  bool
	drained bool
	// idleItems is the chunk Idle hands every sink; chunks are never
	// modified, so one serves every call.
	idleItems []item

	heard     atomic.Int64  // when the server sent what the stream last handed over, on this host's clock, Unix nanoseconds
	skew      time.Duration // the smallest (receipt - server send time) on the connection; stream goroutine
	skewKnown bool
	draining  atomic.Bool  // Drain was called: the sinks write what they have, fresh or not
	suspect   atomic.Bool  // Suspect was called: nothing is fresh until the next connection
	received  atomic.Int64 // events decoded
	pending   *pendingLog  // Config.TrackPending (pending.go); nil otherwise
	skipped   atomic.Int64 // rows that were not events (tombstones, skipped, archived)
}

// New checks cfg and returns a pipeline. It starts nothing: call Run.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Name == "" {
		return nil, errors.New("pipeline: name is required")
	}
	if len(cfg.Sinks) == 0 {
		return nil, fmt.Errorf("pipeline %s: no sinks", cfg.Name)
	}
	if cfg.Checkpoints == nil {
		return nil, fmt.Errorf("pipeline %s: no checkpoint store", cfg.Name)
	}
	cfg = cfg.withDefaults()
	p := &Pipeline{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "pipeline"),
		dec:       decoder.New(cfg.Decoder),
		restart:   make(chan struct{}, 1),
		advanced:  make(chan struct{}, 1),
		idleItems: []item{{kind: itemIdle}},
	}
	if cfg.TrackPending {
		p.pending = &pendingLog{}
	}
	seen := make(map[string]bool)
	for _, sc := range cfg.Sinks {
		if sc.Name == "" || sc.Sink == nil {
			return nil, fmt.Errorf("pipeline %s: a sink needs a name and a target", cfg.Name)
		}
		if seen[sc.Name] {
			return nil, fmt.Errorf("pipeline %s: two sinks named %s", cfg.Name, sc.Name)
		}
		seen[sc.Name] = true
		if sc.OnError == DeadLetter && cfg.DeadLetters == nil {
			return nil, fmt.Errorf("pipeline %s: sink %s: on_error dead_letter needs a dead-letter store", cfg.Name, sc.Name)
		}
		m, err := newMatcher(sc.Filter)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: sink %s: %w", cfg.Name, sc.Name, err)
		}
		p.runners = append(p.runners, newRunner(runnerConfig{
			SinkConfig:  sc,
			filter:      m,
			pipeline:    cfg.Name,
			instance:    cfg.Instance,
			checkpoints: cfg.Checkpoints,
			deadLetters: cfg.DeadLetters,
			retryMin:    cfg.RetryMin,
			retryMax:    cfg.RetryMax,
			saveEvery:   cfg.CheckpointInterval,
			stall:       cfg.StallTimeout,
			queue:       cfg.QueueChunks,
			restart:     p.requestRestart,
			advanced:    p.signalAdvanced,
			fresh:       p.fresh,
			fence:       cfg.Fence,
			onReached:   cfg.Reached,
			log:         p.log.With("sink", sc.Name),
		}))
	}
	return p, nil
}

// Run starts one goroutine per sink, runs the source with the pipeline as its
// consumer until ctx ends or the source fails, then stops the sinks and closes
// them. After a clean shutdown every sink has written what it received and
// saved its checkpoint; Run then returns nil. Whatever the sinks do, Run
// returns within ShutdownTimeout of the end of ctx (plus a moment to close
// them): the writes of a sink that has not flushed by then are cancelled,
// the sink is named in the error (ErrNotFlushed) and resumes from its
// checkpoint at the next start.
func (p *Pipeline) Run(ctx context.Context, src Source) error {
	sinkCtx, cancelSinks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSinks()
	// The hard stop: ShutdownTimeout after ctx ends, the sinks' writes are
	// cancelled.
	var stopBy atomic.Int64
	stopAfter := context.AfterFunc(ctx, func() {
		stopBy.Store(time.Now().Add(p.cfg.ShutdownTimeout).UnixNano())
		time.AfterFunc(p.cfg.ShutdownTimeout, cancelSinks)
	})
	defer stopAfter()
	var wg sync.WaitGroup
	for _, r := range p.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(sinkCtx)
		}()
	}
	err := src.Run(ctx, p)
	if !p.drained {
		// The source failed: stop the sinks where they are; what they
		// had not saved is read again at the next start.
		cancelSinks()
		p.closeInputs()
	}
	// A sink's write that ignores its context (a blocked pipe) must not
	// hold the process: wait for the runners until the hard stop and a
	// moment more, then leave them behind.
	grace := closeGrace
	if at := stopBy.Load(); at != 0 {
		grace += time.Until(time.Unix(0, at))
	}
	if !waitGroup(&wg, max(grace, closeGrace)) {
		for _, r := range p.runners {
			select {
			case <-r.done:
			default:
				p.log.Error("sink's write does not return; left behind", "sink", r.name)
			}
		}
	}
	return errors.Join(err, p.closeSinks(ctx))
}

// closeGrace bounds closing the sinks, and waiting for runners past the
// hard stop.
const closeGrace = 5 * time.Second

// closeSinks closes every sink at once, giving up on those that do not
// return within closeGrace.
func (p *Pipeline) closeSinks(ctx context.Context) error {
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeGrace)
	defer cancel()
	errs := make(chan error, len(p.runners))
	for _, r := range p.runners {
		go func() { errs <- r.close(closeCtx) }()
	}
	var all []error
	for range p.runners {
		select {
		case err := <-errs:
			all = append(all, err)
		case <-closeCtx.Done():
			return errors.Join(append(all, errors.New("some sinks did not close in time"))...)
		}
	}
	return errors.Join(all...)
}

// waitGroup waits for wg for at most d and reports whether it finished.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// fresh reports whether the stream heard from the server within the fence,
// or drains.
func (p *Pipeline) fresh() bool {
	if p.draining.Load() {
		return true
	}
	if p.suspect.Load() {
		return false
	}
	if p.cfg.Fence <= 0 {
		return true
	}
	return time.Since(time.Unix(0, p.heard.Load())) <= p.cfg.Fence
}

// hear records that the stream is in touch with the server now (a new
// connection).
func (p *Pipeline) hear() {
	p.heard.Store(time.Now().UnixNano())
	p.suspect.Store(false)
}

// Suspect makes the sinks stop writing until the stream's next connection
// (Open): the process was paused, and what the current connection
// delivered may be a stale tail of a slot another instance holds now. Safe
// for concurrent use.
func (p *Pipeline) Suspect() { p.suspect.Store(true) }

// signalAdvanced tells the stream that Confirmable may have moved. Runners
// call it when their flush LSN advanced; it never blocks.
func (p *Pipeline) signalAdvanced() {
	select {
	case p.advanced <- struct{}{}:
	default:
	}
}

// requestRestart asks the stream to re-read the slot from the confirmed
// position. Runners call it when a detached sink has caught up.
func (p *Pipeline) requestRestart() {
	select {
	case p.restart <- struct{}{}:
	default:
	}
}
