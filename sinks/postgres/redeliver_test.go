package postgres

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/martencdc/cdc"
)

// TestRedeliver: events at or below the sink's checkpoint, which Write
// skips as applied, are applied by Redeliver, which leaves the checkpoint
// where it is; an event refused again comes back as a RejectedError with
// the events before it committed, batched or applied event by event; and
// Write goes on afterwards (the compare-and-set of the checkpoint is not
// disturbed).
func TestRedeliver(t *testing.T) {
	tests := []struct {
		name    string
		batched bool
	}{
		{"batched", true},
		{"applied", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := newTarget(t, itemsDDL)
			routes := itemRoutes(t)
			if !tt.batched {
				for i := range routes {
					routes[i].Projection = applyOnly{routes[i].Projection}
				}
			}
			s := newSink(t, pool, Config{Routes: routes})
			ctx := context.Background()
			ev := items(8)
			// Events 2 and 5 are refused at first: their N is negative.
			ev[2].Data, ev[5].Data = []byte(`{"N":-1}`), []byte(`{"N":-2}`)
			for rest := ev; len(rest) > 0; {
				err := s.Write(ctx, cdc.Batch{Events: rest})
				if err == nil {
					break
				}
				rest = rest[rejected(t, err).Index+1:]
			}
			cp, _ := checkpointOf(t, s)
			if cp != ev[7].Position() {
				t.Fatalf("checkpoint %s, want %s", cp, ev[7].Position())
			}
			if n := count(t, pool, `SELECT count(*) FROM items`); n != 6 {
				t.Fatalf("%d items, want 6", n)
			}

			// Write skips them as applied: the checkpoint is past them.
			ev[2].Data, ev[5].Data = []byte(`{"N":20}`), []byte(`{"N":-5}`)
			write(t, s, []*cdc.Event{ev[2], ev[5]})
			if n := count(t, pool, `SELECT count(*) FROM items`); n != 6 {
				t.Fatalf("Write applied events below the checkpoint: %d items", n)
			}
			// Redeliver applies them; event 5 is still refused, after event 2
			// committed.
			err := s.Redeliver(ctx, cdc.Batch{Events: []*cdc.Event{ev[2], ev[5]}})
			if rej := rejected(t, err); rej.Index != 1 {
				t.Fatalf("rejected index %d, want 1", rej.Index)
			}
			var pe *ProjectionError
			if !errors.As(err, &pe) || pe.EventID != ev[5].ID {
				t.Fatalf("error %v, want a ProjectionError naming event 5", err)
			}
			ev[5].Data = []byte(`{"N":50}`)
			if err := s.Redeliver(ctx, cdc.Batch{Events: []*cdc.Event{ev[5]}}); err != nil {
				t.Fatal(err)
			}
			want := make([]string, 0, 8)
			for _, e := range ev {
				want = append(want, e.ID)
			}
			slices.Sort(want)
			if got := itemIDs(t, pool, "items"); !slices.Equal(got, want) {
				t.Fatalf("items %v, want every event's %v", got, want)
			}
			if got, _ := checkpointOf(t, s); got != cp {
				t.Fatalf("checkpoint moved to %s by Redeliver, want %s", got, cp)
			}
			// Write goes on from the checkpoint.
			next := testEvent(40, "item_added", `{"N":1}`)
			write(t, s, []*cdc.Event{next})
			if got, _ := checkpointOf(t, s); got != next.Position() {
				t.Fatalf("checkpoint %s after Write, want %s", got, next.Position())
			}
		})
	}
}

// TestRedeliverEventsMode: in mode events, Redeliver copies an event below
// the checkpoint once, and again is a no-op.
func TestRedeliverEventsMode(t *testing.T) {
	pool := newTarget(t, "")
	s := newSink(t, pool, Config{Mode: ModeEvents})
	ctx := context.Background()
	ev := items(3)
	write(t, s, []*cdc.Event{ev[0], ev[2]})
	for range 2 {
		if err := s.Redeliver(ctx, cdc.Batch{Events: []*cdc.Event{ev[1]}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM cdc_events`); n != 3 {
		t.Fatalf("%d events copied, want 3", n)
	}
	if got, _ := checkpointOf(t, s); got != ev[2].Position() {
		t.Fatalf("checkpoint %s, want %s", got, ev[2].Position())
	}
}
