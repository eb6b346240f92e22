package kafka

import (
	"context"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
)

// BenchmarkWrite writes batches of 1000 events of about 700 bytes (as
// envelopes) from 200 streams to a topic of 12 partitions on a kfake
// cluster of 3 brokers in the same process, so it measures the sink and
// kafka-go's encoding more than a network.
func BenchmarkWrite(b *testing.B) {
	for _, comp := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		b.Run(string(comp), func(b *testing.B) {
			c := newCluster(b)
			createTopic(b, c, "bench", 12, nil)
			s := newSink(b, c, "bench", Config{Compression: comp})
			events := makeEvents(200, 5, 300, 1)
			var size int64
			for _, e := range events {
				size += int64(len(envelope.Append(nil, e)))
			}
			batch := cdc.Batch{Events: events}
			ctx := context.Background()
			b.SetBytes(size)
			b.ReportAllocs()
			writes := 0
			for b.Loop() {
				if err := s.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if writes++; writes%50 == 0 { // keep kfake's memory bounded
					b.StopTimer()
					for _, pi := range c.PartitionInfos("bench") {
						if err := c.DeleteRecords("bench", pi.Partition, pi.HighWatermark); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(writes*len(events))/sec, "events/s")
		})
	}
}
