package sinktest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc"
)

// Redelivery is what a sink promises when it is given events it already
// wrote: the pipeline writes a batch again after Write failed, and after a
// crash it delivers again what came after its last saved checkpoint.
type Redelivery int

const (
	// AtLeastOnce: nothing written is lost, and an event written again may
	// be held twice (Kafka, stdout, files: consumers de-duplicate on the
	// event id). Order is checked on the first occurrence of each event.
	AtLeastOnce Redelivery = iota
	// Idempotent: an event written again is not held again; the target
	// holds each event exactly once (Elasticsearch with external versions,
	// Postgres with its checkpoint in the target or ON CONFLICT).
	Idempotent
)

// String returns "at least once" or "idempotent".
func (r Redelivery) String() string {
	if r == Idempotent {
		return "idempotent"
	}
	return "at least once"
}

// DefaultDeadline is the default of Harness.Deadline.
const DefaultDeadline = 30 * time.Second

// Harness is what the suite needs of a sink: how to make one over a fresh
// target, what it promises, and how to spoil an event.
type Harness struct {
	// New returns a new sink writing to a fresh, empty target of its own,
	// and that target. It is called once per subtest, with the subtest's
	// t: it registers the cleanups that close the sink and the target
	// (t.Cleanup). The suite may call Close itself; a second Close from a
	// cleanup must be harmless. Required.
	New func(t *testing.T) (cdc.Sink, Target)
	// Redelivery is what the sink promises when events are written again.
	Redelivery Redelivery
	// Spec describes the events the suite writes. Zero Streams, Versions
	// and FirstSeq take 6, 5 and 1; Pad is used as it is; nil functions
	// take the defaults of Events. A harness sets the functions its Read
	// relies on (a body a document per stream is merged from, say) or its
	// Poison needs.
	Spec Spec
	// Poison, when set, spoils an event so that the target refuses it for
	// good (an oversized Kafka record, an Elasticsearch mapping conflict, a
	// row that fails a check constraint, a file path outside the base
	// directory). nil: the sink cannot reject an event, and PartialFailure
	// is skipped.
	Poison func(e *cdc.Event)
	// Deadline bounds each call the suite expects to return (Write,
	// Close), and the wait for a hanging target to hold a request. It is
	// generous on purpose: the suite asserts no speed. Default
	// DefaultDeadline (30s).
	Deadline time.Duration
	// Skip names subtests the sink cannot pass for a reason the harness
	// documents, by subtest name relative to Run ("Cancel/During"), with
	// that reason: the suite skips them with it, so that the limitation
	// shows in the test output. A name that is not a subtest of the suite
	// fails the test.
	Skip map[string]string
}

// Target is the target of a sink under test, as the suite uses it: it reads
// back what the sink wrote and, optionally, makes the target hang or opens
// another sink on it.
type Target struct {
	// Read returns what the target holds, by ordering unit, each unit's
	// records in the unit's order (see Unit), duplicates included. It
	// reads the target directly, not through the sink, and must work on
	// a fresh target (no units, or empty ones) and after the sink is
	// closed. It fails t when the target cannot be read. Required.
	Read func(t testing.TB) []Unit
	// Block, when set, makes the target hang: from the call on, requests
	// of the sink are held, neither answered nor failed, until unblock is
	// called (a broker that never answers produce requests, an HTTP
	// handler that waits, a table locked by another transaction). The
	// channel hung is closed once the target holds a request of the sink.
	// unblock must be safe to call more than once; after it, the held
	// requests may go on or fail, as the target's would. nil: the
	// harness cannot make the target hang, and Cancel/During is skipped.
	Block func(t testing.TB) (hung <-chan struct{}, unblock func())
	// Reopen, when set, returns another sink writing to the same target,
	// configured as the first (the same checkpoint row, say), as a
	// process restarted after a crash makes it; it registers its cleanups
	// with t. nil: Redelivery/AfterRestart is skipped.
	Reopen func(t *testing.T) cdc.Sink
}

