package decoder

import (
	"strings"
	"testing"
)

// A typical Marten row: an event with about 300 bytes of JSON, metadata
// columns set.
var benchRow = row8.with(
	"data", txt(`{"IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "CustomerId": "c0000000-0000-4000-8000-000000000001", `+
		`"Description": "Printer on fire in the second floor meeting room", "LoggedBy": "c0000000-0000-4000-8000-0000000000aa", `+
		`"LoggedAt": "2026-11-22T10:00:00+00:00", "Priority": 2, "Tags": ["hardware", "urgent", "floor-2"]}`),
	"headers", txt(`{"source": "api", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`),
	"correlation_id", txt("4bf92f3577b34da6a3ce929d0e0e4736"),
	"causation_id", txt("018f0000-0000-7000-8000-0000000000cc"),
)

func BenchmarkDecodeInsert(b *testing.B) {
	msg := ins8(benchRow)
	d := New(Config{})
	if _, err := d.Decode(rel8); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Decode(begin1); err != nil {
		b.Fatal(err)
	}
	if m, err := d.Decode(msg); err != nil || m.Kind != KindEvent || !strings.Contains(string(m.Event.Data), "floor-2") {
		b.Fatalf("%v %v", m, err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		d.index = 0 // stay within one transaction without growing the index
		if _, err := d.Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeGolden decodes the whole marten8.hex capture: relations,
// transactions, events and skipped rows as PostgreSQL sent them.
func BenchmarkDecodeGolden(b *testing.B) {
	msgs := readGolden(b, "marten8.hex")
	var size int64
	for _, m := range msgs {
		size += int64(len(m.data))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		d := New(Config{})
		for _, m := range msgs {
			if _, err := d.Decode(m.data); err != nil {
				b.Fatal(err)
			}
		}
	}
}
