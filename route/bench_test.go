package route

import (
	"strconv"
	"testing"

	"github.com/martencdc/cdc"
)

// benchEvents are events of 8 types in 4 tenants with distinct streams.
func benchEvents() []*cdc.Event {
	events := make([]*cdc.Event, 1024)
	for i := range events {
		e := event()
		e.Type = "event_type_" + strconv.Itoa(i%8)
		e.TenantID = "tenant_" + strconv.Itoa(i%4)
		e.StreamID = "0192f0c4-0000-7000-8000-" + strconv.Itoa(100000000000+i)
		events[i] = e
	}
	return events
}

func benchmarkRender(b *testing.B, tm *Template) {
	events := benchEvents()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := tm.Render(events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender compares the three paths of Render: a constant, a cached
// template over Type and TenantID, the same template executed every time,
// and a template over StreamID (never cached).
func BenchmarkRender(b *testing.B) {
	b.Run("constant", func(b *testing.B) { benchmarkRender(b, MustParse("helpdesk-events")) })
	b.Run("type_tenant_cached", func(b *testing.B) { benchmarkRender(b, MustParse("helpdesk.{{.TenantID}}.{{.Type}}")) })
	b.Run("type_tenant_uncached", func(b *testing.B) {
		tm := MustParse("helpdesk.{{.TenantID}}.{{.Type}}")
		tm.keyed, tm.cache = 0, nil
		benchmarkRender(b, tm)
	})
	b.Run("stream_id", func(b *testing.B) { benchmarkRender(b, MustParse("streams/{{.StreamID}}")) })
	b.Run("type_cached_parallel", func(b *testing.B) {
		tm := MustParse("helpdesk.{{.Type}}")
		events := benchEvents()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, err := tm.Render(events[i%len(events)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("out/{{.TenantID}}/{{.Type}}.jsonl"); err != nil {
			b.Fatal(err)
		}
	}
}
