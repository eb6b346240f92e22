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
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/replication"
)

// Checkpoints loads and saves the sinks' checkpoints (checkpoint.Store).
type Checkpoints interface {
	Load(ctx context.Context, pipeline string) (map[string]checkpoint.Checkpoint, error)
	Save(ctx context.Context, pipeline, sink string, cp checkpoint.Checkpoint) error
}

// DeadLetters keeps the events a sink rejected permanently.
type DeadLetters interface {
	Write(ctx context.Context, pipeline, sink string, e *cdc.Event, cause error) error
}

// Source runs the replication stream that feeds the pipeline
// (*replication.Stream).
type Source interface {
	Run(ctx context.Context, c replication.Consumer) error
}

// OnError says what a sink does with an event its target rejects permanently.
type OnError int

// What to do with a rejected event.
const (
	Stop       OnError = iota // stop the sink, checkpoint just before the event (default)
	DeadLetter                // write the event to the dead-letter table and go on
)

// SinkConfig is one sink of a pipeline.
type SinkConfig struct {
	Name    string          // unique within the pipeline; names the checkpoint row
	Sink    cdc.Sink        // the target
	Batch   cdc.BatchPolicy // zero fields get the defaults
	Filter  Filter          // which events the sink receives
	OnError OnError         // what to do with a rejected event
	// Resume, when set, is the sink's own checkpoint, committed with its
	// writes (the Postgres sink's, in the target database): after a crash
	// it may be ahead of the checkpoint table, and the sink then resumes
	// from it, so nothing it committed is written twice.
	Resume Resumer
}

// Resumer reads a checkpoint a sink keeps itself, in its target.
type Resumer interface {
	// Checkpoint returns the position of the last event the target has
	// committed, and false when it has none.
	Checkpoint(ctx context.Context) (cdc.Position, bool, error)
}

// Config describes a pipeline.
type Config struct {
	Name        string // pipeline name; names the checkpoint rows
	Decoder     decoder.Config
	Sinks       []SinkConfig // at least one
	Checkpoints Checkpoints  // required
	DeadLetters DeadLetters  // required when a sink uses DeadLetter
	// Instance identifies this process in checkpoint rows (host:pid).
	Instance string
	// StallTimeout is how long the stream waits for a sink that is not
	// failing but does not take events before it detaches it; default 5s.
	StallTimeout time.Duration
	// CheckpointInterval is how often a sink saves a position that moved
	// without a write (filtered events, tombstones); default 1s.
	CheckpointInterval time.Duration
	// RetryMin and RetryMax bound the backoff between failed writes;
	// defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
	// QueueChunks is how many chunks may wait for each sink; default 64.
	QueueChunks int
	Logger      *slog.Logger // nil discards logs
}

// chunkSize is the most items the router collects before handing them on.
const chunkSize = 1024

// Pipeline routes one slot's events to its sinks. It implements
// replication.Consumer; the methods of that interface are called by the
// stream's goroutine only.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	dec     *decoder.Decoder
	runners []*runner
	restart chan struct{}

	// Owned by the stream goroutine.
	chunk   []item
	inTx    bool
	lastEnd cdc.LSN // largest end LSN dispatched
	idleEnd cdc.LSN // largest WAL end from a keepalive outside a transaction
	opened  bool
	drained bool

	received atomic.Int64 // events decoded
	skipped  atomic.Int64 // rows that were not events (tombstones, skipped, archived)
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
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 5 * time.Second
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(10*time.Second, cfg.RetryMin)
	}
	if cfg.QueueChunks <= 0 {
		cfg.QueueChunks = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "pipeline"),
		dec:     decoder.New(cfg.Decoder),
		restart: make(chan struct{}, 1),
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
		p.runners = append(p.runners, newRunner(p, sc, m))
	}
	return p, nil
}

// Run starts one goroutine per sink, runs the source with the pipeline as its
// consumer until ctx ends or the source fails, then stops the sinks and closes
// them. After a clean shutdown every sink has written what it received and
// saved its checkpoint.
func (p *Pipeline) Run(ctx context.Context, src Source) error {
	sinkCtx, cancelSinks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSinks()
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
		p.closeQueues()
	}
	wg.Wait()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, r := range p.runners {
		if cerr := r.sink.Close(closeCtx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close sink %s: %w", r.name, cerr))
		}
	}
	return err
}

