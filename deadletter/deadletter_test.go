package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

// newStore returns a store on a fresh database, its table created.
func newStore(t *testing.T) *Store {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t, pg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := New(pool, "")
	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// event returns event n of a test stream, at position 0/1000+n (in
// reverse order of n for odd n, so that ids and positions differ in order).
func event(n int) *cdc.Event {
	return &cdc.Event{
		ID: fmt.Sprintf("018f0000-0000-7000-8000-%012d", n), SeqID: int64(n), StreamID: "s1", Version: int64(n),
		Type: "noted", TenantID: "*DEFAULT*", Timestamp: time.Date(2026, 12, 1, 0, 0, n, 500, time.UTC),
		Data: json.RawMessage(fmt.Sprintf(`{"n": %d, "text": "a\tb"}`, n)), Headers: json.RawMessage(`{"h": [1, 2]}`),
		CorrelationID: "c", LSN: cdc.LSN(0x1000 + 16*(n%2)), Index: uint32(n), CommitTime: time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC),
	}
}

// write stores events 1..n as dead letters of sink and returns them.
func write(t *testing.T, s *Store, sink string, n int) []*cdc.Event {
	t.Helper()
	var out []*cdc.Event
	for i := 1; i <= n; i++ {
		e := event(i)
		if err := s.Write(t.Context(), "p", sink, e, fmt.Errorf("refused %d\nsecond line", i)); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func ids(letters []Letter) []int64 {
	var out []int64
	for _, l := range letters {
		out = append(out, l.ID)
	}
	return out
}

func eventIDs(letters []Letter) []string {
	var out []string
	for _, l := range letters {
		out = append(out, l.EventID)
	}
	return out
}

// TestListGetDelete: rows come back by position whatever order they were
// written in, filtered by sink and ids; the stored envelope rebuilds the
// event, which encodes to the envelope it was stored from; Delete removes
// only what it is asked to.
func TestListGetDelete(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if got, err := New(s.pool, "missing_schema").List(ctx, Filter{Pipeline: "p"}); err != nil || got != nil {
		t.Fatalf("missing table: %v %v", got, err)
	}
	events := write(t, s, "a", 4) // positions: 2 and 4 at 0/1000, 1 and 3 at 0/1010
	write(t, s, "b", 1)
	all, err := s.List(ctx, Filter{Pipeline: "p", Sink: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := eventIDs(all), []string{events[1].ID, events[3].ID, events[0].ID, events[2].ID}; !slices.Equal(got, want) {
		t.Fatalf("listed %v, want by position %v", got, want)
	}
	for _, l := range all {
		e, err := l.Event()
		if err != nil {
			t.Fatal(err)
		}
		orig := events[e.SeqID-1]
		if got, want := string(envelope.Append(nil, e)), string(envelope.Append(nil, orig)); got != want {
			t.Fatalf("rebuilt event:\n got %s\nwant %s", got, want)
		}
		if e.Position() != orig.Position() || l.Position != orig.Position() || l.StreamID != "s1" || l.Type != "noted" ||
			!strings.Contains(l.Error, "second line") || l.CreatedAt.IsZero() {
			t.Fatalf("letter %+v", l)
		}
	}
	if n, _ := s.List(ctx, Filter{Pipeline: "p"}); len(n) != 5 {
		t.Fatalf("pipeline lists %d, want 5", len(n))
	}
	if n, _ := s.List(ctx, Filter{Pipeline: "other"}); len(n) != 0 {
		t.Fatalf("other pipeline lists %d", len(n))
	}
	got, err := s.Get(ctx, "p", all[2].ID)
	if err != nil || got.EventID != all[2].EventID || string(got.Payload) != string(all[2].Payload) {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.Get(ctx, "other", all[2].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of another pipeline: %v", err)
	}
	if err := s.UpdateError(ctx, all[0].ID, "new"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "p", all[0].ID); got.Error != "new" || !got.CreatedAt.Equal(all[0].CreatedAt) {
		t.Fatalf("updated: %q %v", got.Error, got.CreatedAt)
	}
	del, err := s.Delete(ctx, Filter{Pipeline: "p", Sink: "a", IDs: []int64{all[3].ID, all[1].ID}})
	if err != nil || !slices.Equal(ids(del), []int64{all[1].ID, all[3].ID}) {
		t.Fatalf("deleted %v (%v), want %v by position", ids(del), err, []int64{all[1].ID, all[3].ID})
	}
	if err := s.UpdateError(ctx, all[1].ID, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a deleted row: %v", err)
	}
	left, _ := s.List(ctx, Filter{Pipeline: "p"})
	if len(left) != 3 {
		t.Fatalf("%d left, want 3", len(left))
	}
	// The ids of sink a do not reach sink b's row.
	if del, _ := s.Delete(ctx, Filter{Pipeline: "p", Sink: "a", IDs: ids(left)}); len(del) != 2 {
		t.Fatalf("deleted %d rows of sink a, want 2", len(del))
	}
}

// fakeWriter answers each Write with the next of answers (nil when none
// is left), and records the event ids of the batches it received.
type fakeWriter struct {
	answers func(b cdc.Batch) error
	got     [][]string
}

func (f *fakeWriter) Write(_ context.Context, b cdc.Batch) error {
	var ids []string
	for _, e := range b.Events {
		ids = append(ids, e.ID)
	}
	f.got = append(f.got, ids)
	return f.answers(b)
}

// rejectID rejects the event with id in a batch, once per id in ids.
func rejectIDs(ids ...string) func(cdc.Batch) error {
	return func(b cdc.Batch) error {
		for i, e := range b.Events {
			if slices.Contains(ids, e.ID) {
				return &cdc.RejectedError{Index: i, Err: errors.New("still refused: " + e.ID)}
			}
		}
		return nil
	}
}

// TestRetry: Retry sends the events by position in batches, removes the
// rows the sink accepted, keeps a rejected row with the new error and goes
// on after it, stops at a transient error keeping what was not accepted,
// and does not send events refused for their binary body.
func TestRetry(t *testing.T) {
	transient := errors.New("connection refused")
	tests := []struct {
		name     string
		batch    int
		answers  func(e []*cdc.Event) func(cdc.Batch) error // by the events, in position order
		binary   bool                                       // the first letter was refused for its binary body
		calls    [][]int                                    // the batches sent, as indexes in position order
		accepted []int
		rejected []int
		err      error
	}{
		{name: "all accepted", batch: 0,
			answers: func([]*cdc.Event) func(cdc.Batch) error { return rejectIDs() },
			calls:   [][]int{{0, 1, 2, 3}}, accepted: []int{0, 1, 2, 3}},
		{name: "small batches", batch: 3,
			answers: func([]*cdc.Event) func(cdc.Batch) error { return rejectIDs() },
			calls:   [][]int{{0, 1, 2}, {3}}, accepted: []int{0, 1, 2, 3}},
		{name: "one rejected again", batch: 10,
			answers: func(e []*cdc.Event) func(cdc.Batch) error { return rejectIDs(e[1].ID) },
			calls:   [][]int{{0, 1, 2, 3}, {2, 3}}, accepted: []int{0, 2, 3}, rejected: []int{1}},
		{name: "last rejected again", batch: 10,
			answers: func(e []*cdc.Event) func(cdc.Batch) error { return rejectIDs(e[3].ID) },
			calls:   [][]int{{0, 1, 2, 3}}, accepted: []int{0, 1, 2}, rejected: []int{3}},
		{name: "transient failure", batch: 2,
			answers: func(e []*cdc.Event) func(cdc.Batch) error {
				return func(b cdc.Batch) error {
					if b.Events[0].ID == e[2].ID {
						return transient
					}
					return nil
				}
			},
			calls: [][]int{{0, 1}, {2, 3}}, accepted: []int{0, 1}, err: transient},
		{name: "binary body", batch: 10, binary: true,
			answers: func([]*cdc.Event) func(cdc.Batch) error { return rejectIDs() },
			calls:   [][]int{{1, 2, 3}}, accepted: []int{1, 2, 3}, rejected: []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := t.Context()
			write(t, s, "a", 4)
			letters, err := s.List(ctx, Filter{Pipeline: "p", Sink: "a"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.binary {
				mustUpdate(t, s, letters[0].ID, cdc.ErrBinaryBody.Error())
				letters[0].Error = cdc.ErrBinaryBody.Error()
			}
			byPos := slices.Clone(letters)
			var events []*cdc.Event
			for _, l := range byPos {
				e, _ := l.Event()
				events = append(events, e)
			}
			slices.Reverse(letters) // Retry sorts them
			w := &fakeWriter{answers: tt.answers(events)}
			res, err := s.Retry(ctx, w, letters, tt.batch, nil)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			var calls [][]int
			for _, c := range w.got {
				var idx []int
				for _, id := range c {
					idx = append(idx, slices.IndexFunc(byPos, func(l Letter) bool { return l.EventID == id }))
				}
				calls = append(calls, idx)
			}
			if fmt.Sprint(calls) != fmt.Sprint(tt.calls) {
				t.Fatalf("batches %v, want %v", calls, tt.calls)
			}
			pick := func(idx []int) []int64 {
				var out []int64
				for _, i := range idx {
					out = append(out, byPos[i].ID)
				}
				return out
			}
			if got := ids(res.Delivered); !slices.Equal(got, pick(tt.accepted)) {
				t.Fatalf("delivered %v, want %v", got, pick(tt.accepted))
			}
			var rejected []int64
			for _, r := range res.Rejected {
				rejected = append(rejected, r.Letter.ID)
			}
			if !slices.Equal(rejected, pick(tt.rejected)) {
				t.Fatalf("rejected %v, want %v", rejected, pick(tt.rejected))
			}
			left, _ := s.List(ctx, Filter{Pipeline: "p", Sink: "a"})
			var wantLeft []int64
			for i, l := range byPos {
				if !slices.Contains(tt.accepted, i) {
					wantLeft = append(wantLeft, l.ID)
				}
			}
			if !slices.Equal(ids(left), wantLeft) {
				t.Fatalf("rows left %v, want %v", ids(left), wantLeft)
			}
			orig := map[int64]string{}
			for _, l := range byPos {
				orig[l.ID] = l.Error
			}
			for _, l := range left {
				want := orig[l.ID] // a row not sent keeps its error
				if slices.Contains(pick(tt.rejected), l.ID) && !l.Binary() {
					want = "still refused: " + l.EventID
				}
				if l.Error != want {
					t.Fatalf("row %d error %q, want %q", l.ID, l.Error, want)
				}
			}
		})
	}
}

func mustUpdate(t *testing.T, s *Store, id int64, msg string) {
	t.Helper()
	if err := s.UpdateError(t.Context(), id, msg); err != nil {
		t.Fatal(err)
	}
}
