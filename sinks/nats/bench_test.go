package nats

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/internal/natsserver"
)

// BenchmarkWrite writes batches of 1000 events of about 700 bytes (as
// envelopes) to a file-backed stream of a NATS server in the same process,
// so it measures the sink, the client and the server's JetStream, not a
// network ("memory": a memory-backed stream, without the server's file
// writes). "streams200" spreads each batch over 200 event streams (5
// events each); "hot" puts the whole batch in one stream, which the sink
// publishes one message at a time (see the package documentation). The
// events get new ids at each write, so that the stream does not drop them
// as duplicates.
func BenchmarkWrite(b *testing.B) {
	cases := []struct {
		name     string
		streams  int
		inFlight int
		storage  jetstream.StorageType
	}{
		{"streams200", 200, 0, jetstream.FileStorage},
		{"streams200/in_flight_64", 200, 64, jetstream.FileStorage},
		{"streams200/memory", 200, 0, jetstream.MemoryStorage},
		{"hot", 1, 0, jetstream.FileStorage},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			srv := startServer(b, natsserver.Config{})
			createStream(b, srv.URL(), jetstream.StreamConfig{Name: testStream, Subjects: []string{"events.>"}, Storage: c.storage})
			s := newSink(b, srv.URL(), Config{MaxInFlight: c.inFlight})
			events := makeEvents(c.streams, 1000/c.streams, 300, 1)
			ids := make([]string, len(events))
			var size int64
			for i, e := range events {
				ids[i] = e.ID
				size += int64(len(envelope.Append(nil, e)))
			}
			batch := cdc.Batch{Events: events}
			ctx := context.Background()
			nc, js := client(b, srv.URL())
			defer nc.Close()
			b.SetBytes(size)
			b.ReportAllocs()
			writes := 0
			for b.Loop() {
				b.StopTimer()
				for i, e := range events {
					e.ID = fmt.Sprintf("%s-%d", ids[i], writes)
				}
				if writes%50 == 49 { // keep the store small
					st, err := js.Stream(ctx, testStream)
					if err != nil {
						b.Fatal(err)
					}
					if err := st.Purge(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if err := s.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				writes++
			}
			b.ReportMetric(float64(writes*len(events))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
