package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/martencdc/cdc/assemble"
	"github.com/martencdc/cdc/backfill"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/replication"
)

// cmdReplay fills one sink again from mt_events and hands it back to the
// live stream. A cdc run holding the pipeline's slot (here or elsewhere)
// does the work; the command records the request in the checkpoint
// database, shows the progress and returns once the sink is back on the
// live stream. With no instance running, the command runs the pipeline
// itself until then.
func cmdReplay(ctx context.Context, args []string, e env) error {
	cc := newConfigCommand("replay")
	pipelineName := cc.fs.String("pipeline", "", "the pipeline (required when the configuration has several)")
	sinkName := cc.fs.String("sink", "", "the sink to fill again (required)")
	from := cc.fs.String("from", "beginning", "where to start: beginning, seq:N (seq_id >= N) or time:RFC3339 (timestamp >= T)")
	var tenants cli.StringList
	cc.fs.Var(&tenants, "tenant", "only this tenant's events (repeatable; default all)")
	cfg, log, err := cc.parse(args, e)
	if err != nil {
		return err
	}
	pc, sc, err := replayTarget(cfg, *pipelineName, *sinkName)
	if err != nil {
		return err
	}
	scope, err := backfill.ParseFrom(*from)
	if err != nil {
		return cli.Usagef("--from: %v", err)
	}
	scope.Tenants = tenants

	cp, err := assemble.NewPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn")
	if err != nil {
		return err
	}
	defer cp.Close()
	if err := assemble.WaitReachable(ctx, cp, "the checkpoint database", false, nil); err != nil {
		return err
	}
	store := backfill.NewStore(cp, pc.Checkpoints.Schema)
	if err := store.Init(ctx); err != nil {
		return err
	}
	if err := store.Request(ctx, pc.Name, sc.Name, scope); err != nil {
		if errors.Is(err, backfill.ErrInProgress) {
			return fmt.Errorf("pipeline %s: sink %s: a replay of it is in progress (cdc status shows it); wait for it to finish", pc.Name, sc.Name)
		}
		return err
	}
	src, err := assemble.NewPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return err
	}
	defer src.Close()
	slot, err := replication.Slot(ctx, src, pc.Source.Slot)
	if err != nil {
		return err
	}
	w := &progressWriter{out: e.stderr, terminal: cli.IsTerminal(e.stderr), what: pc.Name + "/" + sc.Name}
	if slot.Active {
		fmt.Fprintf(e.stderr, "cdc: replay of %s/%s (%s) handed to the running instance %s\n", pc.Name, sc.Name, scope, slot.Holder)
		return watchReplay(ctx, store, pc.Name, sc.Name, w)
	}
	fmt.Fprintf(e.stderr, "cdc: no instance runs pipeline %s: running it here until sink %s is back on the live stream\n", pc.Name, sc.Name)
	return runReplay(ctx, pc, store, sc.Name, w, e, log)
}

// replayTarget finds the pipeline and sink a replay names.
func replayTarget(cfg *config.Config, pipelineName, sinkName string) (*config.Pipeline, *config.Sink, error) {
	var pc *config.Pipeline
	switch {
	case pipelineName != "":
		selected, err := selectPipelines(cfg, []string{pipelineName})
		if err != nil {
			return nil, nil, err
		}
		pc = selected[0]
	case len(cfg.Pipelines) == 1:
		pc = &cfg.Pipelines[0]
	default:
		return nil, nil, cli.Usagef("--pipeline NAME is required: the configuration has %d pipelines", len(cfg.Pipelines))
	}
	if sinkName == "" {
		return nil, nil, cli.Usagef("--sink NAME is required")
	}
	sc, ok := pc.Sink(sinkName)
	if !ok {
		var names []string
		for _, s := range pc.Sinks {
			names = append(names, s.Name)
		}
		return nil, nil, cli.Usagef("--sink %s: pipeline %s has no such sink (configured: %v)", sinkName, pc.Name, names)
	}
	return pc, sc, nil
}

