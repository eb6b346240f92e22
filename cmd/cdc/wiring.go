package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/deadletter"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/internal/retry"
	"github.com/martencdc/cdc/metrics"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

// runtime is one pipeline ready to run: its connections, stores, stream and
// router.
type runtime struct {
	cfg      *config.Pipeline
	src, cp  *pgxpool.Pool
	stream   *replication.Stream
	pipeline *pipeline.Pipeline
}

func (rt *runtime) close() {
	if rt.cp != nil && rt.cp != rt.src {
		rt.cp.Close()
	}
	if rt.src != nil {
		rt.src.Close()
	}
}

// problemsError is a list of one-line problems found on the server.
type problemsError struct {
	pipeline string
	problems []error
}

func (e *problemsError) Error() string {
	lines := make([]string, len(e.problems))
	for i, p := range e.problems {
		lines[i] = "pipeline " + e.pipeline + ": " + oneLine(p.Error())
	}
	return strings.Join(lines, "\n")
}

// replicationConfig maps a pipeline's configuration to the replication
// package's.
func replicationConfig(pc *config.Pipeline, log *slog.Logger) replication.Config {
	host, _ := os.Hostname()
	return replication.Config{
		Slot:            pc.Source.Slot,
		Publication:     pc.Source.Publication,
		Schema:          pc.Source.Schema,
		Filter:          pc.Source.Filter,
		StatusInterval:  pc.StatusInterval,
		StandbyRetry:    pc.StandbyRetry,
		ApplicationName: truncate(fmt.Sprintf("cdc %s %s:%d", pc.Name, host, os.Getpid()), 63),
		Logger:          log,
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// newPool makes a connection pool; it does not connect yet. key names the
// configuration key in errors (the DSN itself is never shown).
func newPool(ctx context.Context, dsn, key string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, usagef("%s: %v", key, err)
	}
	pc.MaxConns = 4
	pc.ConnConfig.RuntimeParams["application_name"] = "cdc"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return pool, nil
}

// waitReachable pings the server until it answers. With wait false it tries
// once. Authentication failures are returned at once.
func waitReachable(ctx context.Context, pool *pgxpool.Pool, what string, wait bool, log *slog.Logger) error {
	delay := retry.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return nil
		}
		if !wait || replication.IsAuthError(err) || ctx.Err() != nil {
			return fmt.Errorf("connect to %s: %s", what, oneLine(err.Error()))
		}
		d := delay.Next()
		log.Warn("database not reachable; retrying", "database", what, "err", err, "retry_in", d)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// openRuntime connects, checks the server, creates the publication, slot and
// tables when missing and assembles the pipeline. With wait, an unreachable
// server is retried instead of failing.
//
// m, when not nil, counts and times every sink's writes and dead letters.
func openRuntime(ctx context.Context, pc *config.Pipeline, sinks *sinkFactory, m *metrics.Metrics, instance string, wait bool, log *slog.Logger) (_ *runtime, err error) {
	log = log.With("pipeline", pc.Name)
	rt := &runtime{cfg: pc}
	defer func() {
		if err != nil {
			rt.close()
		}
	}()
	if rt.src, err = newPool(ctx, pc.Source.DSN, "pipeline "+pc.Name+": source.dsn"); err != nil {
		return nil, err
	}
	rt.cp = rt.src
	if pc.Checkpoints.DSN != pc.Source.DSN {
		if rt.cp, err = newPool(ctx, pc.Checkpoints.DSN, "pipeline "+pc.Name+": checkpoints.dsn"); err != nil {
			return nil, err
		}
	}
	if err := waitReachable(ctx, rt.src, "the source database", wait, log); err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
	}
	rcfg := replicationConfig(pc, log.With("component", "replication"))
	if problems := replication.Check(ctx, rt.src, rcfg, decoder.RequiredColumns()); len(problems) > 0 {
		return nil, &problemsError{pipeline: pc.Name, problems: problems}
	}
	if pc.Source.Start == config.StartBeginning {
		return nil, &problemsError{pipeline: pc.Name, problems: []error{errors.New("source.start: beginning (backfill from the table) is not available in this version; use now")}}
	}
	created, err := replication.Setup(ctx, rt.src, rcfg)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
	}
	if created {
		log.Info("created replication slot; events committed from now on are delivered", "slot", pc.Source.Slot)
	}
	if rt.cp != rt.src {
		if err := waitReachable(ctx, rt.cp, "the checkpoint database", wait, log); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
		}
	}
	store := checkpoint.New(rt.cp, pc.Checkpoints.Schema)
	if err := store.Init(ctx); err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
	}
	pcfg := pipeline.Config{
		Name:        pc.Name,
		Decoder:     decoder.Config{Schema: pc.Source.Schema},
		Checkpoints: store,
		Instance:    instance,
		Logger:      log,
	}
	traits, err := detectStore(ctx, rt.src, pc.Name, pc.Source.Schema)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
	}
	for i := range pc.Sinks {
		sc := &pc.Sinks[i]
		target, resume, err := sinks.build(ctx, sc, traits, log)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
		}
		if m != nil {
			target = m.Sink(pc.Name, sc.Name, target)
		}
		onError := pipeline.Stop
		if sc.OnError == config.OnErrorDeadLetter {
			onError = pipeline.DeadLetter
			if pcfg.DeadLetters == nil {
				dl := deadletter.New(rt.cp, pc.Checkpoints.Schema)
				if err := dl.Init(ctx); err != nil {
					return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
				}
				pcfg.DeadLetters = dl
				if m != nil {
					pcfg.DeadLetters = m.DeadLetters(dl)
				}
			}
		}
		pcfg.Sinks = append(pcfg.Sinks, pipeline.SinkConfig{
			Name:    sc.Name,
			Sink:    target,
			Batch:   sc.Batch,
			Filter:  pipeline.Filter{Include: sc.Include, Exclude: sc.Exclude, Tenants: sc.Tenants},
			OnError: onError,
			Resume:  resume,
		})
	}
	if rt.pipeline, err = pipeline.New(pcfg); err != nil {
		return nil, err
	}
	if rt.stream, err = replication.NewStream(pc.Source.DSN, rt.src, rcfg); err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
	}
	return rt, nil
}

// instanceID names this process in checkpoint rows and logs.
func instanceID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// oneLine joins the lines of a multi-line message (pgconn lists every
// address it tried on its own line) so that each problem prints as one line.
func oneLine(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	parts := strings.Split(s, "\n")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), "; ")
}
