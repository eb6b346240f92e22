package assemble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/backfill"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/deadletter"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/metrics"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
	"github.com/martencdc/cdc/sinks/stdout"
)

// Options are what a process gives every pipeline it assembles.
type Options struct {
	// Stdout is where stdout sinks write; default os.Stdout.
	Stdout io.Writer
	// Metrics, when set, counts and times every sink's writes and dead
	// letters.
	Metrics *metrics.Metrics
	// Instance names this process in checkpoint rows; default InstanceID().
	Instance string
	// Wait makes Open retry an unreachable server (with backoff, until ctx
	// ends) instead of failing at once.
	Wait bool
	// Wrap, when set, decorates every sink built, given its name (the demo
	// counts deliveries with it).
	Wrap func(sink string, s cdc.Sink) cdc.Sink
	// Reached, when set, is told each time a sink's reached LSN moves
	// (pipeline.Config.Reached): wire it to applied.Tracker.Advance. It
	// must not block.
	Reached func(pipeline, sink string, lsn cdc.LSN)
	// Logger receives the logs of everything assembled; nil discards them.
	Logger *slog.Logger
}

// Assembler builds the pipelines of one process. Sinks that share a
// resource (standard output) share one value across its pipelines. Safe for
// concurrent use.
type Assembler struct {
	opts   Options
	mu     sync.Mutex
	stdout *stdout.Sink
}

