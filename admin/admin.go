// Package admin is cdc's admin HTTP listener (cdc run --admin-addr):
// /metrics (Prometheus), /healthz (the process is alive: point a liveness
// probe here), /v1/wait (read your writes: answers once a sink has applied
// a commit, see package applied) and /readyz
// (every pipeline streams, or stands by for another instance, and no sink is
// stopped or failing past its grace: point a readiness probe and alerts
// here, not a liveness probe, since restarting does not fix a rejected
// event or a target that is down). ServeProfiles serves Go's profiling
// endpoints (net/http/pprof) on a listener of their own.
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/martencdc/cdc/applied"
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

// Endpoints is what the admin listener serves.
type Endpoints struct {
	Registry  *prometheus.Registry // /metrics; nil serves an empty registry
	Pipelines []Pipeline           // /readyz
	// Waits answers /v1/wait (read your writes); nil answers 404.
	Waits Waiter
	// Txs resolves txid= in /v1/wait; nil refuses txid (400).
	Txs applied.TxLSNs
}

// Serve listens on addr and serves the admin endpoints in the background
// until ctx ends or the returned server is closed.
func Serve(ctx context.Context, addr string, e Endpoints, log *slog.Logger) (*http.Server, error) {
	log = log.With("component", "admin")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrListen, err)
	}
	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "endpoints", "/metrics /healthz /readyz /v1/wait")
	return srv, nil
}

// Handler returns the admin endpoints without /v1/wait: /metrics of reg,
// /healthz, and /readyz of pipelines.
func Handler(reg *prometheus.Registry, pipelines []Pipeline) http.Handler {
	return Endpoints{Registry: reg, Pipelines: pipelines}.Handler()
}

// Handler returns the admin endpoints: /metrics, /healthz, /readyz and
// /v1/wait.
func (e Endpoints) Handler() http.Handler {
	reg, pipelines := e.Registry, e.Pipelines
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
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
	mux.Handle("/v1/wait", serveWait(e.Waits, e.Txs))
	return mux
}

// ServeProfiles listens on addr and serves Go's profiling endpoints
// (net/http/pprof under /debug/pprof/) in the background until ctx ends or
// the returned server is closed. It is a listener of its own, apart from
// the admin endpoints', so that profiles are exposed only where asked for.
func ServeProfiles(ctx context.Context, addr string, log *slog.Logger) (*http.Server, error) {
	log = log.With("component", "admin")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrListen, err)
	}
	srv := &http.Server{
		Handler:           ProfileHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("profiling listener stopped", "err", err)
		}
	}()
	log.Info("serving pprof", "addr", ln.Addr().String())
	return srv, nil
}

// ProfileHandler returns net/http/pprof's endpoints under /debug/pprof/, on
// a mux of its own (not http.DefaultServeMux).
func ProfileHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also the named profiles: heap, goroutine, block...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
