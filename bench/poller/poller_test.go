package poller

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

// The store's schema in these tests: not public, to check the quoting.
const schema = "helpdesk"

func TestNextMark(t *testing.T) {
	p := func(v int64) *int64 { return &v }
	tests := []struct {
		name   string
		g      gapReading
		hold   bool
		want   int64
		wantOK bool
	}{
		{"no rows", gapReading{start: 5}, true, 0, false},
		{"contiguous to max", gapReading{start: 5, firstAfter: p(6), maxSeq: p(9)}, true, 9, true},
		{"interior gap", gapReading{start: 5, firstAfter: p(6), gapEdge: p(7), maxSeq: p(12)}, true, 7, true},
		{"gap right above the mark", gapReading{start: 5, firstAfter: p(7), gapEdge: p(5), maxSeq: p(9)}, true, 5, true},
		{"leading gap holds", gapReading{start: 0, firstAfter: p(2), maxSeq: p(4)}, true, 0, true},
		{"leading gap, safe zone skips", gapReading{start: 1, firstAfter: p(2), maxSeq: p(4)}, false, 4, true},
		{"safe zone to the next gap", gapReading{start: 6, firstAfter: p(7), gapEdge: p(9), maxSeq: p(20)}, false, 9, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.g.nextMark(tt.hold)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("nextMark(%v) = %d, %v; want %d, %v", tt.hold, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name     string
		s        statistics
		previous int64
		want     Status
	}{
		{"pristine sequence", statistics{highest: 1, mark: 0}, 0, CaughtUp},
		{"at the highest", statistics{highest: 8, mark: 8}, 3, CaughtUp},
		{"moved", statistics{highest: 8, mark: 5}, 3, Changed},
		{"under a gap", statistics{highest: 8, mark: 3}, 3, Stale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.status(tt.previous); got != tt.want {
				t.Errorf("status = %v, want %v", got, tt.want)
			}
		})
	}
}

// harness runs a poller against a fresh Marten database.
type harness struct {
	t    *testing.T
	pool *pgxpool.Pool

	mu        sync.Mutex
	delivered []Delivery
	polls     []Poll

	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
	stats   Stats
	err     error
}

// newStore returns a pool on a new database with Marten's schema.
func newStore(t *testing.T) *pgxpool.Pool {
	t.Helper()
	dsn := pgtest.NewMartenDatabase(t, pg, schema)
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// start runs the poller with o (schema set) until stop.
func start(t *testing.T, pool *pgxpool.Pool, o Options) *harness {
	t.Helper()
	h := &harness{t: t, pool: pool, done: make(chan struct{})}
	o.Schema = schema
	o.OnPoll = func(p Poll) {
		h.mu.Lock()
		h.polls = append(h.polls, p)
		h.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(t.Context())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		h.stats, h.err = Run(ctx, pool, o, func(d Delivery) {
			h.mu.Lock()
			h.delivered = append(h.delivered, d)
			h.mu.Unlock()
		})
	}()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop ends the poller and returns its stats; it fails the test on a Run
// error.
func (h *harness) stop() Stats {
	h.cancel()
	<-h.done
	if h.stopped {
		return h.stats
	}
	h.stopped = true
	if h.err != nil {
		h.t.Errorf("Run: %v", h.err)
	}
	return h.stats
}

// seqIDs returns the seq_ids delivered so far.
func (h *harness) seqIDs() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]int64, len(h.delivered))
	for i, d := range h.delivered {
		out[i] = d.SeqID
	}
	return out
}

// pollCount returns the number of polls so far.
func (h *harness) pollCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.polls)
}

// waitPolls waits until the poller has polled n more times.
func (h *harness) waitPolls(n int) {
	h.t.Helper()
	target := h.pollCount() + n
	pgtest.Eventually(h.t, 10*time.Second, func() bool { return h.pollCount() >= target }, "%d more polls", n)
}

// waitDelivered waits until the delivered seq_ids are want.
func (h *harness) waitDelivered(want []int64) {
	h.t.Helper()
	pgtest.Eventually(h.t, 10*time.Second, func() bool { return len(h.seqIDs()) >= len(want) }, "%d deliveries (have %v)", len(want), h.seqIDs())
	if got := h.seqIDs(); !slices.Equal(got, want) {
		h.t.Fatalf("delivered %v, want %v", got, want)
	}
}

