package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/route"
)

// TestRejectedEvents checks events the sink must refuse for good: the
// error is a RejectedError for the first of them, the events before it are
// delivered exactly once, none after it is.
func TestRejectedEvents(t *testing.T) {
	c := newCluster(t)
	huge := func(e *cdc.Event) { e.Data = []byte(`"` + strings.Repeat("x", 1_100_000) + `"`) }
	big := func(e *cdc.Event) { e.Data = []byte(`"` + strings.Repeat("y", 30_000) + `"`) }
	tests := []struct {
		name     string
		template string
		limit    string // the topic's max.message.bytes; "" for the default
		bad      int
		spoil    func(*cdc.Event)
		want     string // in the error
		// client says the sink refuses the event before sending anything:
		// no event after it is sent. A broker's refusal of one partition's
		// batch leaves the other partitions' requests of the round
		// acknowledged, events after the refused one among them.
		client bool
	}{
		{"larger than max_message_bytes", "rej-client", "", 150, huge, "more than max_message_bytes", true},
		{"refused by the broker", "rej-broker", "20000", 150, big, "Message Size Too Large", false},
		{"refused by the broker, first event", "rej-broker-first", "20000", 0, big, "Message Size Too Large", false},
		{"refused by the broker, last event", "rej-broker-last", "20000", 199, big, "Message Size Too Large", false},
		{"invalid topic name", "rej-{{.TenantID}}", "", 120, func(e *cdc.Event) { e.TenantID = "a b" }, "not a valid Kafka topic name", true},
		{"template fails", "rej-{{slice .Type 0 8}}", "", 77, func(e *cdc.Event) { e.Type = "short" }, "slice", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := makeEvents(20, 10, 600, 1)
			tt.spoil(events[tt.bad])
			topics := map[string]bool{}
			for i, e := range events {
				if i == tt.bad {
					continue
				}
				name, err := route.MustParse(tt.template).Render(e)
				if err != nil {
					t.Fatal(err)
				}
				if !topics[name] {
					topics[name] = true
					var cfg map[string]string
					if tt.limit != "" {
						cfg = map[string]string{"max.message.bytes": tt.limit}
					}
					createTopic(t, c, name, 3, cfg)
				}
			}
			s := newSink(t, c, "", Config{Topic: route.MustParse(tt.template)})
			err := s.Write(context.Background(), cdc.Batch{Events: events})
			var rej *cdc.RejectedError
			if !errors.As(err, &rej) || rej.Index != tt.bad {
				t.Fatalf("err = %v, want a RejectedError of index %d", err, tt.bad)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
			n := map[string]int{}
			for topic := range topics {
				for id, k := range occurrences(t, readAll(t, c, topic)) {
					n[id] += k
				}
			}
			checkAll(t, events[:tt.bad], n, 1)
			if n[events[tt.bad].ID] > 0 {
				t.Errorf("the rejected event was delivered")
			}
			bad := events[tt.bad]
			for _, e := range events[tt.bad+1:] {
				if n[e.ID] > 0 && (tt.client || e.StreamID == bad.StreamID) {
					t.Errorf("event %s (stream %s) after the rejected one was delivered", e.ID, e.StreamID)
				}
			}

			// The pipeline goes on after the rejected event (dead_letter).
			if err := s.Write(context.Background(), cdc.Batch{Events: events[tt.bad+1:]}); err != nil {
				t.Fatal(err)
			}
			n = map[string]int{}
			for topic := range topics {
				records := readAll(t, c, topic)
				checkOrder(t, events, records)
				for id, k := range occurrences(t, records) {
					n[id] += k
				}
			}
			checkAll(t, events[:tt.bad], n, 1)
			if tt.client {
				checkAll(t, events[tt.bad+1:], n, 1)
			} else {
				checkAll(t, events[tt.bad+1:], n, 0)
			}
		})
	}
}

