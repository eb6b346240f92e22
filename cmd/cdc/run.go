package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/martencdc/cdc/metrics"
)

// cmdRun runs pipelines until SIGINT/SIGTERM, then flushes every sink,
// writes the checkpoints and returns.
func cmdRun(ctx context.Context, args []string, e env) error {
	cc := newConfigCommand("run")
	var names stringList
	cc.fs.Var(&names, "pipeline", "run only this pipeline (repeatable; default all)")
	metricsAddr := cc.fs.String("metrics-addr", "", "serve /metrics, /healthz and /readyz on this address, e.g. :9187")
	cfg, log, err := cc.parse(args, e)
	if err != nil {
		return err
	}
	selected, err := selectPipelines(cfg, names)
	if err != nil {
		return err
	}
	sinks := &sinkFactory{stdoutW: e.stdout, log: log}
	var runtimes []*runtime
	defer func() {
		for _, rt := range runtimes {
			rt.close()
		}
	}()
	instance := instanceID()
	var (
		reg *prometheus.Registry
		m   *metrics.Metrics
	)
	if *metricsAddr != "" {
		reg, m = newMetrics()
	}
	for _, pc := range selected {
		rt, err := openRuntime(ctx, pc, sinks, m, instance, true, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted while waiting for the server
			}
			return err
		}
		runtimes = append(runtimes, rt)
	}
	if *metricsAddr != "" {
		srv, err := serveMetrics(ctx, *metricsAddr, reg, m, runtimes, log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	return runAll(ctx, runtimes, log)
}

// runAll runs the pipelines side by side; the first that fails stops the
// others, which still drain.
func runAll(ctx context.Context, runtimes []*runtime, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, rt := range runtimes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.pipeline.Run(ctx, rt.stream); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("pipeline %s: %w", rt.cfg.Name, err))
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if len(errs) == 0 {
		log.Info("all pipelines stopped cleanly")
	}
	return errors.Join(errs...)
}