// appendEvents appends n events to a new stream in their own transaction
// and returns their seq_ids.
func appendEvents(t *testing.T, db marten.Querier, n int) []int64 {
	t.Helper()
	stream := marten.NewID()
	types := slices.Repeat([]string{"incident_logged"}, n)
	_, seqs, err := marten.QuickAppend(t.Context(), db, schema, stream, "incident", "", marten.SampleEvents(stream, types...))
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// testOptions polls quickly with a stale threshold of stale.
func testOptions(stale time.Duration) Options {
	return Options{StaleThreshold: stale, FastPoll: 20 * time.Millisecond, SlowPoll: 50 * time.Millisecond}
}

func TestDeliversInOrder(t *testing.T) {
	pool := newStore(t)
	var want []int64
	want = append(want, appendEvents(t, pool, 3)...) // committed before the poller starts
	h := start(t, pool, Options{Schema: schema, FastPoll: 20 * time.Millisecond, SlowPoll: 50 * time.Millisecond, PageSize: 2})
	for range 4 {
		want = append(want, appendEvents(t, pool, 2)...)
	}
	h.waitDelivered(want)

	// Every id once, as in mt_events.
	rows, err := pool.Query(t.Context(), "select id::text from helpdesk.mt_events order by seq_id")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	h.waitPolls(2)
	s := h.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, d := range h.delivered {
		if d.ID != ids[i] {
			t.Errorf("delivery %d: id %s, want %s", i, d.ID, ids[i])
		}
		if i > 0 && d.At.Before(h.delivered[i-1].At) {
			t.Errorf("delivery %d handed over before delivery %d", i, i-1)
		}
	}
	if s.Delivered != len(want) || s.SkippedGaps != 0 || len(s.Skipped) != 0 {
		t.Errorf("stats %+v, want %d delivered, nothing skipped", s, len(want))
	}
}

// TestFromSkipsEarlierEvents checks Options.From.
func TestFromSkipsEarlierEvents(t *testing.T) {
	pool := newStore(t)
	first := appendEvents(t, pool, 3)
	h := start(t, pool, Options{From: first[2], FastPoll: 20 * time.Millisecond, SlowPoll: 50 * time.Millisecond})
	want := appendEvents(t, pool, 2)
	h.waitDelivered(want)
}

func TestGapFilledWithinThresholdHoldsDelivery(t *testing.T) {
	pool := newStore(t)
	h := start(t, pool, testOptions(5*time.Second))

	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	slow := appendEvents(t, tx, 1) // seq_id 1, not committed
	fast := appendEvents(t, pool, 2)

	// The poller sees the later events (the sequence is ahead) but holds
	// them behind the gap.
	pgtest.Eventually(t, 10*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := 0
		for _, p := range h.polls {
			if p.Highest >= fast[1] && p.Status == Stale {
				n++
			}
		}
		return n >= 3
	}, "three stale polls")
	if got := h.seqIDs(); len(got) != 0 {
		t.Fatalf("delivered %v across an open gap", got)
	}

	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.waitDelivered(append(slow, fast...))
	if s := h.stop(); s.SkippedGaps != 0 || len(s.Skipped) != 0 {
		t.Errorf("stats %+v, want nothing skipped", s)
	}
}

func TestStaleGapSkipped(t *testing.T) {
	tests := []struct {
		name     string
		commit   bool  // commit the slow transaction after the skip (else roll it back)
		wantLost []int // indexes into the slow seq_ids
	}{
		{name: "committed late", commit: true, wantLost: []int{0, 1}},
		{name: "rolled back", commit: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const stale = 300 * time.Millisecond
			pool := newStore(t)
			before := appendEvents(t, pool, 1)
			h := start(t, pool, testOptions(stale))
			h.waitDelivered(before)

			tx, err := pool.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			opened := time.Now()
			slow := appendEvents(t, tx, 2)
			fast := appendEvents(t, pool, 2)

			h.waitDelivered(append(before, fast...))
			// The stale clock runs from the last poll that found the mark
			// caught up, at most one slow poll before the gap opened.
			h.mu.Lock()
			waited := h.delivered[1].At.Sub(opened)
			h.mu.Unlock()
			if least := stale - testOptions(stale).SlowPoll; waited < least {
				t.Errorf("later events delivered %v after the gap opened, want at least %v", waited, least)
			}

			endTx(t, tx, tt.commit)
			more := appendEvents(t, pool, 1)
			h.waitDelivered(slices.Concat(before, fast, more)) // never the slow events

			s := h.stop()
			if s.SkippedGaps != 1 || !slices.Equal(s.Skipped, slow) {
				t.Errorf("stats %+v, want one gap skipped, seq_ids %v", s, slow)
			}
			lost, err := Lost(t.Context(), pool, schema, s.Skipped)
			if err != nil {
				t.Fatal(err)
			}
			var wantLost []int64
			for _, i := range tt.wantLost {
				wantLost = append(wantLost, slow[i])
			}
			if !slices.Equal(lost, wantLost) {
				t.Errorf("Lost = %v, want %v", lost, wantLost)
			}
		})
	}
}