// Open implements replication.Consumer: it forgets the partial state of the
// previous connection, reloads the checkpoints and re-attaches every sink.
func (p *Pipeline) Open(ctx context.Context) error {
	p.dec.Reset()
	p.chunk = nil
	p.inTx = false
	cps, err := p.cfg.Checkpoints.Load(ctx, p.cfg.Name)
	if err != nil {
		return fmt.Errorf("pipeline %s: %w", p.cfg.Name, err)
	}
	for _, r := range p.runners {
		cp, ok := cps[r.name]
		if r.resume != nil {
			own, has, err := r.resume.Checkpoint(ctx)
			if err != nil {
				return fmt.Errorf("pipeline %s: sink %s: read its checkpoint: %w", p.cfg.Name, r.name, err)
			}
			if has && own.Compare(cp.Position) > 0 {
				// The target committed past the checkpoint table (a crash
				// between the two): skip what it has.
				p.log.Info("sink's own checkpoint is ahead of the checkpoint table; it resumes from its own", "sink", r.name,
					"own", own.String(), "table", cp.Position.String())
				cp.Position, ok = own, true
			}
		}
		if !p.opened {
			// Before the first chunk, the runner is idle: set its
			// starting point directly so Confirmable sees it at once.
			r.savedFlush.Store(uint64(cp.Flush))
			if ok {
				p.log.Info("sink resumes from checkpoint", "sink", r.name, "position", cp.Position.String(), "flush_lsn", cp.Flush.String())
			} else {
				p.log.Info("sink has no checkpoint; it starts with what the slot sends next", "sink", r.name)
			}
		}
		r.detached = false
		r.detachedFlag.Store(false)
		r.missed.Store(0)
		if ok || !p.opened {
			if err := p.send(ctx, r, []item{{kind: itemFloor, pos: cp.Position, end: cp.Flush, commitTime: cp.CommitTime, events: cp.Events}}); err != nil {
				return err
			}
		}
	}
	p.opened = true
	return nil
}

// Message implements replication.Consumer.
func (p *Pipeline) Message(ctx context.Context, data []byte) error {
	m, err := p.dec.Decode(data)
	if err != nil {
		return fmt.Errorf("pipeline %s: %w", p.cfg.Name, err)
	}
	switch m.Kind {
	case decoder.KindBegin:
		p.inTx = true
		return nil
	case decoder.KindEvent:
		p.received.Add(1)
		p.chunk = append(p.chunk, item{kind: itemEvent, pos: m.Position, event: m.Event})
	case decoder.KindSkip:
		// Not an event; the commit that follows covers its position.
		p.skipped.Add(1)
		return nil
	case decoder.KindCommit:
		p.inTx = false
		p.lastEnd = max(p.lastEnd, m.EndLSN)
		p.chunk = append(p.chunk, item{kind: itemCommit, pos: cdc.Position{LSN: m.CommitLSN, Index: cdc.EndOfTx}, end: m.EndLSN, commitTime: m.CommitTime})
		return p.dispatch(ctx)
	default:
		return nil
	}
	if len(p.chunk) >= chunkSize {
		return p.dispatch(ctx)
	}
	return nil
}

// Keepalive implements replication.Consumer.
func (p *Pipeline) Keepalive(walEnd cdc.LSN) {
	if !p.inTx {
		p.idleEnd = max(p.idleEnd, walEnd)
	}
}

// Confirmable implements replication.Consumer: the minimum of the sinks'
// saved flush LSNs, or the server's WAL end when every sink has saved
// everything dispatched and no transaction is open.
func (p *Pipeline) Confirmable() cdc.LSN {
	lowest := ^cdc.LSN(0)
	caughtUp := !p.inTx
	for _, r := range p.runners {
		f := cdc.LSN(r.savedFlush.Load())
		lowest = min(lowest, f)
		if f < p.lastEnd {
			caughtUp = false
		}
	}
	if caughtUp {
		lowest = max(lowest, p.idleEnd)
	}
	return lowest
}

