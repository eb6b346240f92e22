package pipeline_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/pipeline"
)

// The tests in this file run the pipeline core without PostgreSQL: a
// replayed pgoutput capture stands in for the replication stream and maps
// stand in for the checkpoint and dead-letter tables.

// capture is the pgoutput capture the core tests replay: every Marten write
// path of the default layout (see decoder/testdata/README.md).
const capture = "../decoder/testdata/layout_default.hex"

// readCapture returns the messages of a capture file ("lsn xid hex" lines).
func readCapture(t *testing.T, name string) [][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		b, err := hex.DecodeString(fields[len(fields)-1])
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// decodeCapture returns the events of the capture and the end LSN of its
// last transaction, decoded directly: what the pipeline must deliver.
func decodeCapture(t *testing.T, msgs [][]byte) (events []*cdc.Event, lastEnd cdc.LSN) {
	t.Helper()
	d := decoder.New(decoder.Config{})
	for _, b := range msgs {
		m, err := d.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Kind {
		case decoder.KindEvent:
			events = append(events, m.Event)
		case decoder.KindCommit:
			lastEnd = m.EndLSN
		}
	}
	return events, lastEnd
}

// replay is a pipeline.Source that hands a capture to the consumer once,
// then drains it as a shutdown does.
type replay struct {
	msgs        [][]byte
	confirmable cdc.LSN // what the consumer said could be confirmed, after Drain
	// untilStopped makes Run wait for its context to end before draining,
	// as the stream does; delivered is closed when every message was
	// handed over.
	untilStopped bool
	delivered    chan struct{}
	drainTimeout time.Duration // default a minute
}

func (r *replay) Run(ctx context.Context, c cdc.Consumer) error {
	if err := c.Open(ctx); err != nil {
		return err
	}
	for _, b := range r.msgs {
		if err := c.Message(ctx, b); err != nil {
			return err
		}
	}
	if r.untilStopped {
		close(r.delivered)
		<-ctx.Done()
	}
	d := r.drainTimeout
	if d == 0 {
		d = time.Minute
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	err := c.Drain(drainCtx)
	r.confirmable = c.Confirmable()
	return err
}

// memCheckpoints is the checkpoint table in memory, forward-only like the
// real one.
type memCheckpoints struct {
	mu  sync.Mutex
	cps map[string]cdc.Checkpoint
}

func (m *memCheckpoints) Load(_ context.Context, pipeline string) (map[string]cdc.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]cdc.Checkpoint{}
	for k, v := range m.cps {
		if p, sink, _ := strings.Cut(k, "/"); p == pipeline {
			out[sink] = v
		}
	}
	return out, nil
}

func (m *memCheckpoints) Save(_ context.Context, pipeline, sink string, cp cdc.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps = map[string]cdc.Checkpoint{}
	}
	k := pipeline + "/" + sink
	if old, ok := m.cps[k]; ok && cp.Position.Compare(old.Position) < 0 {
		return fmt.Errorf("save %s at %s: %w", k, cp.Position, cdc.ErrCheckpointBackwards)
	}
	m.cps[k] = cp
	return nil
}

func (m *memCheckpoints) get(sink string) cdc.Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cps["core/"+sink]
}

// memDeadLetters records dead letters.
type memDeadLetters struct {
	mu     sync.Mutex
	events []*cdc.Event
}

