package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/martencdc/cdc/admin"
	"github.com/martencdc/cdc/applied"
	"github.com/martencdc/cdc/assemble"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/metrics"
)

// cmdRun runs pipelines until SIGINT/SIGTERM, then flushes every sink,
// writes the checkpoints and returns.
func cmdRun(ctx context.Context, args []string, e env) error {
	cc := newConfigCommand("run")
	var names cli.StringList
	cc.fs.Var(&names, "pipeline", "run only this pipeline (repeatable; default all)")
	adminAddr := cc.fs.String("admin-addr", "", "serve the admin endpoints on this address, e.g. :9187: /metrics, /healthz, /readyz and /v1/wait (read your writes)")
	metricsAddr := cc.fs.String("metrics-addr", "", "the former name of --admin-addr, still accepted")
	waitPoll := cc.fs.Duration("wait-poll", applied.DefaultPollInterval, "how often /v1/wait reads the checkpoint table and the slot while someone waits (for pipelines this instance does not stream)")
	pprofAddr := cc.fs.String("pprof-addr", "", "serve Go's profiles (net/http/pprof, /debug/pprof/) on this address, e.g. localhost:6060; its own listener, not the admin one")
	cfg, log, err := cc.parse(args, e)
	if err != nil {
		return err
	}
	addr, flagName, err := adminAddress(*adminAddr, *metricsAddr)
	if err != nil {
		return err
	}
	selected, err := selectPipelines(cfg, names)
	if err != nil {
		return err
	}
	var (
		reg   *prometheus.Registry
		m     *metrics.Metrics
		waits *assemble.Waits
	)
	opening := make([]*openingPipeline, len(selected))
	for i, pc := range selected {
		opening[i] = &openingPipeline{name: pc.Name}
	}
	opts := assemble.Options{Stdout: e.stdout, Wait: true, Logger: log}
	if addr != "" {
		reg, m = metrics.NewRegistry()
		opts.Metrics = m
		// Every configured pipeline is answered for, run here or not:
		// from this process's pipeline when it holds the slot, and from
		// the checkpoint table and the slot in any case.
		waits = assemble.NewWaits(cfg, func(name string) *assemble.Pipeline {
			for _, o := range opening {
				if o.name == name {
					return o.p.Load()
				}
			}
			return nil
		}, *waitPoll, log)
		defer waits.Close()
		opts.Reached = waits.Advance
	}
	a := assemble.New(opts)
	var pipelines []*assemble.Pipeline
	defer func() {
		for _, p := range pipelines {
			p.Close()
		}
	}()
	// The admin listener comes first: while cdc waits for its databases,
	// /healthz says it is alive and /readyz that it is starting, so a
	// liveness probe does not restart it in a loop.
	if addr != "" {
		ready := make([]admin.Pipeline, len(selected))
		for i := range selected {
			ready[i] = opening[i]
		}
		srv, err := admin.Serve(ctx, addr, admin.Endpoints{Registry: reg, Pipelines: ready, Waits: waits, Txs: waits}, log)
		if errors.Is(err, admin.ErrListen) {
			return cli.Usagef("--%s %s: %v", flagName, addr, err)
		}
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	if *pprofAddr != "" {
		srv, err := admin.ServeProfiles(ctx, *pprofAddr, log)
		if errors.Is(err, admin.ErrListen) {
			return cli.Usagef("--pprof-addr %s: %v", *pprofAddr, err)
		}
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	for i, pc := range selected {
		p, err := a.Open(ctx, pc)
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted while waiting for the server
			}
			return err
		}
		pipelines = append(pipelines, p)
		if addr != "" {
			m.AddProbe(p.Name(), p.Probe)
		}
		opening[i].p.Store(p)
	}
	// A process paused (SIGSTOP) and resumed may have lost its slots
	// meanwhile: every pipeline connects again before writing more.
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	go func() {
		for range cont {
			log.Warn("the process was paused and resumed (SIGCONT): every pipeline reconnects before its sinks write more", "component", "cdc")
			for _, p := range pipelines {
				p.Resumed()
			}
		}
	}()
	return assemble.RunAll(ctx, pipelines, log)
}

// adminAddress returns the admin listener's address from --admin-addr and
// its former name --metrics-addr, with the flag it came from (for errors).
func adminAddress(adminAddr, metricsAddr string) (addr, flag string, err error) {
	switch {
	case adminAddr != "" && metricsAddr != "" && adminAddr != metricsAddr:
		return "", "", cli.Usagef("--admin-addr %s and --metrics-addr %s: --metrics-addr is the former name of --admin-addr; give one", adminAddr, metricsAddr)
	case adminAddr != "":
		return adminAddr, "admin-addr", nil
	}
	return metricsAddr, "metrics-addr", nil
}

// openingPipeline answers /readyz for a pipeline that may still be opening
// (waiting for its databases): not ready, "starting", until it is open.
type openingPipeline struct {
	name string
	p    atomic.Pointer[assemble.Pipeline]
}

func (o *openingPipeline) Name() string { return o.name }

func (o *openingPipeline) Ready(now time.Time) (bool, string) {
	if p := o.p.Load(); p != nil {
		return p.Ready(now)
	}
	return false, "starting: waiting for the databases"
}
