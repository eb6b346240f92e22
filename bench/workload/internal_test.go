package workload

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc/internal/marten"
)

func TestPacerSchedule(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	tests := []struct {
		name  string
		rate  int
		calls []struct {
			n   int
			now time.Duration // after t0
		}
		want []time.Duration // slot starts after t0
	}{
		{
			name: "writers ahead of the schedule get consecutive slots",
			rate: 1000,
			calls: []struct {
				n   int
				now time.Duration
			}{{10, 0}, {10, 0}, {5, 1 * ms}, {10, 2 * ms}},
			want: []time.Duration{0, 10 * ms, 20 * ms, 25 * ms},
		},
		{
			name: "time lost when every writer is late is not made up",
			rate: 2000,
			calls: []struct {
				n   int
				now time.Duration
			}{{10, 0}, {10, 100 * ms}, {10, 101 * ms}},
			want: []time.Duration{0, 100 * ms, 105 * ms},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &pacer{perEvent: float64(time.Second) / float64(tt.rate)}
			for i, c := range tt.calls {
				if got := p.reserve(c.n, t0.Add(c.now)).Sub(t0); got != tt.want[i] {
					t.Errorf("call %d: slot at %v, want %v", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestGeneratorBodies(t *testing.T) {
	stream := marten.NewID()
	tests := []struct {
		name string
		size int
	}{
		{"not padded", 0},
		{"smaller than the bodies", 50},
		{"1 KiB", 1024},
		{"16 KiB", 16 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGenerator(rand.New(rand.NewPCG(1, 2)), tt.size)
			events := g.events(stream, 50)
			if len(events) != 50 {
				t.Fatalf("%d events, want 50", len(events))
			}
			for _, e := range events {
				var body map[string]any
				if err := json.Unmarshal(e.Data, &body); err != nil {
					t.Fatalf("%s body %s: %v", e.Type, e.Data, err)
				}
				if body["IncidentId"] != stream {
					t.Errorf("%s body has IncidentId %v, want the stream id %s", e.Type, body["IncidentId"], stream)
				}
				if tt.size > 400 && len(e.Data) != tt.size {
					t.Errorf("%s body of %d bytes, want %d", e.Type, len(e.Data), tt.size)
				}
				if tt.size < 100 && strings.Contains(string(e.Data), "Notes") {
					t.Errorf("%s body padded: %s", e.Type, e.Data)
				}
				if e.Type == "" || e.DotnetType == "" || e.ID == "" {
					t.Errorf("event without type, .NET type or id: %+v", e)
				}
			}
		})
	}
}
