package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaConsume: the consumer of the latency runs sees records produced
// to a topic that did not exist when it started, by their event-id header.
func TestKafkaConsume(t *testing.T) {
	k, err := newKafkaTarget(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	arrived := newArrivals()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- k.consume(ctx, "late_topic", arrived) }()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.brokers...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("late_topic"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 10 {
		r := &kgo.Record{Value: []byte("x"), Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte{byte('a' + i)}}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for arrived.count() < 10 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the consumer got %d of 10 records (consume: %v)", arrived.count(), <-done)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKinds(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		kinds []string
	}{
		{"kafka", []string{"kafka"}},
		{"all", []string{"stdout", "kafka", "elastic", "postgres", "nats"}},
		{"stdout+kafka+elastic", []string{"stdout", "kafka", "elastic"}},
		{"postgres+kafka", []string{"postgres", "kafka"}},
		{"kafka+kafka", nil},
		{"kafka+", nil},
		{"nats", []string{"nats"}},
		{"mqtt", nil},
		{"", nil},
	} {
		if got := kindsOf(tc.kind); !slices.Equal(got, tc.kinds) {
			t.Errorf("kindsOf(%q) = %q, want %q", tc.kind, got, tc.kinds)
		}
		if ValidKind(tc.kind) != (tc.kinds != nil) {
			t.Errorf("ValidKind(%q) = %v", tc.kind, tc.kinds == nil)
		}
	}
	if got := kindID(SinkStreams); got != "stdout_kafka_elastic" {
		t.Errorf("kindID %q", got)
	}
}