// The subtests of Run, by name relative to Run, as Harness.Skip names them.
var subtests = []string{
	"DurableOnNil",
	"Redelivery/SameBatch",
	"Redelivery/Overlapping",
	"Redelivery/EarlierPart",
	"Redelivery/AfterRestart",
	"StreamOrder",
	"PartialFailure/First",
	"PartialFailure/Middle",
	"PartialFailure/Last",
	"CloseFlushes",
	"Cancel/Before",
	"Cancel/During",
}

// Run runs the conformance suite against the sink h makes: one subtest per
// clause of the contract (see the package documentation), each on a fresh
// sink and target from h.New, one after the other. The subtests are
// DurableOnNil; Redelivery/SameBatch, /Overlapping, /EarlierPart and
// /AfterRestart; StreamOrder; PartialFailure/First, /Middle and /Last (the
// position of the poisoned event in the batch); CloseFlushes; and
// Cancel/Before and Cancel/During.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("sinktest: Harness.New is nil")
	}
	for name := range h.Skip {
		if !slices.Contains(subtests, name) {
			t.Fatalf("sinktest: Harness.Skip names %q, which is not a subtest; the subtests are %s", name, strings.Join(subtests, ", "))
		}
	}
	s := &suite{h: h, root: t.Name() + "/", deadline: h.Deadline, spec: h.Spec}
	if s.deadline <= 0 {
		s.deadline = DefaultDeadline
	}
	if s.spec.Streams == 0 {
		s.spec.Streams = 6
	}
	if s.spec.Versions == 0 {
		s.spec.Versions = 5
	}
	if s.spec.FirstSeq == 0 {
		s.spec.FirstSeq = 1
	}
	if n := len(Events(s.spec)); n < 6 {
		t.Fatalf("sinktest: Harness.Spec makes %d events, want at least 6", n)
	}

	s.run(t, "DurableOnNil", s.durableOnNil)
	t.Run("Redelivery", func(t *testing.T) {
		cases := []struct {
			name string
			// batches returns the batches to write, in order.
			batches func(events []*cdc.Event) [][]*cdc.Event
		}{
			{"SameBatch", func(e []*cdc.Event) [][]*cdc.Event { return [][]*cdc.Event{e, e} }},
			{"Overlapping", func(e []*cdc.Event) [][]*cdc.Event {
				n := len(e)
				return [][]*cdc.Event{e[:2*n/3], e[n/3:]}
			}},
			{"EarlierPart", func(e []*cdc.Event) [][]*cdc.Event {
				n := len(e)
				return [][]*cdc.Event{e, e[n/4 : n/2]}
			}},
		}
		for _, c := range cases {
			s.run(t, c.name, func(t *testing.T) { s.redelivery(t, c.batches) })
		}
		s.run(t, "AfterRestart", s.afterRestart)
	})
	s.run(t, "StreamOrder", s.streamOrder)
	t.Run("PartialFailure", func(t *testing.T) {
		cases := []struct {
			name   string
			poison func(n int) int // index of the poisoned event in n
		}{
			{"First", func(int) int { return 0 }},
			{"Middle", func(n int) int { return n / 2 }},
			{"Last", func(n int) int { return n - 1 }},
		}
		for _, c := range cases {
			s.run(t, c.name, func(t *testing.T) { s.partialFailure(t, c.poison) })
		}
	})
	s.run(t, "CloseFlushes", s.closeFlushes)
	t.Run("Cancel", func(t *testing.T) {
		s.run(t, "Before", s.cancelBefore)
		s.run(t, "During", s.cancelDuring)
	})
}

// suite is one Run.
type suite struct {
	h        Harness
	root     string // the name of Run's test, and a slash
	deadline time.Duration
	spec     Spec
}

// run runs fn as the subtest name of t, unless the harness skips it.
func (s *suite) run(t *testing.T, name string, fn func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		if why, ok := s.h.Skip[strings.TrimPrefix(t.Name(), s.root)]; ok {
			t.Skip("skipped by the harness: " + why)
		}
		fn(t)
	})
}

// new returns a fresh sink and target.
func (s *suite) new(t *testing.T) (cdc.Sink, Target) {
	t.Helper()
	sink, tg := s.h.New(t)
	if sink == nil || tg.Read == nil {
		t.Fatal("sinktest: Harness.New returned a nil sink or a Target without Read")
	}
	return sink, tg
}

