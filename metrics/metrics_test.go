package metrics_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/metrics"
)

type nopSink struct{}

func (nopSink) Write(context.Context, cdc.Batch) error { return nil }
func (nopSink) Close(context.Context) error            { return nil }

// gather returns every series of reg as "name{label=value,...}" -> value,
// labels in the order Prometheus sorts them; histograms give their _count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func ptr(v int64) *int64 { return &v }

func merge(a, b map[string]float64) map[string]float64 {
	maps.Copy(a, b)
	return a
}

// TestFromStart: every series of a sink and of a pipeline's probe is
// exported before anything happened, with its labels, at 0 for the
// counters; wal_status is one series per status with 1 on the slot's;
// safe_wal_size is absent when PostgreSQL reports NULL.
func TestFromStart(t *testing.T) {
	const sink = "{pipeline=helpdesk,sink=bus}"
	perSink := []string{
		"cdc_events_delivered_total" + sink, "cdc_batches_total" + sink, "cdc_sink_batch_duration_seconds" + sink,
		"cdc_dead_letters_total" + sink, "cdc_replay_events_total" + sink, "cdc_replay_remaining_events" + sink,
	}
	probed := []string{
		"cdc_sink_lag_bytes" + sink, "cdc_sink_lag_seconds" + sink, "cdc_sink_pending_events" + sink,
		"cdc_slot_retained_wal_bytes{pipeline=helpdesk}", "cdc_replication_active{pipeline=helpdesk}",
	}
	statuses := func(current string) map[string]float64 {
		out := map[string]float64{}
		for _, s := range []string{"reserved", "extended", "unreserved", "lost"} {
			out["cdc_slot_wal_status{pipeline=helpdesk,status="+s+"}"] = 0
		}
		out["cdc_slot_wal_status{pipeline=helpdesk,status="+current+"}"] = 1
		return out
	}
	tests := []struct {
		name   string
		snap   metrics.Snapshot
		want   map[string]float64 // series that must be there, with their value
		absent []string           // series that must not be there
	}{
		{
			name: "limited",
			snap: metrics.Snapshot{Active: true, RetainedWAL: 4096, WALStatus: "reserved", SafeWALSize: ptr(1 << 30),
				Sinks: []metrics.SinkSnapshot{{Name: "bus"}}},
			want: merge(statuses("reserved"), map[string]float64{
				"cdc_slot_safe_wal_size_bytes{pipeline=helpdesk}": 1 << 30,
				"cdc_slot_retained_wal_bytes{pipeline=helpdesk}":  4096,
				"cdc_replication_active{pipeline=helpdesk}":       1,
			}),
		},
		{
			name: "unreserved",
			snap: metrics.Snapshot{RetainedWAL: 4096, WALStatus: "unreserved", SafeWALSize: ptr(-8192),
				Sinks: []metrics.SinkSnapshot{{Name: "bus"}}},
			want: merge(statuses("unreserved"), map[string]float64{
				"cdc_slot_safe_wal_size_bytes{pipeline=helpdesk}": -8192,
				"cdc_replication_active{pipeline=helpdesk}":       0,
			}),
		},
		{
			name: "unlimited",
			snap: metrics.Snapshot{RetainedWAL: 0, WALStatus: "reserved", Sinks: []metrics.SinkSnapshot{{Name: "bus"}}},
			want: statuses("reserved"), absent: []string{"cdc_slot_safe_wal_size_bytes{pipeline=helpdesk}"},
		},
		{
			name: "lost",
			snap: metrics.Snapshot{RetainedWAL: 0, WALStatus: "lost", Sinks: []metrics.SinkSnapshot{{Name: "bus"}}},
			want: statuses("lost"), absent: []string{"cdc_slot_safe_wal_size_bytes{pipeline=helpdesk}"},
		},
		{
			name: "slot unknown",
			snap: metrics.Snapshot{RetainedWAL: -1, Sinks: []metrics.SinkSnapshot{{Name: "bus"}}},
			want: map[string]float64{"cdc_replication_active{pipeline=helpdesk}": 0},
			absent: []string{"cdc_slot_retained_wal_bytes{pipeline=helpdesk}", "cdc_slot_safe_wal_size_bytes{pipeline=helpdesk}",
				"cdc_slot_wal_status{pipeline=helpdesk,status=reserved}"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := metrics.New(reg)
			m.Sink("helpdesk", "bus", nopSink{})
			m.DeadLetters(nil) // wrapping the store creates nothing by itself
			m.AddProbe("helpdesk", func(context.Context) metrics.Snapshot { return tt.snap })
			got := gather(t, reg)
			for _, k := range perSink {
				if v, ok := got[k]; !ok || v != 0 {
					t.Errorf("%s = %v (exported: %v), want 0 from the start", k, v, ok)
				}
			}
			for _, k := range probed {
				if _, ok := got[k]; !ok && !slices.Contains(tt.absent, k) {
					t.Errorf("%s not exported; have %v", k, slices.Sorted(maps.Keys(got)))
				}
			}
			for k, want := range tt.want {
				if v, ok := got[k]; !ok || v != want {
					t.Errorf("%s = %v (exported: %v), want %v", k, v, ok, want)
				}
			}
			for _, k := range tt.absent {
				if v, ok := got[k]; ok {
					t.Errorf("%s = %v, want it absent", k, v)
				}
			}
		})
	}
}