// watchReplay shows a replay's progress until it is done.
func watchReplay(ctx context.Context, store *backfill.Store, pipelineName, sink string, w *progressWriter) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		recs, err := store.Load(ctx, pipelineName)
		if err != nil {
			return err
		}
		rec := recs[sink]
		if rec == nil {
			return fmt.Errorf("pipeline %s: sink %s: the replay request disappeared (cdc teardown --checkpoints?)", pipelineName, sink)
		}
		w.show(rec)
		if rec.State == backfill.Done {
			w.finish(rec)
			return nil
		}
		select {
		case <-ctx.Done():
			w.interrupted()
			return nil
		case <-tick.C:
		}
	}
}

// runReplay runs the pipeline here until the replay is done, then stops it
// cleanly.
func runReplay(ctx context.Context, pc *config.Pipeline, store *backfill.Store, sink string, w *progressWriter, e env, log *slog.Logger) error {
	a := assemble.New(assemble.Options{Stdout: e.stdout, Wait: true, Logger: log})
	p, err := a.Open(ctx, pc)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer p.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	watchErr := make(chan error, 1)
	go func() { watchErr <- watchReplay(runCtx, store, pc.Name, sink, w) }()
	select {
	case err := <-watchErr:
		stop()
		if rerr := <-done; rerr != nil {
			return rerr
		}
		return err
	case err := <-done:
		stop()
		<-watchErr
		if err == nil && ctx.Err() == nil {
			err = errors.New("the pipeline stopped before the replay was done")
		}
		return err
	}
}

// progressWriter shows a replay's progress: a bar redrawn in place on a
// terminal, a line every few seconds otherwise.
type progressWriter struct {
	out      io.Writer
	terminal bool
	what     string
	last     time.Time
	shown    bool
}

func (w *progressWriter) show(r *backfill.Record) {
	every := 5 * time.Second
	if w.terminal {
		every = 200 * time.Millisecond
	}
	if time.Since(w.last) < every && w.shown {
		return
	}
	w.last, w.shown = time.Now(), true
	line := progressLine(w.what, r)
	if w.terminal {
		fmt.Fprintf(w.out, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(w.out, line)
}

func (w *progressWriter) finish(r *backfill.Record) {
	if w.terminal {
		fmt.Fprint(w.out, "\r\033[K")
	}
	d := r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond)
	fmt.Fprintf(w.out, "replay %s: done, %d events in %s; the sink is back on the live stream\n", w.what, r.Done, d)
}

func (w *progressWriter) interrupted() {
	if w.terminal && w.shown {
		fmt.Fprintln(w.out)
	}
	fmt.Fprintf(w.out, "replay %s: interrupted; it goes on where it got to when cdc runs the pipeline\n", w.what)
}

// progressLine is "replay p/s [=====>    ] 4,500/10,000 events 3,200/s ETA 2s".
func progressLine(what string, r *backfill.Record) string {
	switch {
	case r.State == backfill.Requested:
		return fmt.Sprintf("replay %s: waiting for the instance that holds the slot", what)
	case len(r.Segments) == 0 || r.Total == 0 && r.Done == 0:
		return fmt.Sprintf("replay %s: starting (catching up to the hand-off point)", what)
	}
	const width = 30
	frac := 1.0
	if r.Total > 0 {
		frac = min(float64(r.Done)/float64(r.Total), 1)
	}
	filled := int(frac * width)
	bar := make([]byte, width)
	for i := range bar {
		switch {
		case i < filled:
			bar[i] = '='
		case i == filled:
			bar[i] = '>'
		default:
			bar[i] = ' '
		}
	}
	eta := "?"
	if r.Rate > 0 {
		eta = (time.Duration(float64(r.Total-r.Done)/r.Rate) * time.Second).Round(time.Second).String()
	}
	line := fmt.Sprintf("replay %s [%s] %d/%d events %.0f/s ETA %s", what, bar, r.Done, r.Total, r.Rate, eta)
	if r.Error != "" {
		line += " (retrying: " + r.Error + ")"
	}
	return line
}
