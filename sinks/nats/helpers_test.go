package nats

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/natsserver"
	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// startServer starts a NATS server with JetStream, its store in a
// directory of the test, stopped at the end of the test.
func startServer(t testing.TB, cfg natsserver.Config) *natsserver.Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	srv, err := natsserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// testSubject is the subject template of the tests: one subject per
// tenant and type, all in stream testStream.
const (
	testSubject = "events.{{.TenantID}}.{{.Type}}"
	testStream  = "EVENTS"
)

// newSink returns a sink on the server at url, closed at the end of the
// test. Zero fields of cfg take the tests' subject and stream, and a short
// ack timeout.
func newSink(t testing.TB, url string, cfg Config) *Sink {
	t.Helper()
	if cfg.Servers == nil {
		cfg.Servers = []string{url}
	}
	if cfg.Subject == nil {
		cfg.Subject = route.MustParse(testSubject)
	}
	if cfg.Stream == "" {
		cfg.Stream = testStream
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// createStream creates a stream taking subjects on the server at url.
func createStream(t testing.TB, url string, sc jetstream.StreamConfig) {
	t.Helper()
	nc, js := client(t, url)
	defer nc.Close()
	if _, err := js.CreateStream(context.Background(), sc); err != nil {
		t.Fatalf("create stream %s: %v", sc.Name, err)
	}
}

// client connects a test client to the server at url.
func client(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// readStream returns the messages of the stream, in stream order.
func readStream(t testing.TB, url, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ms, err := natsserver.Messages(context.Background(), url, stream)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// readUnit reads the stream as the one ordering unit of the conformance
// suite, each message known by the envelope it holds, whose id must be its
// Nats-Msg-Id.
func readUnit(t testing.TB, url, stream string) []sinktest.Unit {
	t.Helper()
	u := sinktest.Unit{Name: stream}
	for _, m := range readStream(t, url, stream) {
		rec, err := sinktest.ParseEnvelope(m.Data)
		if err != nil {
			t.Fatalf("message %d of stream %s: %v", m.Sequence, stream, err)
		}
		if id := m.Header.Get(HeaderMsgID); id != rec.ID {
			t.Fatalf("message %d of stream %s: header %s is %q, the envelope's id %q", m.Sequence, stream, HeaderMsgID, id, rec.ID)
		}
		u.Records = append(u.Records, rec)
	}
	return []sinktest.Unit{u}
}

func makeEvents(streams, versions, pad int, firstSeq int64) []*cdc.Event {
	return sinktest.Events(sinktest.Spec{Streams: streams, Versions: versions, Pad: pad, FirstSeq: firstSeq})
}

// checkExactlyOnce fails the test unless the stream holds each of events
// exactly once, each event stream's events in version order.
func checkExactlyOnce(t testing.TB, url, stream string, events []*cdc.Event) {
	t.Helper()
	ms := readStream(t, url, stream)
	seen := map[string]int{}
	lastVersion := map[string]int64{}
	for _, m := range ms {
		rec, err := sinktest.ParseEnvelope(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", m.Sequence, err)
		}
		seen[rec.ID]++
		if v := lastVersion[rec.StreamID]; rec.Version <= v {
			t.Errorf("message %d: stream %s version %d after version %d", m.Sequence, rec.StreamID, rec.Version, v)
		}
		lastVersion[rec.StreamID] = rec.Version
	}
	var missing, twice []string
	for _, e := range events {
		switch seen[e.ID] {
		case 0:
			missing = append(missing, e.ID)
		case 1:
		default:
			twice = append(twice, fmt.Sprintf("%s (%d times)", e.ID, seen[e.ID]))
		}
	}
	if len(ms) != len(events) || len(missing) > 0 || len(twice) > 0 {
		t.Fatalf("stream %s holds %d messages, want %d: missing %v, more than once %v", stream, len(ms), len(events), missing, twice)
	}
}