// New returns an assembler with opts.
func New(opts Options) *Assembler {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Instance == "" {
		opts.Instance = InstanceID()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Assembler{opts: opts}
}

// Pipeline is one configured pipeline, assembled and ready to run: its
// connection pools, its replication stream and its router.
type Pipeline struct {
	cfg       *config.Pipeline
	pools     pools
	stream    *replication.Stream
	pipeline  *pipeline.Pipeline
	backfills *backfill.Manager
}

// Open connects, checks the server, creates the publication, slot and
// tables when missing and assembles the pipeline of pc. Close it when done.
func (a *Assembler) Open(ctx context.Context, pc *config.Pipeline) (_ *Pipeline, err error) {
	// plog is the pipeline's logger, for the packages it hands one to;
	// each adds its own component. log is this package's.
	plog := a.opts.Logger.With("pipeline", pc.Name)
	log := plog.With("component", "assemble")
	p := &Pipeline{cfg: pc}
	if p.pools, err = openPools(ctx, pc, "pipeline "+pc.Name+": "); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	wrap := func(err error) error { return fmt.Errorf("pipeline %s: %w", pc.Name, err) }
	if err := WaitReachable(ctx, p.pools.src, "the source database", a.opts.Wait, log); err != nil {
		return nil, wrap(err)
	}
	rcfg := ReplicationConfig(pc, plog)
	if rcfg.Timeout <= 0 {
		rcfg.Timeout = config.DefaultTimeout
	}
	if problems := replication.Check(ctx, p.pools.src, rcfg, decoder.RequiredColumns()); len(problems) > 0 {
		return nil, &ProblemsError{Pipeline: pc.Name, Problems: problems}
	}
	if p.pools.cp != p.pools.src {
		if err := WaitReachable(ctx, p.pools.cp, "the checkpoint database", a.opts.Wait, log); err != nil {
			return nil, wrap(err)
		}
	}
	store := checkpoint.New(p.pools.cp, pc.Checkpoints.Schema)
	if err := store.Init(ctx); err != nil {
		return nil, wrap(err)
	}
	backfills := backfill.NewStore(p.pools.cp, pc.Checkpoints.Schema)
	if err := backfills.Init(ctx); err != nil {
		return nil, wrap(err)
	}
	if pc.Source.Start == config.StartBeginning {
		// Before the slot exists: a crash between the two must not leave
		// a slot whose history nobody backfills.
		slot, err := replication.Slot(ctx, p.pools.src, pc.Source.Slot)
		if err != nil {
			return nil, wrap(err)
		}
		if !slot.Exists {
			for _, sc := range pc.Sinks {
				if err := backfills.RequestForNewSlot(ctx, pc.Name, sc.Name); err != nil {
					return nil, wrap(err)
				}
			}
		}
	}
	created, err := replication.Setup(ctx, p.pools.src, rcfg)
	if err != nil {
		return nil, wrap(err)
	}
	if created {
		what := "events committed from now on are delivered"
		if pc.Source.Start == config.StartBeginning {
			what = "every sink is first filled with the events already in mt_events"
		}
		log.Info("created replication slot; "+what, "slot", pc.Source.Slot)
		if pc.Source.Start != config.StartBeginning {
			if err := warnGap(ctx, store, pc, log); err != nil {
				return nil, wrap(err)
			}
		}
	}
	states, err := a.backfillStates(ctx, pc, store, backfills, p.pools.src)
	if err != nil {
		return nil, wrap(err)
	}
	pcfg := pipeline.Config{
		Name:            pc.Name,
		Decoder:         decoder.Config{Schema: pc.Source.Schema},
		Checkpoints:     store,
		Instance:        a.opts.Instance,
		ShutdownTimeout: pc.ShutdownTimeout,
		Fence:           rcfg.Timeout,
		Logger:          plog,
	}
	if reached := a.opts.Reached; reached != nil {
		pcfg.Reached = func(sink string, lsn cdc.LSN) { reached(pc.Name, sink, lsn) }
	}
	defer func() {
		if err != nil {
			closeSinks(ctx, pcfg.Sinks)
		}
	}()
	traits, err := detectStore(ctx, p.pools.src, pc.Source.Schema)
	if err != nil {
		return nil, wrap(err)
	}
	if err := detectProgress(ctx, pc, p.pools.src, &traits); err != nil {
		return nil, wrap(err)
	}
	// Marten progress rows stay below the seq_ids still on their way: the
	// pipeline, made below, keeps them.
	var built atomic.Pointer[pipeline.Pipeline]
	if traits.progress != nil {
		pcfg.TrackPending = true
		traits.pending = func(sink string, after cdc.Position) map[string]int64 {
			if pl := built.Load(); pl != nil {
				return pl.PendingSeq(sink, after)
			}
			return nil
		}
	}
	for i := range pc.Sinks {
		sc := &pc.Sinks[i]
		target, resume, err := a.buildSink(ctx, pc.Name, sc, traits, plog.With("sink", sc.Name))
		if err != nil {
			return nil, wrap(err)
		}
		onError := pipeline.Stop
		if sc.OnError == config.OnErrorDeadLetter {
			onError = pipeline.DeadLetter
			if pcfg.DeadLetters == nil {
				if pcfg.DeadLetters, err = a.deadLetters(ctx, p, pc); err != nil {
					_ = target.Close(context.WithoutCancel(ctx))
					return nil, wrap(err)
				}
			}
		}
		pcfg.Sinks = append(pcfg.Sinks, pipeline.SinkConfig{
			Name:     sc.Name,
			Sink:     target,
			Batch:    sc.Batch,
			Filter:   pipeline.Filter{Include: sc.Include, Exclude: sc.Exclude, Tenants: sc.Tenants},
			OnError:  onError,
			Resume:   resume,
			Backfill: states[sc.Name],
		})
	}
	if p.pipeline, err = pipeline.New(pcfg); err != nil {
		return nil, err
	}
	built.Store(p.pipeline)
	if p.stream, err = replication.NewStream(pc.Source.DSN, p.pools.src, rcfg); err != nil {
		return nil, wrap(err)
	}
	p.backfills = &backfill.Manager{
		Pipeline: p.pipeline, Name: pc.Name, Store: backfills, Pool: p.pools.src, DSN: pc.Source.DSN,
		Schema: pc.Source.Schema, Filter: pc.Source.Filter, Slot: rcfg, Instance: a.opts.Instance,
		Streaming: func() bool { return p.stream.State() == replication.StateStreaming },
		PageSize:  pc.Backfill.PageSize, InFlight: pc.Backfill.PagesInFlight,
		Log: plog,
	}
	for _, sc := range pc.Sinks {
		p.backfills.Sinks = append(p.backfills.Sinks, sc.Name)
	}
	if m := a.opts.Metrics; m != nil {
		p.backfills.Progress = func(sink string, done, total int64) { m.ReplayProgress(pc.Name, sink, done, total) }
	}
	return p, nil
}

// backfillStates asks for the backfills the configuration wants (a sink
// with start: beginning and no checkpoint yet) and returns how each sink
// with a backfill starts: held while one is requested or running, or with
// the filter of a finished one it has not passed.
func (a *Assembler) backfillStates(ctx context.Context, pc *config.Pipeline, cps *checkpoint.Store, store *backfill.Store, src *pgxpool.Pool) (map[string]*pipeline.BackfillState, error) {
	loaded, err := cps.Load(ctx, pc.Name)
	if err != nil {
		return nil, err
	}
	for _, sc := range pc.Sinks {
		if _, ok := loaded[sc.Name]; !ok && sc.Start == config.StartBeginning {
			if err := store.RequestIfNone(ctx, pc.Name, sc.Name); err != nil {
				return nil, err
			}
		}
	}
	recs, err := store.Load(ctx, pc.Name)
	if err != nil {
		return nil, err
	}
	out := map[string]*pipeline.BackfillState{}
	var table *backfill.Table
	for name, rec := range recs {
		switch {
		case rec.State != backfill.Done:
			out[name] = &pipeline.BackfillState{Held: true}
		case len(rec.Segments) > 0:
			last := rec.Segments[len(rec.Segments)-1].Start
			if cp, ok := loaded[name]; ok && cp.Position.LSN >= last {
				continue // passed
			}
			if table == nil {
				conn, err := src.Acquire(ctx)
				if err != nil {
					return nil, err
				}
				table, err = backfill.Inspect(ctx, conn, pc.Source.Schema)
				conn.Release()
				if err != nil {
					return nil, err
				}
			}
			out[name] = &pipeline.BackfillState{Handoff: rec.Handoff(table.TenantKeyed())}
		}
	}
	return out, nil
}

// deadLetters returns the pipeline's dead-letter store, creating its table
// when missing.
func (a *Assembler) deadLetters(ctx context.Context, p *Pipeline, pc *config.Pipeline) (pipeline.DeadLetters, error) {
	dl := deadletter.New(p.pools.cp, pc.Checkpoints.Schema)
	if err := dl.Init(ctx); err != nil {
		return nil, err
	}
	if a.opts.Metrics != nil {
		return a.opts.Metrics.DeadLetters(dl), nil
	}
	return dl, nil
}

// closeSinks closes sinks built for a pipeline that could not be assembled.
func closeSinks(ctx context.Context, sinks []pipeline.SinkConfig) {
	for _, sc := range sinks {
		_ = sc.Sink.Close(context.WithoutCancel(ctx))
	}
}

// Name returns the pipeline's name.
func (p *Pipeline) Name() string { return p.cfg.Name }

// Run streams until ctx ends or the stream fails, running the pipeline's
// backfills while it holds the slot, then drains the sinks and closes them
// (see pipeline.Pipeline.Run).
func (p *Pipeline) Run(ctx context.Context) error {
	bctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.backfills.Run(bctx)
	}()
	err := p.pipeline.Run(ctx, p.stream)
	stop()
	<-done
	return err
}

