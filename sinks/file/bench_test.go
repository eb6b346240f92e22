package file

import (
	"context"
	"fmt"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/route"
)

// BenchmarkWrite writes batches of 1000 events spread over 8 files (by type)
// or one file (a constant path); each batch ends with the files' fsyncs.
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"one_file", "all.jsonl"},
		{"eight_files", "{{.TenantID}}/{{.Type}}.jsonl"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := New(Config{Path: route.MustParse(bc.path), Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			events := make([]*cdc.Event, 1000)
			for i := range events {
				events[i] = ev(fmt.Sprint(i), fmt.Sprint("tenant", i%2), fmt.Sprint("type", i%4))
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}
