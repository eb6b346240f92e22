// Package metrics exposes cdc's Prometheus metrics (SPEC §7). Counters and
// the batch-duration histogram are decorators around sinks and dead-letter
// stores, so the pipeline itself knows nothing of Prometheus; gauges (lag,
// retained WAL, replication state) are read from a probe at scrape time.
//
//	cdc_events_delivered_total{pipeline,sink}        counter
//	cdc_batches_total{pipeline,sink}                 counter
//	cdc_sink_batch_duration_seconds{pipeline,sink}   histogram
//	cdc_dead_letters_total{pipeline,sink}            counter
//	cdc_sink_lag_bytes{pipeline,sink}                gauge
//	cdc_sink_lag_seconds{pipeline,sink}              gauge
//	cdc_sink_pending_events{pipeline,sink}           gauge
//	cdc_slot_retained_wal_bytes{pipeline}            gauge
//	cdc_slot_safe_wal_size_bytes{pipeline}           gauge: absent when unlimited or lost
//	cdc_slot_wal_status{pipeline,status}             gauge: 1 for the slot's wal_status, 0 for the others
//	cdc_replication_active{pipeline}                 gauge: 1 streaming, 0 standby or starting
//	cdc_replay_events_total{pipeline,sink}           counter: events a backfill made durable
//	cdc_replay_remaining_events{pipeline,sink}       gauge: events a backfill has still to deliver
//
// Every per-{pipeline,sink} series exists, at 0, from the moment the sink is
// wrapped ([Metrics.Sink]), so that rate() and increase() see the first
// event and an alert on a series that was never incremented can fire.
package metrics

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/martencdc/cdc"
)

// Metrics holds the counters and histograms shared by every pipeline.
type Metrics struct {
	delivered   *prometheus.CounterVec
	batches     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	deadLetters *prometheus.CounterVec
	replayed    *prometheus.CounterVec
	remaining   *prometheus.GaugeVec
	probes      *probeCollector

	mu     sync.Mutex
	replay map[[2]string]int64 // events durable per backfill, as last told
}

// NewRegistry returns a registry with the Go runtime's and the process's
// collectors and cdc's metrics registered.
func NewRegistry() (*prometheus.Registry, *Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, New(reg)
}

// New registers cdc's metrics with reg.
func New(reg prometheus.Registerer) *Metrics {
	labels := []string{"pipeline", "sink"}
	m := &Metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_events_delivered_total", Help: "Events a sink has durably accepted.",
		}, labels),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_batches_total", Help: "Batches written to a sink, successfully or not.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdc_sink_batch_duration_seconds", Help: "Time to write one batch to a sink.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, labels),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_dead_letters_total", Help: "Events a sink rejected that went to the dead-letter table.",
		}, labels),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_replay_events_total", Help: "Events a backfill (replay, start: beginning) made durable in a sink.",
		}, labels),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdc_replay_remaining_events", Help: "Events a backfill in progress has still to deliver to a sink.",
		}, labels),
		probes: &probeCollector{},
		replay: map[[2]string]int64{},
	}
	reg.MustRegister(m.delivered, m.batches, m.duration, m.deadLetters, m.replayed, m.remaining, m.probes)
	return m
}

// ReplayProgress records a backfill's progress: done of total events are
// durable in the sink. done only grows within one backfill; a smaller one
// starts another.
func (m *Metrics) ReplayProgress(pipeline, sink string, done, total int64) {
	m.mu.Lock()
	k := [2]string{pipeline, sink}
	prev := m.replay[k]
	if done < prev {
		prev = 0
	}
	m.replay[k] = done
	m.mu.Unlock()
	m.replayed.WithLabelValues(pipeline, sink).Add(float64(done - prev))
	m.remaining.WithLabelValues(pipeline, sink).Set(float64(max(total-done, 0)))
}

// Sink wraps s so its writes are counted and timed. It also creates the
// sink's series of every per-{pipeline,sink} counter, histogram and replay
// gauge at 0 (dead letters included, whatever the sink's on_error), so
// they are exported from the start rather than from their first change.
func (m *Metrics) Sink(pipeline, sink string, s cdc.Sink) cdc.Sink {
	m.deadLetters.WithLabelValues(pipeline, sink)
	m.replayed.WithLabelValues(pipeline, sink)
	m.remaining.WithLabelValues(pipeline, sink)
	return &sinkMetrics{
		Sink:      s,
		delivered: m.delivered.WithLabelValues(pipeline, sink),
		batches:   m.batches.WithLabelValues(pipeline, sink),
		duration:  m.duration.WithLabelValues(pipeline, sink),
	}
}

type sinkMetrics struct {
	cdc.Sink
	delivered, batches prometheus.Counter
	duration           prometheus.Observer
}

func (s *sinkMetrics) Write(ctx context.Context, b cdc.Batch) error {
	start := time.Now()
	err := s.Sink.Write(ctx, b)
	s.duration.Observe(time.Since(start).Seconds())
	s.batches.Inc()
	if err == nil {
		s.delivered.Add(float64(len(b.Events)))
	}
	return err
}

// DeadLetterWriter is the dead-letter store of a pipeline.
type DeadLetterWriter interface {
	Write(ctx context.Context, pipeline, sink string, e *cdc.Event, cause error) error
}

