package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// newCluster starts a kfake cluster of three brokers, closed at the end of
// the test.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// createTopic creates a topic of n partitions with the given configs.
func createTopic(t testing.TB, c *kfake.Cluster, name string, n int32, configs map[string]string) {
	t.Helper()
	if err := c.CreateTopic(name, n, configs); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// newSink returns a sink over the cluster, closed at the end of the test.
// The template defaults to the constant topic.
func newSink(t testing.TB, c *kfake.Cluster, topic string, cfg Config) *Sink {
	t.Helper()
	if cfg.Brokers == nil {
		cfg.Brokers = c.ListenAddrs()
	}
	if cfg.Topic == nil {
		cfg.Topic = route.MustParse(topic)
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

var (
	eventTypes = sinktest.EventTypes
	tenants    = sinktest.Tenants
)

// makeEvents returns versions events of each of streams streams,
// interleaved (version 1 of every stream, then version 2, ...), with
// bodies of about pad bytes. Their SeqIDs start at firstSeq. The type of an
// event depends on its stream (sinktest.TypeByStream), so that a stream
// stays in one topic of a template over the type; see sinktest.Events for
// the other fields.
func makeEvents(streams, versions, pad int, firstSeq int64) []*cdc.Event {
	return sinktest.Events(sinktest.Spec{Streams: streams, Versions: versions, Pad: pad, FirstSeq: firstSeq})
}

// readAll returns every record of the topic by partition, up to the high
// watermarks, reading with franz-go.
func readAll(t testing.TB, c *kfake.Cluster, topic string, opts ...kgo.Opt) map[int32][]*kgo.Record {
	t.Helper()
	end := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	for _, pi := range c.PartitionInfos(topic) {
		if pi.HighWatermark > 0 {
			end[pi.Partition] = pi.HighWatermark
			offsets[pi.Partition] = kgo.NewOffset().AtStart()
		}
	}
	got := map[int32][]*kgo.Record{}
	if len(end) == 0 {
		return got
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := func() bool {
		for p, hw := range end {
			rs := got[p]
			if len(rs) == 0 || rs[len(rs)-1].Offset+1 < hw {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: timed out with %d partitions of %d complete", topic, len(got), len(end))
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("reading %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], r) })
	}
	return got
}

// count returns how many records the topic holds, from the high watermarks.
func count(c *kfake.Cluster, topic string) int64 {
	var n int64
	for _, pi := range c.PartitionInfos(topic) {
		n += pi.HighWatermark
	}
	return n
}

// recordHeader returns the value of the record's header key, and whether it is
// present.
func recordHeader(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// occurrences counts the records of each event id.
func occurrences(t testing.TB, records map[int32][]*kgo.Record) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, rs := range records {
		for _, r := range rs {
			id, ok := recordHeader(r, HeaderEventID)
			if !ok {
				t.Fatalf("record %d/%d has no %s header", r.Partition, r.Offset, HeaderEventID)
			}
			n[id]++
		}
	}
	return n
}

// checkOrder checks that in every partition the first occurrences of each
// stream's events are in version order, and that a stream is in one
// partition only.
func checkOrder(t testing.TB, events []*cdc.Event, records map[int32][]*kgo.Record) {
	t.Helper()
	byID := map[string]*cdc.Event{}
	for _, e := range events {
		byID[e.ID] = e
	}
	home := map[string]int32{}
	for p, rs := range records {
		seen := map[string]bool{}
		last := map[string]int64{}
		for _, r := range rs {
			id, _ := recordHeader(r, HeaderEventID)
			if seen[id] {
				continue
			}
			seen[id] = true
			e := byID[id]
			if e == nil {
				t.Fatalf("record %d/%d is of no event written", p, r.Offset)
			}
			if h, ok := home[e.StreamID]; ok && h != p {
				t.Errorf("stream %s in partitions %d and %d", e.StreamID, h, p)
			}
			home[e.StreamID] = p
			if e.Version <= last[e.StreamID] {
				t.Errorf("partition %d offset %d: stream %s version %d first seen after version %d", p, r.Offset, e.StreamID, e.Version, last[e.StreamID])
			}
			last[e.StreamID] = e.Version
		}
	}
}

// checkAll checks that every event is present at least once (want 0: any
// number of times) or exactly want times.
func checkAll(t testing.TB, events []*cdc.Event, n map[string]int, want int) {
	t.Helper()
	for _, e := range events {
		switch {
		case n[e.ID] == 0:
			t.Errorf("event %s (stream %s version %d) missing", e.ID, e.StreamID, e.Version)
		case want > 0 && n[e.ID] != want:
			t.Errorf("event %s present %d times, want %d", e.ID, n[e.ID], want)
		}
	}
}
