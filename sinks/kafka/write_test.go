package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/route"
)

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// TestWriteDelivery writes batches of interleaved streams and reads every
// record back: exactly once, in the partition franz-go's partitioner picks
// for the key, with the key, headers and value expected, each stream in
// order.
func TestWriteDelivery(t *testing.T) {
	c := newCluster(t)
	murmur2 := kgo.StickyKeyPartitioner(nil)
	sarama := kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))
	tests := []struct {
		name        string
		cfg         Config
		partitioner kgo.Partitioner
	}{
		{"defaults", Config{}, murmur2},
		{"fnv1a", Config{Partitioner: FNV1a}, sarama},
		{"key id", Config{Key: KeyID}, murmur2},
		{"key tenant", Config{Key: KeyTenantID}, murmur2},
		{"value data", Config{Value: ValueData}, murmur2},
		{"gzip", Config{Compression: CompressionGzip}, murmur2},
		{"snappy", Config{Compression: CompressionSnappy}, murmur2},
		{"lz4", Config{Compression: CompressionLZ4}, murmur2},
		{"zstd", Config{Compression: CompressionZstd, Partitioner: FNV1a}, sarama},
		{"several rounds", Config{MaxMessageBytes: 8 << 10}, murmur2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := "delivery-" + strconv.Itoa(i)
			createTopic(t, c, topic, 12, nil)
			s := newSink(t, c, topic, tt.cfg)
			events := makeEvents(40, 12, 500, 1)
			half := len(events) / 2
			for _, b := range [][]*cdc.Event{events[:half], events[half:]} {
				if err := s.Write(context.Background(), cdc.Batch{Events: b}); err != nil {
					t.Fatal(err)
				}
			}
			records := readAll(t, c, topic)
			checkAll(t, events, occurrences(t, records), 1)
			byID := map[string]*cdc.Event{}
			for _, e := range events {
				byID[e.ID] = e
			}
			tp := tt.partitioner.ForTopic(topic)
			for p, rs := range records {
				for _, r := range rs {
					id, _ := recordHeader(r, HeaderEventID)
					checkRecord(t, r, byID[id], tt.cfg, int(p), tp)
				}
			}
			if tt.cfg.Key != KeyID {
				checkOrder(t, events, records)
			}
			if tt.cfg.Key != KeyTenantID && len(records) < 10 {
				t.Errorf("records in %d partitions of 12", len(records))
			}
		})
	}
}

// checkRecord checks a record against the event it is of.
func checkRecord(t *testing.T, r *kgo.Record, e *cdc.Event, cfg Config, partition int, tp kgo.TopicPartitioner) {
	t.Helper()
	if e == nil {
		t.Fatalf("record %d/%d is of no event written", r.Partition, r.Offset)
	}
	key := Key(cfg.Key)
	if key == "" {
		key = KeyStreamID
	}
	if string(r.Key) != key.of(e) {
		t.Errorf("event %s: key %q, want %q", e.ID, r.Key, key.of(e))
	}
	if want := tp.Partition(&kgo.Record{Key: r.Key}, 12); partition != want {
		t.Errorf("event %s key %q: partition %d, want %d", e.ID, r.Key, partition, want)
	}
	want := envelope.Append(nil, e)
	if cfg.Value == ValueData {
		want = e.Data
	}
	if !bytes.Equal(r.Value, want) {
		t.Errorf("event %s: value\n%s\nwant\n%s", e.ID, r.Value, want)
	}
	wantHeaders := []kgo.RecordHeader{
		{Key: "event-id", Value: []byte(e.ID)},
		{Key: "event-type", Value: []byte(e.Type)},
		{Key: "stream-id", Value: []byte(e.StreamID)},
		{Key: "tenant-id", Value: []byte(e.TenantID)},
		{Key: "seq-id", Value: []byte(strconv.FormatInt(e.SeqID, 10))},
		{Key: "lsn", Value: []byte(e.LSN.String())},
	}
	if e.CorrelationID != "" {
		wantHeaders = append(wantHeaders, kgo.RecordHeader{Key: "correlation-id", Value: []byte(e.CorrelationID)})
	}
	if e.CausationID != "" {
		wantHeaders = append(wantHeaders, kgo.RecordHeader{Key: "causation-id", Value: []byte(e.CausationID)})
	}
	if fmt.Sprint(r.Headers) != fmt.Sprint(wantHeaders) {
		t.Errorf("event %s: headers %s, want %s", e.ID, r.Headers, wantHeaders)
	}
}