func (m *memDeadLetters) Write(_ context.Context, _, _ string, e *cdc.Event, _ error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

// runCore runs one pipeline named core over the capture to its end.
func runCore(t *testing.T, msgs [][]byte, cps *memCheckpoints, dl *memDeadLetters, sinks ...pipeline.SinkConfig) *replay {
	t.Helper()
	p, err := pipeline.New(pipeline.Config{
		Name: "core", Sinks: sinks, Checkpoints: cps, DeadLetters: dl, Logger: testLogger(t),
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &replay{msgs: msgs}
	if err := p.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestCore delivers a capture of every Marten write path to sinks with
// different filters, batch sizes and failure modes, then replays it to a
// new pipeline over the saved checkpoints, which must deliver nothing again.
func TestCore(t *testing.T) {
	msgs := readCapture(t, capture)
	all, lastEnd := decodeCapture(t, msgs)
	if len(all) < 10 {
		t.Fatalf("capture has %d events", len(all))
	}
	last := cdc.Position{LSN: all[len(all)-1].LSN, Index: cdc.EndOfTx}
	firstType := all[0].Type
	var only []*cdc.Event
	for _, e := range all {
		if e.Type == firstType {
			only = append(only, e)
		}
	}
	bad := all[len(all)/2]

	for _, tc := range []struct {
		name    string
		sink    pipeline.SinkConfig
		fail    int          // writes that fail before the sink recovers
		reject  bool         // the sink refuses the event in the middle for good
		want    []*cdc.Event // what the sink holds at the end
		dead    int          // events dead-lettered
		cp      cdc.Position // the sink's checkpoint at the end
		confirm bool         // the slot may confirm the capture's end
	}{
		{name: "all events, one per batch", sink: pipeline.SinkConfig{Batch: cdc.BatchPolicy{MaxEvents: 1}},
			want: all, cp: last, confirm: true},
		{name: "one type", sink: pipeline.SinkConfig{Filter: pipeline.Filter{Include: []string{firstType}}},
			want: only, cp: last, confirm: true},
		{name: "failing writes are retried", sink: pipeline.SinkConfig{Batch: cdc.BatchPolicy{MaxEvents: 3}},
			fail: 5, want: all, cp: last, confirm: true},
		{name: "rejected event dead-lettered", sink: pipeline.SinkConfig{OnError: pipeline.DeadLetter},
			reject: true, want: without(all, bad), dead: 1, cp: last, confirm: true},
		{name: "rejected event stops the sink", sink: pipeline.SinkConfig{OnError: pipeline.Stop},
			reject: true, want: before(all, bad), cp: justBefore(bad), confirm: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			failing := &failFirst{Sink: rec, n: tc.fail}
			if tc.reject {
				rec.reject = func(e *cdc.Event) bool { return e.ID == bad.ID }
			}
			tc.sink.Name, tc.sink.Sink = "s", failing
			cps, dl := &memCheckpoints{}, &memDeadLetters{}
			src := runCore(t, msgs, cps, dl, tc.sink)

			if got, want := ids(rec.snapshot()), ids(tc.want); !slices.Equal(got, want) {
				t.Fatalf("delivered %d events, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
			if len(dl.events) != tc.dead {
				t.Errorf("%d dead letters, want %d", len(dl.events), tc.dead)
			}
			if cp := cps.get("s"); cp.Position != tc.cp {
				t.Errorf("checkpoint %s, want %s", cp.Position, tc.cp)
			}
			if got := src.confirmable >= lastEnd; got != tc.confirm {
				t.Errorf("confirmable %s with capture end %s: past the end %v, want %v", src.confirmable, lastEnd, got, tc.confirm)
			}

			// A new pipeline over the saved checkpoints: nothing again.
			again := &recorder{reject: rec.reject}
			tc.sink.Sink = again
			runCore(t, msgs, cps, &memDeadLetters{}, tc.sink)
			if n := again.count(); n != 0 && tc.confirm {
				t.Errorf("replayed over the checkpoints: %d events delivered again", n)
			}
		})
	}
}

// failFirst fails the first n writes.
type failFirst struct {
	cdc.Sink
	n int
}

func (f *failFirst) Write(ctx context.Context, b cdc.Batch) error {
	if f.n > 0 {
		f.n--
		return errors.New("target unavailable (test)")
	}
	return f.Sink.Write(ctx, b)
}

func without(events []*cdc.Event, bad *cdc.Event) []*cdc.Event {
	var out []*cdc.Event
	for _, e := range events {
		if e != bad {
			out = append(out, e)
		}
	}
	return out
}

func before(events []*cdc.Event, bad *cdc.Event) []*cdc.Event {
	for i, e := range events {
		if e == bad {
			return events[:i]
		}
	}
	return events
}

// justBefore is the checkpoint of a sink stopped at e.
func justBefore(e *cdc.Event) cdc.Position {
	if e.Index == 0 {
		return cdc.Position{LSN: e.LSN - 1, Index: cdc.EndOfTx}
	}
	return cdc.Position{LSN: e.LSN, Index: e.Index - 1}
}

// TestShutdownBounded: a clean stop with one sink failing for good, or
// stuck in a write that ignores its context, ends within the shutdown
// timeout (plus the moment given to close the sinks); the healthy sink
// flushes and saves its checkpoint; the error names the sink that could not
// flush.
func TestShutdownBounded(t *testing.T) {
	msgs := readCapture(t, capture)
	all, _ := decodeCapture(t, msgs)
	last := cdc.Position{LSN: all[len(all)-1].LSN, Index: cdc.EndOfTx}
	for _, tc := range []struct {
		name string
		bad  cdc.Sink
	}{
		{"failing", &failFirst{Sink: &recorder{}, n: 1 << 30}},
		{"stuck", stuck{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := &recorder{}
			cps := &memCheckpoints{}
			p, err := pipeline.New(pipeline.Config{
				Name: "core", Checkpoints: cps, Logger: testLogger(t), ShutdownTimeout: 300 * time.Millisecond,
				RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
				Sinks: []pipeline.SinkConfig{{Name: "good", Sink: good}, {Name: "bad", Sink: tc.bad}},
			})
			if err != nil {
				t.Fatal(err)
			}
			src := &replay{msgs: msgs, untilStopped: true, delivered: make(chan struct{}), drainTimeout: 300 * time.Millisecond}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx, src) }()
			<-src.delivered
			cancel()
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("Run did not return a minute after the stop")
			}
			if !errors.Is(err, pipeline.ErrNotFlushed) || !strings.Contains(err.Error(), "sink bad") {
				t.Fatalf("Run: %v, want an error naming sink bad (ErrNotFlushed)", err)
			}
			if got := good.count(); got != len(all) {
				t.Errorf("good sink has %d events, want %d", got, len(all))
			}
			if cp := cps.get("good"); cp.Position != last {
				t.Errorf("good sink's checkpoint %s, want %s", cp.Position, last)
			}
			if cp := cps.get("bad"); cp.Position.Compare(last) >= 0 {
				t.Errorf("bad sink's checkpoint %s: past what it wrote", cp.Position)
			}
		})
	}
}

// stuck is a sink whose writes never return, whatever their context.
type stuck struct{}

func (stuck) Write(context.Context, cdc.Batch) error { select {} }
func (stuck) Close(context.Context) error            { return nil }

// TestAbandon: when the stream gives the slot up, a sink writes nothing
// more of what it received on that connection: its write in flight is
// cancelled and its queue dropped.
func TestAbandon(t *testing.T) {
	msgs := readCapture(t, capture)
	g := &gate{blocked: make(chan struct{})}
	cps := &memCheckpoints{}
	p, err := pipeline.New(pipeline.Config{
		Name: "core", Checkpoints: cps, Logger: testLogger(t),
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
		Sinks: []pipeline.SinkConfig{{Name: "s", Sink: g, Batch: cdc.BatchPolicy{MaxEvents: 2}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	src := sourceFunc(func(ctx context.Context, c cdc.Consumer) error {
		if err := c.Open(ctx); err != nil {
			return err
		}
		for _, b := range msgs {
			if err := c.Message(ctx, b); err != nil {
				return err
			}
		}
		<-g.blocked
		c.Abandon(false) // the connection is lost
		if err := c.Open(ctx); err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return c.Drain(dctx)
	})
	if err := p.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if n := g.count(); n != 0 {
		t.Fatalf("%d events written after the connection was abandoned", n)
	}
	if !g.cancelled {
		t.Error("the write in flight was not cancelled")
	}
	if cp := cps.get("s"); cp.Position != (cdc.Position{}) {
		t.Errorf("checkpoint moved to %s", cp.Position)
	}
}

// TestRestartWriteInFlight: when the stream gives its connection up to
// read the slot again (a restart), a healthy sink's write in flight is not
// cancelled: it finishes and is saved, and the slot read again does not
// deliver it twice.
func TestRestartWriteInFlight(t *testing.T) {
	msgs := readCapture(t, capture)
	all, lastEnd := decodeCapture(t, msgs)
	for len(all) > 0 && all[len(all)-1].LSN > lastEnd {
		all = all[:len(all)-1]
	}
	h := &gate{blocked: make(chan struct{}), release: make(chan struct{})}
	cps := &memCheckpoints{}
	p, err := pipeline.New(pipeline.Config{
		Name: "core", Checkpoints: cps, Logger: testLogger(t),
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
		Sinks: []pipeline.SinkConfig{{Name: "s", Sink: h, Batch: cdc.BatchPolicy{MaxEvents: 2}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	src := sourceFunc(func(ctx context.Context, c cdc.Consumer) error {
		if err := c.Open(ctx); err != nil {
			return err
		}
		for _, b := range msgs {
			if err := c.Message(ctx, b); err != nil {
				return err
			}
		}
		<-h.blocked
		c.Abandon(true) // given up to read the slot again
		close(h.release)
		if err := c.Open(ctx); err != nil {
			return err
		}
		for _, b := range msgs { // the slot from the start again: the worst case
			if err := c.Message(ctx, b); err != nil {
				return err
			}
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return c.Drain(dctx)
	})
	if err := p.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if h.cancelled {
		t.Error("the write in flight was cancelled by the restart")
	}
	got := ids(h.snapshot())
	if !slices.Equal(got, ids(all)) {
		t.Fatalf("%d events written, want each of the %d committed once, in order (first write: %d events)", len(got), len(all), h.first)
	}
}

// TestTargetDownAtOpen: a sink whose own checkpoint cannot be read at open
// (its target is down) waits on its own while the other sink streams; once
// its target answers it asks for the slot to be read again and catches up.
func TestTargetDownAtOpen(t *testing.T) {
	msgs := readCapture(t, capture)
	all, lastEnd := decodeCapture(t, msgs)
	// The capture may end inside a transaction: only what committed is
	// dispatched before the stop.
	for len(all) > 0 && all[len(all)-1].LSN > lastEnd {
		all = all[:len(all)-1]
	}
	healthy, late := &recorder{}, &recorder{}
	down := &flakyResumer{fails: 3}
	p, err := pipeline.New(pipeline.Config{
		Name: "core", Checkpoints: &memCheckpoints{}, Logger: testLogger(t),
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
		Sinks: []pipeline.SinkConfig{{Name: "healthy", Sink: healthy}, {Name: "late", Sink: late, Resume: down}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var reads int
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src := sourceFunc(func(ctx context.Context, c cdc.Consumer) error {
		for {
			reads++
			if err := c.Open(ctx); err != nil {
				return err
			}
			for _, b := range msgs {
				if err := c.Message(ctx, b); err != nil {
					return err
				}
			}
			select {
			case <-c.Restart():
				c.Abandon(true)
			case <-ctx.Done():
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				return c.Drain(dctx)
			}
		}
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, src) }()
	deadline := time.Now().Add(time.Minute)
	for healthy.count() < len(all) || late.count() < len(all) {
		if time.Now().After(deadline) {
			var got []string
			for _, e := range healthy.snapshot() {
				got = append(got, e.Position().String())
			}
			var want []string
			for _, e := range all {
				want = append(want, e.Position().String())
			}
			t.Fatalf("healthy has %d, late %d of %d events:\n got %v\nwant %v", healthy.count(), late.count(), len(all), got, want)
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkOrdered(t, "healthy", healthy.snapshot())
	checkOrdered(t, "late", late.snapshot())
	if reads < 2 {
		t.Errorf("the slot was read %d times; the late sink should have asked for a second read", reads)
	}
	if got := ids(healthy.snapshot()); !slices.Equal(got, ids(all)) {
		t.Errorf("healthy sink: %d events, want %d", len(got), len(all))
	}
}

// sourceFunc is a pipeline.Source from a function.
type sourceFunc func(ctx context.Context, c cdc.Consumer) error

func (f sourceFunc) Run(ctx context.Context, c cdc.Consumer) error { return f(ctx, c) }

// gate is a sink whose first write blocks until release is closed (never,
// when it is nil) or its context ends; every write that returns nil is
// recorded.
type gate struct {
	mu        sync.Mutex
	blocked   chan struct{} // closed when the first write blocks
	release   chan struct{}
	writes    int
	first     int // events of the first write, once released
	cancelled bool
	events    []*cdc.Event
}

func (g *gate) Write(ctx context.Context, b cdc.Batch) error {
	g.mu.Lock()
	g.writes++
	first := g.writes == 1
	g.mu.Unlock()
	if first {
		close(g.blocked)
		select {
		case <-g.release:
		case <-ctx.Done():
			g.mu.Lock()
			g.cancelled = true
			g.mu.Unlock()
			return ctx.Err()
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if first {
		g.first = len(b.Events)
	}
	g.events = append(g.events, b.Events...)
	return nil
}

func (g *gate) Close(context.Context) error { return nil }

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.events)
}

func (g *gate) snapshot() []*cdc.Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.events)
}

// flakyResumer fails its first reads, then has no checkpoint.
type flakyResumer struct {
	mu    sync.Mutex
	fails int
}

func (f *flakyResumer) Checkpoint(context.Context) (cdc.Position, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return cdc.Position{}, false, errors.New("target unreachable (test)")
	}
	return cdc.Position{}, false, nil
}

// TestBackfillHandoff: a held sink is fed a backfill of the events before a
// hand-off LSN, then takes the live stream from it: every event exactly
// once, positions increasing, while the other sink streams on. With a
// partial scope it first takes, from the live stream, the events before
// the hand-off that the backfill does not cover.
func TestBackfillHandoff(t *testing.T) {
	msgs := readCapture(t, capture)
	all, lastEnd := decodeCapture(t, msgs)
	for len(all) > 0 && all[len(all)-1].LSN > lastEnd {
		all = all[:len(all)-1]
	}
	// The hand-off: the commit LSN of the middle event's transaction.
	h := all[len(all)/2].LSN
	for _, tc := range []struct {
		name  string
		scope func(*cdc.Event) bool // nil: every event
	}{
		{"whole table", nil},
		{"even seq_ids", func(e *cdc.Event) bool { return e.SeqID%2 == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var table, want []*cdc.Event // what the backfill reads; what the sink must get
			for _, e := range all {
				if e.LSN < h && (tc.scope == nil || tc.scope(e)) {
					table = append(table, e)
				}
			}
			for _, e := range all {
				if e.LSN < h && tc.scope != nil && !tc.scope(e) {
					want = append(want, e) // live, before the backfill
				}
			}
			var fed []*cdc.Event
			for i, e := range table {
				c := *e
				c.LSN, c.Index, c.CommitTime, c.TxID = h-1, uint32(i), time.Time{}, 0
				fed = append(fed, &c)
			}
			want = append(want, fed...)
			for _, e := range all {
				if e.LSN >= h {
					want = append(want, e)
				}
			}

			live, bf := &recorder{}, &recorder{}
			p, err := pipeline.New(pipeline.Config{
				Name: "core", Checkpoints: &memCheckpoints{}, Logger: testLogger(t),
				RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
				Sinks: []pipeline.SinkConfig{{Name: "live", Sink: live},
					{Name: "bf", Sink: bf, Backfill: &pipeline.BackfillState{Held: true}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx, restartingReplay(msgs, lastEnd)) }()

			b, err := p.Backfill("bf")
			if err != nil {
				t.Fatal(err)
			}
			bctx, bcancel := context.WithTimeout(ctx, time.Minute)
			defer bcancel()
			if err := b.Begin(bctx, h, tc.scope); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(fed); i += 3 {
				if err := b.Feed(bctx, fed[i:min(i+3, len(fed))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Finish(bctx, &pipeline.Handoff{Scope: tc.scope, Segments: []pipeline.Segment{{Start: h}}}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(time.Minute)
			for bf.count() < len(want) || live.count() < len(all) {
				if time.Now().After(deadline) {
					t.Fatalf("bf has %d of %d events, live %d of %d", bf.count(), len(want), live.count(), len(all))
				}
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			got := bf.snapshot()
			checkOrdered(t, "bf", got)
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("bf got\n %v\nwant\n %v", ids(got), ids(want))
			}
			checkOrdered(t, "live", live.snapshot())
		})
	}
}

// restartingReplay is a source that hands the capture over on every
// connection, reading it again whenever the consumer asks, as the stream
// does from the confirmed position; keepalives at the capture's end tell
// the consumer nothing more is committed.
func restartingReplay(msgs [][]byte, end cdc.LSN) sourceFunc {
	return func(ctx context.Context, c cdc.Consumer) error {
		for {
			if err := c.Open(ctx); err != nil {
				return err
			}
			for _, b := range msgs {
				if err := c.Message(ctx, b); err != nil {
					return err
				}
			}
			tick := time.NewTicker(10 * time.Millisecond)
		wait:
			for {
				select {
				case <-c.Restart():
					c.Abandon(true)
					break wait
				case <-tick.C:
					c.Keepalive(end + 1)
				case <-ctx.Done():
					tick.Stop()
					dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
					defer cancel()
					return c.Drain(dctx)
				}
			}
			tick.Stop()
		}
	}
}

// TestBackfillAfterShutdown: a backfill that asks the sink something after
// the pipeline stopped gets an error, not a panic.
func TestBackfillAfterShutdown(t *testing.T) {
	msgs := readCapture(t, capture)
	_, lastEnd := decodeCapture(t, msgs)
	p, err := pipeline.New(pipeline.Config{
		Name: "core", Checkpoints: &memCheckpoints{}, Logger: testLogger(t),
		Sinks: []pipeline.SinkConfig{{Name: "bf", Sink: &recorder{}, Backfill: &pipeline.BackfillState{Held: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Backfill("bf")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, restartingReplay(msgs, lastEnd)) }()
	if err := b.Hold(t.Context()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Abort":  func() error { return b.Abort(t.Context()) },
		"Feed":   func() error { return b.Feed(t.Context(), nil) },
		"Resume": func() error { return b.Resume(t.Context()) },
	} {
		if err := call(); err == nil {
			t.Errorf("%s after the shutdown: no error", name)
		}
	}
}