// DeadLetters wraps d so the dead letters it writes are counted.
func (m *Metrics) DeadLetters(d DeadLetterWriter) DeadLetterWriter {
	return &deadLetterMetrics{d: d, c: m.deadLetters}
}

type deadLetterMetrics struct {
	d DeadLetterWriter
	c *prometheus.CounterVec
}

func (d *deadLetterMetrics) Write(ctx context.Context, pipeline, sink string, e *cdc.Event, cause error) error {
	err := d.d.Write(ctx, pipeline, sink, e, cause)
	if err == nil {
		d.c.WithLabelValues(pipeline, sink).Inc()
	}
	return err
}

// Snapshot is a pipeline's state at scrape time.
type Snapshot struct {
	Active      bool  // holding the slot and streaming
	RetainedWAL int64 // bytes of WAL the slot retains; -1 if unknown
	// WALStatus is the slot's wal_status (reserved, extended, unreserved
	// or lost); "" if unknown, and then no cdc_slot_wal_status is exported.
	WALStatus string
	// SafeWALSize is the slot's safe_wal_size: bytes of WAL that may still
	// be written before the slot is in danger of losing WAL it needs
	// (negative once it is unreserved). nil when PostgreSQL reports NULL
	// (max_slot_wal_keep_size is -1, unlimited, or the slot is lost) or
	// when unknown; cdc_slot_safe_wal_size_bytes is then absent.
	SafeWALSize *int64
	Sinks       []SinkSnapshot
}

// walStatuses are the values of pg_replication_slots.wal_status that
// cdc_slot_wal_status exports, one series each.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

// SinkSnapshot is one sink's lag at scrape time.
type SinkSnapshot struct {
	Name       string
	LagBytes   int64
	LagSeconds float64
	Pending    int64
}

// Probe reads a pipeline's state; it is called at every scrape with a
// deadline.
type Probe func(ctx context.Context) Snapshot

// AddProbe adds a pipeline whose gauges are read from probe at scrape time.
func (m *Metrics) AddProbe(pipeline string, probe Probe) {
	m.probes.mu.Lock()
	defer m.probes.mu.Unlock()
	m.probes.probes = append(m.probes.probes, namedProbe{pipeline, probe})
}

type namedProbe struct {
	pipeline string
	probe    Probe
}

var (
	descLagBytes    = prometheus.NewDesc("cdc_sink_lag_bytes", "WAL bytes between the server's position and the sink's checkpoint.", []string{"pipeline", "sink"}, nil)
	descLagSeconds  = prometheus.NewDesc("cdc_sink_lag_seconds", "Age of the sink's checkpoint while it has events pending, else 0.", []string{"pipeline", "sink"}, nil)
	descPending     = prometheus.NewDesc("cdc_sink_pending_events", "Events received and not yet durably accepted by the sink.", []string{"pipeline", "sink"}, nil)
	descRetainedWAL = prometheus.NewDesc("cdc_slot_retained_wal_bytes", "WAL the pipeline's replication slot retains.", []string{"pipeline"}, nil)
	descSafeWAL     = prometheus.NewDesc("cdc_slot_safe_wal_size_bytes", "WAL that may still be written before the slot is in danger of losing WAL (pg_replication_slots.safe_wal_size); absent when max_slot_wal_keep_size is unlimited or the slot is lost.", []string{"pipeline"}, nil)
	descWALStatus   = prometheus.NewDesc("cdc_slot_wal_status", "1 for the slot's wal_status (reserved, extended, unreserved, lost), 0 for the others.", []string{"pipeline", "status"}, nil)
	descActive      = prometheus.NewDesc("cdc_replication_active", "1 while the pipeline holds its slot and streams, 0 while it stands by or starts.", []string{"pipeline"}, nil)
)

type probeCollector struct {
	mu     sync.Mutex
	probes []namedProbe
}

func (c *probeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLagBytes
	ch <- descLagSeconds
	ch <- descPending
	ch <- descRetainedWAL
	ch <- descSafeWAL
	ch <- descWALStatus
	ch <- descActive
}

func (c *probeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	probes := append([]namedProbe(nil), c.probes...)
	c.mu.Unlock()
	for _, p := range probes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s := p.probe(ctx)
		cancel()
		active := 0.0
		if s.Active {
			active = 1
		}
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, active, p.pipeline)
		if s.RetainedWAL >= 0 {
			ch <- prometheus.MustNewConstMetric(descRetainedWAL, prometheus.GaugeValue, float64(s.RetainedWAL), p.pipeline)
		}
		if s.SafeWALSize != nil {
			ch <- prometheus.MustNewConstMetric(descSafeWAL, prometheus.GaugeValue, float64(*s.SafeWALSize), p.pipeline)
		}
		if s.WALStatus != "" {
			statuses := walStatuses
			if !slices.Contains(statuses, s.WALStatus) {
				statuses = append(slices.Clip(statuses), s.WALStatus) // a status newer than this list
			}
			for _, st := range statuses {
				v := 0.0
				if st == s.WALStatus {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descWALStatus, prometheus.GaugeValue, v, p.pipeline, st)
			}
		}
		for _, k := range s.Sinks {
			ch <- prometheus.MustNewConstMetric(descLagBytes, prometheus.GaugeValue, float64(k.LagBytes), p.pipeline, k.Name)
			ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, k.LagSeconds, p.pipeline, k.Name)
			ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(k.Pending), p.pipeline, k.Name)
		}
	}
}