// TestMurmur2JavaValues checks placement against murmur2 hashes computed by
// the Java client's Utils.murmur2 (its UtilsTest): partition =
// toPositive(hash) % n.
func TestMurmur2JavaValues(t *testing.T) {
	javaHashes := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	b := Murmur2.balancer()
	for key, h := range javaHashes {
		for _, n := range []int{1, 3, 12, 50} {
			want := int(uint32(h)&0x7fffffff) % n
			if got := b.Balance(kafka.Message{Key: []byte(key)}, partitionList(n)...); got != want {
				t.Errorf("key %q, %d partitions: partition %d, want %d", key, n, got, want)
			}
		}
	}
}

// TestTopicTemplates routes events by type and by tenant to topics the sink
// creates, and without create_topics fails with an error naming the topic
// until the topic exists.
func TestTopicTemplates(t *testing.T) {
	c := newCluster(t)
	events := makeEvents(12, 4, 100, 1)
	tests := []struct {
		name     string
		template string
		topics   map[string]func(*cdc.Event) bool
	}{
		{"by type", "tpl.{{.Type}}", map[string]func(*cdc.Event) bool{
			"tpl.incident_logged":      func(e *cdc.Event) bool { return e.Type == "incident_logged" },
			"tpl.incident_categorised": func(e *cdc.Event) bool { return e.Type == "incident_categorised" },
			"tpl.incident_closed":      func(e *cdc.Event) bool { return e.Type == "incident_closed" },
		}},
		{"by tenant", "tenant-{{.TenantID}}.events", map[string]func(*cdc.Event) bool{
			"tenant-acme.events":   func(e *cdc.Event) bool { return e.TenantID == "acme" },
			"tenant-globex.events": func(e *cdc.Event) bool { return e.TenantID == "globex" },
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, c, "", Config{Topic: route.MustParse(tt.template), CreateTopics: true, TopicPartitions: 5, TopicReplicationFactor: 3})
			if err := s.Prepare(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
				t.Fatal(err)
			}
			for topic, match := range tt.topics {
				if n := len(c.PartitionInfos(topic)); n != 5 {
					t.Errorf("topic %s has %d partitions, want 5", topic, n)
				}
				var want []*cdc.Event
				for _, e := range events {
					if match(e) {
						want = append(want, e)
					}
				}
				n := occurrences(t, readAll(t, c, topic))
				checkAll(t, want, n, 1)
				if len(n) != len(want) {
					t.Errorf("topic %s holds %d events, want %d", topic, len(n), len(want))
				}
			}
		})
	}

	t.Run("missing without create_topics", func(t *testing.T) {
		s := newSink(t, c, "", Config{Topic: route.MustParse("absent.{{.Type}}")})
		b := cdc.Batch{Events: events[:3]} // one event of each type
		err := s.Write(context.Background(), b)
		var rej *cdc.RejectedError
		if err == nil || errors.As(err, &rej) || !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("err = %v, want a plain error wrapping ErrUnknownTopic", err)
		}
		for _, want := range []string{`"absent.incident_logged"`, `"absent.incident_closed"`, "create_topics is false"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %q, want it to say %s", err, want)
			}
		}
		for _, typ := range eventTypes {
			createTopic(t, c, "absent."+typ, 2, nil)
		}
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatalf("after creating the topics: %v", err)
		}
	})
}

func TestWriteEmptyAndClosed(t *testing.T) {
	c := newCluster(t)
	createTopic(t, c, "closing", 1, nil)
	s := newSink(t, c, "closing", Config{})
	if err := s.Write(context.Background(), cdc.Batch{}); err != nil {
		t.Fatal(err)
	}
	events := makeEvents(2, 2, 10, 1)
	if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: events}); !errors.Is(err, errClosed) {
		t.Fatalf("Write after Close: err = %v", err)
	}
	if n := count(c, "closing"); n != 4 {
		t.Fatalf("%d records, want 4", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s2 := newSink(t, c, "closing", Config{})
	if err := s2.Write(ctx, cdc.Batch{Events: events}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a cancelled context: err = %v", err)
	}
}

// TestCloseReleases checks that Close ends every goroutine and connection
// the sink started.
func TestCloseReleases(t *testing.T) {
	c := newCluster(t)
	createTopic(t, c, "release", 12, nil)
	before := runtime.NumGoroutine()
	s, err := New(Config{Brokers: c.ListenAddrs(), Topic: route.MustParse("release")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: makeEvents(50, 3, 100, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before the sink:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}
