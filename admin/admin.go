// Package admin is cdc's admin HTTP listener: /metrics (Prometheus),
// /healthz (the process is alive: point a liveness probe here) and /readyz
// (every pipeline streams, or stands by for another instance, and no sink is
// stopped or failing past its grace: point a readiness probe and alerts
// here, not a liveness probe, since restarting does not fix a rejected
// event or a target that is down).
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pipeline is what the listener asks of a running pipeline
// (assemble.Pipeline): whether it is healthy, and why in one line.
type Pipeline interface {
	Name() string
	Ready(now time.Time) (ok bool, why string)
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
		now := time.Now()
		var b strings.Builder
		code := http.StatusOK
		for _, p := range pipelines {
			ok, why := p.Ready(now)
			if !ok {
				code = http.StatusServiceUnavailable
			}
			fmt.Fprintf(&b, "pipeline %s: %s\n", p.Name(), why)
		}
		w.WriteHeader(code)
		io.WriteString(w, b.String())
	})
	return mux
}
