package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/martencdc/cdc/metrics"
	"github.com/martencdc/cdc/replication"
)

// newMetrics returns the registry and metrics of a process.
func newMetrics() (*prometheus.Registry, *metrics.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, metrics.New(reg)
}

// probe reads a running pipeline's gauges.
func (rt *runtime) probe(ctx context.Context) metrics.Snapshot {
	snap := metrics.Snapshot{Active: rt.stream.State() == replication.StateStreaming, RetainedWAL: -1}
	slot, err := replication.Slot(ctx, rt.src, rt.cfg.Source.Slot)
	if err == nil && slot.Exists {
		snap.RetainedWAL = slot.RetainedBytes
	}
	now := time.Now()
	for _, s := range rt.pipeline.Status() {
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

// serveMetrics serves /metrics, /healthz (the process is alive) and /readyz
// (every pipeline streams or stands by healthily) until ctx ends.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, m *metrics.Metrics, runtimes []*runtime, log *slog.Logger) (*http.Server, error) {
	for _, rt := range runtimes {
		m.AddProbe(rt.cfg.Name, rt.probe)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, rt := range runtimes {
			st := rt.stream.State()
			if st != replication.StateStreaming && st != replication.StateStandby {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "pipeline %s: %s\n", rt.cfg.Name, st)
				return
			}
		}
		for _, rt := range runtimes {
			fmt.Fprintf(w, "pipeline %s: %s\n", rt.cfg.Name, rt.stream.State())
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("--metrics-addr %s: %v", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return srv, nil
}