func TestIdlePollsSlowly(t *testing.T) {
	pool := newStore(t)
	want := appendEvents(t, pool, 2)
	const (
		fast = 10 * time.Millisecond
		slow = 200 * time.Millisecond
	)
	h := start(t, pool, Options{FastPoll: fast, SlowPoll: slow})
	h.waitDelivered(want)
	h.waitPolls(1)

	// Count polls over a window in which nothing is appended.
	first := h.pollCount()
	window := time.NewTimer(time.Second)
	<-window.C
	n := h.pollCount() - first
	// 1 s at 200 ms is 5 polls; at 10 ms it would be ~100.
	if n < 3 || n > 8 {
		t.Errorf("%d polls in 1s while idle, want about %d", n, time.Second/slow)
	}
	h.mu.Lock()
	for _, p := range h.polls[first:] {
		if p.Status != CaughtUp {
			t.Errorf("idle poll %+v, want caught up", p)
		}
	}
	h.mu.Unlock()
	h.stop()
}

func TestRecordMark(t *testing.T) {
	pool := newStore(t)
	want := appendEvents(t, pool, 3)
	h := start(t, pool, Options{RecordMark: true, FastPoll: 20 * time.Millisecond, SlowPoll: 50 * time.Millisecond})
	h.waitDelivered(want)
	h.stop()
	var mark int64
	if err := pool.QueryRow(t.Context(), "select last_seq_id from helpdesk.mt_event_progression where name = 'HighWaterMark'").Scan(&mark); err != nil {
		t.Fatal(err)
	}
	if mark != want[2] {
		t.Errorf("recorded mark %d, want %d", mark, want[2])
	}
}

func TestHoldLiveGaps(t *testing.T) {
	tests := []struct {
		name   string
		commit bool // end the slow transaction with a commit (else a rollback)
	}{
		{name: "committed late", commit: true},
		{name: "rolled back", commit: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const stale = 300 * time.Millisecond
			pool := newStore(t)
			before := appendEvents(t, pool, 1)
			o := testOptions(stale)
			o.HoldLiveGaps = true
			h := start(t, pool, o)
			h.waitDelivered(before)

			tx, err := pool.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			slow := appendEvents(t, tx, 2)
			fast := appendEvents(t, pool, 2)

			// Stale polls for twice the threshold: the mark holds behind
			// the live transaction.
			pgtest.Eventually(t, 10*time.Second, func() bool {
				h.mu.Lock()
				defer h.mu.Unlock()
				var first time.Time
				for _, p := range h.polls {
					if p.Status != Stale {
						continue
					}
					if first.IsZero() {
						first = p.At
					}
					if p.At.Sub(first) > 2*stale {
						return true
					}
				}
				return false
			}, "stale polls for %v", 2*stale)
			if got := h.seqIDs(); !slices.Equal(got, before) {
				t.Fatalf("delivered %v across a live gap, want %v", got, before)
			}

			endTx(t, tx, tt.commit)
			want := slices.Concat(before, slow, fast)
			var wantSkipped []int64
			if !tt.commit {
				want, wantSkipped = slices.Concat(before, fast), slow
			}
			h.waitDelivered(want)

			s := h.stop()
			wantGaps := 0
			if !tt.commit {
				wantGaps = 1
			}
			if !slices.Equal(s.Skipped, wantSkipped) || s.SkippedGaps != wantGaps {
				t.Errorf("stats %+v, want skipped %v", s, wantSkipped)
			}
			lost, err := Lost(t.Context(), pool, schema, s.Skipped)
			if err != nil {
				t.Fatal(err)
			}
			if len(lost) != 0 {
				t.Errorf("Lost = %v, want none", lost)
			}
		})
	}
}

// endTx commits tx, or rolls it back.
func endTx(t *testing.T, tx pgx.Tx, commit bool) {
	t.Helper()
	var err error
	if commit {
		err = tx.Commit(t.Context())
	} else {
		err = tx.Rollback(t.Context())
	}
	if err != nil {
		t.Fatal(err)
	}
}