// events returns new events of the suite's spec.
func (s *suite) events() []*cdc.Event { return Events(s.spec) }

// durableOnNil: once Write returns nil, its batch is in the target, before
// any Close; an empty batch is nil and writes nothing.
func (s *suite) durableOnNil(t *testing.T) {
	sink, tg := s.new(t)
	events := s.events()
	s.write(t, sink, nil)
	s.check(t, "after an empty batch", tg, expect{written: events, absent: events})

	half := len(events) / 2
	s.write(t, sink, events[:half])
	s.check(t, "after Write returned nil for the first half", tg,
		expect{written: events, present: events[:half], absent: events[half:]})
	s.write(t, sink, events[half:])
	s.check(t, "after Write returned nil for the second half", tg, expect{written: events, present: events})
}

// redelivery writes the batches in order: every event is held, once when
// the sink is idempotent.
func (s *suite) redelivery(t *testing.T, batches func([]*cdc.Event) [][]*cdc.Event) {
	sink, tg := s.new(t)
	events := s.events()
	for _, b := range batches(events) {
		s.write(t, sink, b)
	}
	s.check(t, "after writing events again", tg, expect{written: events, present: events})
}

// afterRestart writes most events, then, through another sink on the same
// target, the events from an earlier point on, as after a crash: the
// pipeline replays from its own checkpoint, which may be behind what the
// sink wrote. Every event is held, once when the sink is idempotent.
func (s *suite) afterRestart(t *testing.T) {
	sink, tg := s.new(t)
	if tg.Reopen == nil {
		t.Skip("the harness cannot open another sink on the same target (Target.Reopen is nil)")
	}
	events := s.events()
	n := len(events)
	s.write(t, sink, events[:2*n/3])
	again := tg.Reopen(t)
	if again == nil {
		t.Fatal("sinktest: Target.Reopen returned a nil sink")
	}
	s.write(t, again, events[n/3:])
	s.check(t, "after another sink on the same target wrote events again", tg, expect{written: events, present: events})
}

// streamOrder writes the events in batches of growing sizes, cut anywhere
// (within transactions too), each second batch twice as after a failed
// Write: each stream's events read back in version order.
func (s *suite) streamOrder(t *testing.T) {
	sink, tg := s.new(t)
	events := s.events()
	for lo, size, k := 0, 1, 0; lo < len(events); lo, size, k = lo+size, size+1, k+1 {
		b := events[lo:min(lo+size, len(events))]
		s.write(t, sink, b)
		if k%2 == 1 {
			s.write(t, sink, b) // the pipeline's retry
		}
	}
	s.check(t, "after writing the events in batches, some twice", tg, expect{written: events, present: events})
}

// partialFailure poisons one event: Write rejects it, at its index, once
// the events before it are durable; the target does not hold it; the
// events after it are written next, as the pipeline does after
// dead-lettering it.
func (s *suite) partialFailure(t *testing.T, poison func(n int) int) {
	if s.h.Poison == nil {
		t.Skip("the harness has no Poison: the sink cannot make its target refuse an event")
	}
	sink, tg := s.new(t)
	events := s.events()
	p := poison(len(events))
	s.h.Poison(events[p])
	err := s.call(t, "Write of a batch with a poisoned event", func() error {
		return sink.Write(context.Background(), cdc.Batch{Events: events})
	})
	var rej *cdc.RejectedError
	switch {
	case !errors.As(err, &rej):
		t.Fatalf("Write of a batch whose event %d is poisoned = %v, want a *cdc.RejectedError", p, err)
	case rej.Index != p:
		t.Fatalf("Write rejected event %d (%v), want event %d, the poisoned one", rej.Index, err, p)
	case rej.Err == nil:
		t.Errorf("the RejectedError of event %d has no Err saying why", p)
	}
	t.Logf("Write rejected the poisoned event: %v", err)
	bad := events[p : p+1]
	s.check(t, "after Write rejected the poisoned event", tg, expect{written: events, present: events[:p], absent: bad})

	rest := slices.Concat(events[:p], events[p+1:])
	if p+1 < len(events) {
		s.write(t, sink, events[p+1:])
	}
	s.check(t, "after writing the events after the rejected one", tg, expect{written: events, present: rest, absent: bad})
}

