package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/natsserver"
)

// TestServerRestart restarts the server (its store kept) while a writer
// writes batches as the pipeline does, each again after a failure until it
// is acknowledged: the stream holds every event exactly once, each event
// stream's in version order. One stream has far more events than the
// others, so that batches hold long runs of it.
func TestServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := natsserver.Start(natsserver.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	url, port := srv.URL(), srv.Port()
	defer func() { srv.Stop() }()
	createStream(t, url, jetstream.StreamConfig{Name: testStream, Subjects: []string{"events.>"}})
	s := newSink(t, url, Config{AckTimeout: 2 * time.Second, MaxInFlight: 64})

	events := append(makeEvents(30, 40, 50, 1), makeEvents(1, 800, 50, 10001)...)
	for _, e := range events[1200:] {
		e.StreamID = "hot"
	}
	var written, failures atomic.Int64
	done := make(chan error, 1)
	go func() {
		for lo := 0; lo < len(events); lo += 100 {
			b := cdc.Batch{Events: events[lo:min(lo+100, len(events))]}
			deadline := time.Now().Add(time.Minute)
			for {
				err := s.Write(context.Background(), b)
				if err == nil {
					break
				}
				if errors.As(err, new(*cdc.RejectedError)) || time.Now().After(deadline) {
					done <- err
					return
				}
				failures.Add(1)
				time.Sleep(20 * time.Millisecond) // the pipeline's backoff
			}
			written.Add(int64(len(b.Events)))
		}
		done <- nil
	}()
	waitFor(t, "a third of the events written", func() bool { return written.Load() >= int64(len(events)/3) })
	srv.Stop()
	t.Logf("server stopped after %d events written", written.Load())
	waitFor(t, "a write to fail", func() bool { return failures.Load() > 0 })
	if srv, err = natsserver.Start(natsserver.Config{Dir: dir, Port: port}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the writer did not finish within 2 minutes of the server's restart")
	}
	t.Logf("%d writes failed while the server restarted", failures.Load())
	checkExactlyOnce(t, url, testStream, events)
}

// TestAckedNotPublishedAgain checks that the events a failed Write had
// acknowledged are not published again by the next: after a refused event
// in the middle of a batch, writing the events after it publishes only
// those not acknowledged yet, so each event was published once in all.
func TestAckedNotPublishedAgain(t *testing.T) {
	srv := startServer(t, natsserver.Config{})
	createStream(t, srv.URL(), jetstream.StreamConfig{Name: testStream, Subjects: []string{"events.>"}, MaxMsgSize: 4000})
	nc, _ := client(t, srv.URL())
	defer nc.Close()
	var published atomic.Int64
	if _, err := nc.Subscribe("events.>", func(*nats.Msg) { published.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, srv.URL(), Config{})
	events := makeEvents(20, 5, 0, 1)
	const bad = 30
	events[bad].Data = []byte(`"` + strings.Repeat("x", 5000) + `"`)
	err := s.Write(context.Background(), cdc.Batch{Events: events})
	if rej, ok := errors.AsType[*cdc.RejectedError](err); !ok || rej.Index != bad {
		t.Fatalf("Write = %v, want event %d rejected", err, bad)
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: events[bad+1:]}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every publish seen", func() bool { return published.Load() >= int64(len(events)) })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := published.Load(); n != int64(len(events)) {
		t.Errorf("%d messages published for %d events", n, len(events))
	}
	checkExactlyOnce(t, srv.URL(), testStream, append(events[:bad:bad], events[bad+1:]...))
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOneInFlightPerStream makes the stream store messages without
// acknowledging them: the Write publishes only the first message of each
// event stream (the next waits for that acknowledgement), times out, and
// fails with a plain error; once the stream acknowledges again, the retry
// stores every event once, each stream in version order.
func TestOneInFlightPerStream(t *testing.T) {
	srv := startServer(t, natsserver.Config{})
	sc := jetstream.StreamConfig{Name: testStream, Subjects: []string{"events.>"}}
	createStream(t, srv.URL(), sc)
	nc, _ := client(t, srv.URL())
	defer nc.Close()
	var published atomic.Int64
	if _, err := nc.Subscribe("events.>", func(*nats.Msg) { published.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, srv.URL(), Config{AckTimeout: 500 * time.Millisecond})
	const streams = 8
	events := makeEvents(streams, 6, 0, 1)
	_, unblock := holdAcks(t, srv.URL(), sc)
	err := s.Write(context.Background(), cdc.Batch{Events: events})
	if err == nil || errors.As(err, new(*cdc.RejectedError)) {
		t.Fatalf("Write while the stream does not acknowledge = %v, want a plain error", err)
	}
	t.Logf("Write: %v", err)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := published.Load(); n != streams {
		t.Fatalf("%d messages published while no acknowledgement came, want %d: the first of each stream", n, streams)
	}
	unblock()
	if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, srv.URL(), testStream, events)
}

// TestStreamDeleted: with create_stream, a stream deleted while cdc runs is
// created again; the batch that found it missing fails once, and is then
// stored whole in the new stream.
func TestStreamDeleted(t *testing.T) {
	srv := startServer(t, natsserver.Config{})
	s := newSink(t, srv.URL(), Config{CreateStream: true})
	first, second := makeEvents(4, 2, 0, 1), makeEvents(4, 2, 0, 100)
	for i, e := range second {
		e.ID = fmt.Sprintf("second-%d", i)
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: first}); err != nil {
		t.Fatal(err)
	}
	nc, js := client(t, srv.URL())
	defer nc.Close()
	if err := js.DeleteStream(context.Background(), testStream); err != nil {
		t.Fatal(err)
	}
	err := s.Write(context.Background(), cdc.Batch{Events: second})
	if err == nil || errors.As(err, new(*cdc.RejectedError)) || !strings.Contains(err.Error(), "created again") {
		t.Fatalf("Write after the stream was deleted = %v, want a plain error saying it was created again", err)
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: second}); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, srv.URL(), testStream, second)
}