// Restart implements replication.Consumer.
func (p *Pipeline) Restart() <-chan struct{} { return p.restart }

// Drain implements replication.Consumer: it hands every sink what was
// received, waits for them to write it and save their checkpoints.
func (p *Pipeline) Drain(ctx context.Context) error {
	p.drained = true
	if len(p.chunk) > 0 {
		// A transaction cut short by the shutdown: its first rows are
		// valid positions and can be delivered and checkpointed.
		if err := p.dispatch(ctx); err != nil {
			p.log.Warn("could not hand the last rows to every sink; they are read again at the next start", "err", err)
		}
	}
	p.closeQueues()
	var errs []error
	for _, r := range p.runners {
		select {
		case <-r.done:
			if r.finalErr != nil {
				errs = append(errs, r.finalErr)
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("sink %s did not flush in time; it resumes from its checkpoint at the next start", r.name))
		}
	}
	return errors.Join(errs...)
}

func (p *Pipeline) closeQueues() {
	for _, r := range p.runners {
		r.closeOnce.Do(func() { close(r.in) })
	}
}

// dispatch hands the current chunk to every attached sink.
func (p *Pipeline) dispatch(ctx context.Context) error {
	if len(p.chunk) == 0 {
		return nil
	}
	c := p.chunk
	p.chunk = make([]item, 0, min(2*len(c), chunkSize))
	for _, r := range p.runners {
		if err := p.send(ctx, r, c); err != nil {
			return err
		}
	}
	return nil
}

// send queues a chunk for one sink, detaching the sink if it is failing with
// a full queue or does not take the chunk within StallTimeout.
func (p *Pipeline) send(ctx context.Context, r *runner, c []item) error {
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
	deadline := time.Now().Add(p.cfg.StallTimeout)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if r.failing.Load() || !time.Now().Before(deadline) {
			r.queued.Add(-n)
			r.missed.Add(n)
			p.detach(r)
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

func (p *Pipeline) detach(r *runner) {
	r.detached = true
	r.detachedFlag.Store(true)
	reason := "stalled"
	if r.failing.Load() {
		reason = "failing"
	}
	p.log.Warn("sink is "+reason+"; the other sinks go on and it catches up from its checkpoint when it recovers",
		"sink", r.name, "checkpoint_flush_lsn", cdc.LSN(r.savedFlush.Load()).String())
}

// requestRestart asks the stream to re-read the slot from the confirmed
// position.
func (p *Pipeline) requestRestart() {
	select {
	case p.restart <- struct{}{}:
	default:
	}
}

func countEvents(c []item) int64 {
	var n int64
	for i := range c {
		if c[i].kind == itemEvent {
			n++
		}
	}
	return n
}

// SinkStatus is a snapshot of one sink's progress, for status output and
// metrics.
type SinkStatus struct {
	Name      string
	Flush     cdc.LSN   // saved flush LSN
	Saved     time.Time // commit time of the saved checkpoint's transaction; zero if unknown
	Delivered int64     // events written since the checkpoint row was created
	Pending   int64     // events received and not yet written
	Failing   bool      // the last write failed; retrying
	Detached  bool      // not receiving; catches up when it recovers
	Stopped   bool      // stopped on a rejected event (on_error stop)
}

// Status returns a snapshot of every sink. Safe for concurrent use.
func (p *Pipeline) Status() []SinkStatus {
	out := make([]SinkStatus, len(p.runners))
	for i, r := range p.runners {
		out[i] = SinkStatus{
			Name:      r.name,
			Flush:     cdc.LSN(r.savedFlush.Load()),
			Saved:     unixNano(r.savedTime.Load()),
			Delivered: r.delivered.Load(),
			Pending:   r.queued.Load() + r.batched.Load() + r.missed.Load(),
			Failing:   r.failing.Load(),
			Detached:  r.detachedFlag.Load(),
			Stopped:   r.stopped.Load(),
		}
	}
	return out
}

// Received returns how many events the pipeline decoded, and how many rows it
// skipped because they were not events.
func (p *Pipeline) Received() (events, skipped int64) {
	return p.received.Load(), p.skipped.Load()
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
