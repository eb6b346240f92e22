package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/martencdc/cdc"
)

// progressLog is a Progress that records the highest seq_id applied in the
// table progress, and what it was told committed.
type progressLog struct {
	mu        sync.Mutex
	committed [][]string // event ids per Committed call
}

func (p *progressLog) Statement(events []*cdc.Event) (string, []any, bool) {
	if len(events) == 0 {
		return "", nil, false
	}
	var top int64
	for _, e := range events {
		top = max(top, e.SeqID)
	}
	return `INSERT INTO progress (seq) VALUES ($1)`, []any{top}, true
}

func (p *progressLog) Committed(events []*cdc.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, e := range events {
		ids = append(ids, e.ID)
	}
	p.committed = append(p.committed, ids)
}

// TestProgressInTransaction: the progress statement runs in the batch's
// transaction: committed with it (for the events committed, also when an
// event is rejected and the ones before it commit), and when it fails
// nothing of the batch is committed.
func TestProgressInTransaction(t *testing.T) {
	pool := newTarget(t, `CREATE TABLE progress (seq bigint NOT NULL CHECK (seq <> 13))`)
	prog := &progressLog{}
	s := newSink(t, pool, Config{Mode: ModeEvents, Progress: prog})
	ctx := context.Background()
	if err := s.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'poison' THEN RAISE EXCEPTION 'refused %', NEW.id; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON cdc_events FOR EACH ROW EXECUTE FUNCTION refuse()`)
	events := make([]*cdc.Event, 20)
	for i := range events {
		events[i] = testEvent(int64(i+1), "tick", `{}`)
	}
	ids := func(es []*cdc.Event) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}

	write(t, s, events[:5]) // seq 1..5, pipelined
	if got := count(t, pool, `SELECT max(seq) FROM progress`); got != 5 {
		t.Fatalf("progress %d after the first batch, want 5", got)
	}

	// Seq 13 breaks the progress table's check: the whole batch rolls back.
	if err := s.Write(ctx, cdc.Batch{Events: events[5:13]}); err == nil {
		t.Fatal("a batch whose progress statement fails was committed")
	}
	if n := count(t, pool, `SELECT count(*) FROM cdc_events`); n != 5 {
		t.Fatalf("%d events committed, want the 5 of the first batch", n)
	}
	if got := count(t, pool, `SELECT max(seq) FROM progress`); got != 5 {
		t.Fatalf("progress %d after a failed batch, want 5", got)
	}

	// A rejected event: the events before it commit, with their progress.
	batch := slices.Clone(events[5:12]) // seq 6..12
	batch[4] = testEvent(10, "poison", `{}`)
	batch[4].LSN, batch[4].Index = events[9].LSN, events[9].Index
	rej := rejected(t, s.Write(ctx, cdc.Batch{Events: batch}))
	if rej.Index != 4 {
		t.Fatalf("rejected %d, want 4", rej.Index)
	}
	if got := count(t, pool, `SELECT max(seq) FROM progress`); got != 9 {
		t.Fatalf("progress %d after the rejection, want 9 (the events before the poison one)", got)
	}
	prog.mu.Lock()
	defer prog.mu.Unlock()
	want := [][]string{ids(events[:5]), ids(events[5:9])}
	if len(prog.committed) != 2 || !slices.Equal(prog.committed[0], want[0]) || !slices.Equal(prog.committed[1], want[1]) {
		t.Fatalf("committed %v, want %v", prog.committed, want)
	}
}
