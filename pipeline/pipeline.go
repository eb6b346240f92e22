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
	cfg = cfg.withDefaults()
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
			log:         p.log.With("sink", sc.Name),
		}))
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
		p.closeInputs()
	}
	wg.Wait()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, r := range p.runners {
		if cerr := r.close(closeCtx); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	return err
}

// requestRestart asks the stream to re-read the slot from the confirmed
// position. Runners call it when a detached sink has caught up.
func (p *Pipeline) requestRestart() {
	select {
	case p.restart <- struct{}{}:
	default:
	}
}