// closeFlushes: after Write and Close, the target holds every event.
func (s *suite) closeFlushes(t *testing.T) {
	sink, tg := s.new(t)
	events := s.events()
	half := len(events) / 2
	s.write(t, sink, events[:half])
	s.write(t, sink, events[half:])
	if err := s.call(t, "Close", func() error { return sink.Close(context.Background()) }); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s.check(t, "after Close", tg, expect{written: events, present: events})
}

// cancelBefore writes with a context cancelled before the call: Write
// returns, with an error, or with nil and the batch durable; the batch is
// written by the next call either way.
func (s *suite) cancelBefore(t *testing.T) {
	sink, tg := s.new(t)
	events := s.events()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.call(t, "Write with a cancelled context", func() error {
		return sink.Write(ctx, cdc.Batch{Events: events})
	})
	if err == nil {
		s.check(t, "after Write with a cancelled context returned nil", tg, expect{written: events, present: events})
	} else {
		t.Logf("Write with a cancelled context: %v", err)
		noRejection(t, err)
	}
	s.write(t, sink, events) // the pipeline's retry
	s.check(t, "after writing the batch again", tg, expect{written: events, present: events})
}

// cancelDuring cancels the context of a Write while the target holds its
// request: Write returns an error; once the target answers again, the
// batch is written by the next call.
func (s *suite) cancelDuring(t *testing.T) {
	sink, tg := s.new(t)
	if tg.Block == nil {
		t.Skip("the harness cannot make its target hang (Target.Block is nil)")
	}
	events := s.events()
	hung, unblock := tg.Block(t)
	defer unblock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sink.Write(ctx, cdc.Batch{Events: events}) }()

	wait := time.NewTimer(s.deadline)
	select {
	case <-hung:
		wait.Stop()
	case err := <-done:
		t.Fatalf("Write returned %v while the target hangs, before the target held a request of it", err)
	case <-wait.C:
		t.Fatalf("the target held no request of Write within %s", s.deadline)
	}
	cancel()
	wait = time.NewTimer(s.deadline)
	defer wait.Stop()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Write returned nil though its context was cancelled while the target held its request")
		}
		t.Logf("Write cancelled while the target hangs: %v", err)
		noRejection(t, err)
	case <-wait.C:
		t.Fatalf("Write did not return within %s of its context being cancelled while the target hangs", s.deadline)
	}
	unblock()
	s.write(t, sink, events) // the pipeline's retry
	s.check(t, "after the target recovered and the batch was written again", tg, expect{written: events, present: events})
}

// noRejection fails the test if err is a RejectedError: a cancelled
// context is no reason to refuse an event for good.
func noRejection(t *testing.T, err error) {
	t.Helper()
	if rej, ok := errors.AsType[*cdc.RejectedError](err); ok {
		t.Errorf("Write rejected event %d because its context was cancelled (%v): a cancellation must be a plain error, or the pipeline dead-letters a good event", rej.Index, err)
	}
}

// call runs fn and returns its error, failing the test if fn does not
// return within the deadline (fn then goes on in the background).
func (s *suite) call(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	timer := time.NewTimer(s.deadline)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.Fatalf("%s did not return within %s", what, s.deadline)
		return nil
	}
}

// write writes events as one batch and fails the test unless Write
// returns nil within the deadline.
func (s *suite) write(t *testing.T, sink cdc.Sink, events []*cdc.Event) {
	t.Helper()
	what := fmt.Sprintf("Write of %d events", len(events))
	if len(events) > 0 {
		what = fmt.Sprintf("Write of %d events (seq_id %d to %d)", len(events), events[0].SeqID, events[len(events)-1].SeqID)
	}
	if err := s.call(t, what, func() error {
		return sink.Write(context.Background(), cdc.Batch{Events: events})
	}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