// TestOutage fails produce requests with NOT_ENOUGH_REPLICAS: Write returns
// a plain error, and once the fault is gone the batch written again leaves
// each stream's events in order in its partition, none missing.
func TestOutage(t *testing.T) {
	c := newCluster(t)
	tests := []struct {
		name    string
		limit   int  // MaxMessageBytes: small for several rounds
		partial bool // some requests succeed before Write fails
		fault   func(topic string) kfake.Fault
	}{
		{"every request", 0, false, func(topic string) kfake.Fault {
			return kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: -1}
		}},
		{"some partitions, several rounds", 16 << 10, true, func(topic string) kfake.Fault {
			return kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{1, 4, 7}, Err: kerr.NotEnoughReplicas, Count: -1}
		}},
		{"from the 16th request on, in the second round", 8 << 10, true, func(topic string) kfake.Fault {
			var n atomic.Int64
			return kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: -1,
				When: func(kmsg.Request) bool { return n.Add(1) > 15 }}
		}},
		{"leader not available, once", 16 << 10, true, func(topic string) kfake.Fault {
			return kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{2}, Err: kerr.LeaderNotAvailable}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := "outage-" + strconv.Itoa(i)
			createTopic(t, c, topic, 12, nil)
			s := newSink(t, c, topic, Config{MaxMessageBytes: tt.limit})
			events := makeEvents(30, 10, 600, 1)
			b := cdc.Batch{Events: events}
			f := c.Fault(tt.fault(topic))
			err := s.Write(context.Background(), b)
			var rej *cdc.RejectedError
			if err == nil || errors.As(err, &rej) {
				t.Fatalf("err = %v, want a plain error", err)
			}
			if !errors.Is(err, kafka.NotEnoughReplicas) && !errors.Is(err, kafka.LeaderNotAvailable) {
				t.Errorf("err = %v, want the broker's error", err)
			}
			if n := count(c, topic); tt.partial != (n > 0) {
				t.Errorf("%d records written by the failed Write", n)
			}
			f.Remove()
			if err := s.Write(context.Background(), b); err != nil {
				t.Fatalf("after the outage: %v", err)
			}
			records := readAll(t, c, topic)
			checkAll(t, events, occurrences(t, records), 0)
			checkOrder(t, events, records)
		})
	}
}

// TestLeaderMove moves every partition's leader: the first Write after it
// may fail, the next succeeds.
func TestLeaderMove(t *testing.T) {
	c := newCluster(t)
	createTopic(t, c, "moving", 6, nil)
	s := newSink(t, c, "moving", Config{})
	events := makeEvents(12, 6, 200, 1)
	if err := s.Write(context.Background(), cdc.Batch{Events: events[:36]}); err != nil {
		t.Fatal(err)
	}
	for p := range int32(6) {
		if err := c.MoveTopicPartition("moving", p, (c.LeaderFor("moving", p)+1)%3); err != nil {
			t.Fatal(err)
		}
	}
	b := cdc.Batch{Events: events[36:]}
	if err := s.Write(context.Background(), b); err != nil {
		t.Logf("first attempt: %v", err)
		if !errors.Is(err, kafka.NotLeaderForPartition) {
			t.Errorf("err = %v, want NOT_LEADER_OR_FOLLOWER", err)
		}
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatalf("second attempt: %v", err)
		}
	}
	records := readAll(t, c, "moving")
	checkAll(t, events, occurrences(t, records), 0)
	checkOrder(t, events, records)
}

// TestSizeLimit checks the size count against a broker: with
// MaxMessageBytes equal to the topic's max.message.bytes, no batch is ever
// refused, a record that just fits is taken, and one byte more is rejected
// before sending.
func TestSizeLimit(t *testing.T) {
	const limit = 20000
	c := newCluster(t)
	createTopic(t, c, "limit", 3, map[string]string{"max.message.bytes": strconv.Itoa(limit)})
	var logs bytes.Buffer
	s := newSink(t, c, "limit", Config{MaxMessageBytes: limit,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	events := makeEvents(10, 30, 0, 1)
	for i, e := range events {
		e.Data = []byte(`"` + strings.Repeat("z", 100+(i*7919)%3000) + `"`)
	}
	// The last event's record is exactly as large as a batch may be.
	last := events[len(events)-1]
	var w writeState
	if rej := s.encode(&w, []*cdc.Event{last}); rej != nil {
		t.Fatal(rej)
	}
	fill := strings.Repeat("z", len(last.Data)-2+s.maxBatch-w.msgs[0].size)
	last.Data = []byte(`"` + fill + `"`)
	if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "refused") {
		t.Errorf("a batch was refused:\n%s", logs.String())
	}
	checkAll(t, events, occurrences(t, readAll(t, c, "limit")), 1)

	over := *last
	over.ID = "0192f0c4-ffff-7000-8000-000000000000"
	over.Data = []byte(`"` + fill + `z"`)
	err := s.Write(context.Background(), cdc.Batch{Events: []*cdc.Event{&over}})
	var rej *cdc.RejectedError
	if !errors.As(err, &rej) || rej.Index != 0 || !errors.Is(err, kafka.MessageSizeTooLarge) {
		t.Fatalf("err = %v, want the record rejected as too large", err)
	}
}
