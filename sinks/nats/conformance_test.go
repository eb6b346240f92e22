package nats

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/natsserver"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// conformanceLimit is the max_msg_size of the conformance suite's stream.
const conformanceLimit = 20000

// TestConformance runs the sink conformance suite against a fresh
// in-process NATS server per subtest, whose stream takes messages of up to
// 20000 bytes: the sink is idempotent (the stream drops what it already
// holds by Nats-Msg-Id). The poison event is one larger than that: the
// stream refuses it. The target hangs by storing messages without
// acknowledging them (the stream's no_ack), until unblocked.
func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Redelivery: sinktest.Idempotent,
		New: func(t *testing.T) (cdc.Sink, sinktest.Target) {
			srv := startServer(t, natsserver.Config{})
			sc := jetstream.StreamConfig{Name: testStream, Subjects: []string{"events.>"}, MaxMsgSize: conformanceLimit}
			createStream(t, srv.URL(), sc)
			s := newSink(t, srv.URL(), Config{})
			return s, sinktest.Target{
				Read:   func(t testing.TB) []sinktest.Unit { return readUnit(t, srv.URL(), testStream) },
				Block:  func(t testing.TB) (<-chan struct{}, func()) { return holdAcks(t, srv.URL(), sc) },
				Reopen: func(t *testing.T) cdc.Sink { return newSink(t, srv.URL(), Config{}) },
			}
		},
		Poison: func(e *cdc.Event) {
			e.Data = []byte(`"` + strings.Repeat("p", conformanceLimit+1000) + `"`)
		},
	})
}

// holdAcks makes the stream sc store messages without acknowledging them
// until unblock is called. hung is closed when the first message arrives.
func holdAcks(t testing.TB, url string, sc jetstream.StreamConfig) (hung <-chan struct{}, unblock func()) {
	t.Helper()
	nc, js := client(t, url)
	arrived := make(chan struct{})
	var arrivedOnce, unblockOnce sync.Once
	sub, err := nc.Subscribe("events.>", func(*nats.Msg) { arrivedOnce.Do(func() { close(arrived) }) })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	sc.NoAck = true
	if _, err := js.UpdateStream(context.Background(), sc); err != nil {
		t.Fatalf("stop the stream's acknowledgements: %v", err)
	}
	return arrived, func() {
		unblockOnce.Do(func() {
			defer nc.Close()
			_ = sub.Unsubscribe()
			sc.NoAck = false
			if _, err := js.UpdateStream(context.Background(), sc); err != nil {
				t.Errorf("restore the stream's acknowledgements: %v", err)
			}
		})
	}
}