// State returns what the replication stream is doing.
func (p *Pipeline) State() replication.State { return p.stream.State() }

// Status returns a snapshot of every sink's progress.
func (p *Pipeline) Status() []pipeline.SinkStatus { return p.pipeline.Status() }

// Ready says whether the pipeline is healthy, with one line saying why for
// /readyz: it streams (or stands by for another instance) and none of its
// sinks is stopped, or failing or left behind for longer than
// failure_grace; a stream reconnecting for longer than source.timeout, or
// that has never held the slot yet, is not ready.
func (p *Pipeline) Ready(now time.Time) (bool, string) {
	h := p.stream.Health()
	switch h.State {
	case replication.StateStandby:
		return true, "standby (another instance holds the slot)"
	case replication.StateStopped:
		return false, "stopped"
	case replication.StateStarting:
		if !h.Streamed {
			return false, "starting"
		}
		if d := now.Sub(h.Since); d > p.timeout() {
			return false, fmt.Sprintf("replication stream reconnecting for %s: %s", d.Round(time.Second), h.Err)
		}
		return true, "reconnecting: " + h.Err
	}
	grace := p.cfg.FailureGrace
	if grace <= 0 {
		grace = config.DefaultFailureGrace
	}
	var problems []string
	for _, s := range p.Status() {
		switch {
		case s.State == cdc.SinkStopped:
			problems = append(problems, fmt.Sprintf("sink %s stopped: %s", s.Name, s.Error))
		case s.State != cdc.SinkOK && now.Sub(s.Since) > grace:
			problems = append(problems, fmt.Sprintf("sink %s %s for %s: %s", s.Name, s.State, now.Sub(s.Since).Round(time.Second), s.Error))
		}
	}
	if len(problems) > 0 {
		return false, strings.Join(problems, "; ")
	}
	return true, "streaming"
}

