// Package admin is cdc's admin HTTP listener: /metrics (Prometheus),
// /healthz (the process is alive) and /readyz (every pipeline streams or
// stands by healthily).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/martencdc/cdc/replication"
)

// Pipeline is what the listener asks of a running pipeline
// (assemble.Pipeline).
type Pipeline interface {
	Name() string
	State() replication.State
}

// ErrListen matches the error of Serve when it cannot listen on the
// address (taken, or not an address).
var ErrListen = errors.New("cannot listen")

// Serve listens on addr and serves the admin endpoints in the background
// until ctx ends or the returned server is closed.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, pipelines []Pipeline, log *slog.Logger) (*http.Server, error) {
	log = log.With("component", "admin")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrListen, err)
	}
	srv := &http.Server{
		Handler:           Handler(reg, pipelines),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return srv, nil
}

// Handler returns the admin endpoints.
func Handler(reg *prometheus.Registry, pipelines []Pipeline) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, p := range pipelines {
			st := p.State()
			if st != replication.StateStreaming && st != replication.StateStandby {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "pipeline %s: %s\n", p.Name(), st)
				return
			}
		}
		for _, p := range pipelines {
			fmt.Fprintf(w, "pipeline %s: %s\n", p.Name(), p.State())
		}
	})
	return mux
}