// timeout is the replication connection's timeout.
func (p *Pipeline) timeout() time.Duration {
	if p.cfg.Source.Timeout > 0 {
		return p.cfg.Source.Timeout
	}
	return config.DefaultTimeout
}

// Resumed tells the pipeline the process was paused and resumed (SIGCONT):
// its sinks write nothing until the stream has connected again, which it
// does at once.
func (p *Pipeline) Resumed() {
	p.pipeline.Suspect()
	p.stream.Resync()
}

// Slot reads the state of the pipeline's replication slot.
func (p *Pipeline) Slot(ctx context.Context) (replication.SlotState, error) {
	return replication.Slot(ctx, p.pools.src, p.cfg.Source.Slot)
}

// Probe reads the pipeline's gauges for the metrics.
func (p *Pipeline) Probe(ctx context.Context) metrics.Snapshot {
	snap := metrics.Snapshot{Active: p.State() == replication.StateStreaming, RetainedWAL: -1}
	slot, err := p.Slot(ctx)
	if err == nil && slot.Exists {
		snap.RetainedWAL = slot.RetainedBytes
		snap.WALStatus, snap.SafeWALSize = slot.WALStatus, slot.SafeWALSize
	}
	now := time.Now()
	for _, s := range p.Status() {
		k := metrics.SinkSnapshot{Name: s.Name, Pending: s.Pending}
		if err == nil && slot.Exists {
			if eff := max(s.Flush, slot.ConfirmedFlush); slot.CurrentWAL > eff {
				k.LagBytes = int64(slot.CurrentWAL - eff)
			}
		}
		if s.Pending > 0 && !s.Saved.IsZero() {
			k.LagSeconds = now.Sub(s.Saved).Seconds()
		}
		snap.Sinks = append(snap.Sinks, k)
	}
	return snap
}

// Close closes the pipeline's connection pools. Run closes the sinks.
func (p *Pipeline) Close() { p.pools.close() }

// RunAll runs pipelines side by side until ctx ends; the first that fails
// stops the others, which still drain. It returns every pipeline's error.
func RunAll(ctx context.Context, pipelines []*Pipeline, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range pipelines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("pipeline %s: %w", p.Name(), err))
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if len(errs) == 0 {
		log.Info("all pipelines stopped cleanly", "component", "assemble")
	}
	return errors.Join(errs...)
}

// warnGap warns, for each sink that has a checkpoint, that the slot just
// created starts after it: the slot was dropped (cdc teardown without
// --checkpoints, by hand) or is missing on this server (a failover to a
// standby without it), and the events committed in between were never
// read. It names the cdc replay that fills the gap.
func warnGap(ctx context.Context, store *checkpoint.Store, pc *config.Pipeline, log *slog.Logger) error {
	cps, err := store.Load(ctx, pc.Name)
	if err != nil {
		return fmt.Errorf("read the checkpoints: %w", err)
	}
	for _, sc := range pc.Sinks {
		cp, ok := cps[sc.Name]
		if !ok {
			continue
		}
		from := "beginning"
		if !cp.CommitTime.IsZero() {
			from = "time:" + cp.CommitTime.UTC().Format(time.RFC3339)
		}
		log.Warn("the sink has a checkpoint from an earlier replication slot: the slot was dropped, or this server does not have it (a failover?); events committed between that checkpoint and now were not read and will not be delivered unless replayed",
			"sink", sc.Name, "checkpoint", cp.Position.String(), "checkpoint_time", cp.CommitTime,
			"replay", fmt.Sprintf("cdc replay --config FILE --pipeline %s --sink %s --from %s", pc.Name, sc.Name, from))
	}
	return nil
}
