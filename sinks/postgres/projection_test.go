package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc"
)

// balances is a Go projection (not a Batcher): it reads the current
// balance and writes the new one, and refuses a body it cannot decode.
type balances struct{}

var (
	errBadBody           = errors.New("bad body")
	errRefusedByCallback = errors.New("refused by a callback")
)

func (balances) Apply(ctx context.Context, tx pgx.Tx, e *cdc.Event) error {
	var body struct{ Amount int }
	if err := json.Unmarshal(e.Data, &body); err != nil {
		return fmt.Errorf("%w: %v", errBadBody, err)
	}
	var cur int
	err := tx.QueryRow(ctx, `SELECT amount FROM balances WHERE stream = $1`, e.StreamID).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = tx.Exec(ctx, `INSERT INTO balances VALUES ($1, $2)`, e.StreamID, body.Amount)
		return err
	}
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE balances SET amount = $2 WHERE stream = $1`, e.StreamID, cur+body.Amount)
	return err
}

// audit is a Go Batcher whose queued queries have callbacks: it records
// the seq_id returned by each insert (callbacks of a batch that is rolled
// back and applied again run again).
type audit struct{ seen *[]int64 }

func (a audit) Queue(b *pgx.Batch, e *cdc.Event) error {
	if e.Type == "unqueueable" {
		return errors.New("cannot queue this one")
	}
	b.Queue(`INSERT INTO audit VALUES ($1) RETURNING seq`, e.SeqID).QueryRow(func(row pgx.Row) error {
		var n int64
		if err := row.Scan(&n); err != nil {
			return err
		}
		if e.Type == "refused_by_callback" {
			return errRefusedByCallback
		}
		*a.seen = append(*a.seen, n)
		return nil
	})
	return nil
}

func (a audit) Apply(ctx context.Context, tx pgx.Tx, e *cdc.Event) error {
	var b pgx.Batch
	if err := a.Queue(&b, e); err != nil {
		return err
	}
	return tx.SendBatch(ctx, &b).Close()
}

const ledgerDDL = `CREATE TABLE balances (stream text PRIMARY KEY, amount int NOT NULL);
CREATE TABLE audit (seq bigint PRIMARY KEY)`

// TestGoProjection applies Go projections beside an SQL one: pipelined
// when all are Batchers, one by one otherwise; errors of a Go projection
// reject the event.
func TestGoProjection(t *testing.T) {
	pool := newTarget(t, ledgerDDL)
	var seen []int64
	count, err := SQL("count", []string{"deposit"}, `UPDATE balances SET amount = amount WHERE stream = $stream_id`)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, pool, Config{Routes: []Route{
		{Name: "audit", On: []string{"*"}, Projection: audit{&seen}},
		count,
		{Name: "balances", On: []string{"deposit"}, Projection: balances{}},
	}})
	var events []*cdc.Event
	for i := range 40 {
		typ := "deposit"
		if i%10 == 9 {
			typ = "noted" // audit only
		}
		events = append(events, testEvent(int64(i), typ, fmt.Sprintf(`{"Amount":%d}`, i)))
	}
	write(t, s, events[:20])
	// A batch of audit events only: every projection is a Batcher, the
	// callbacks run.
	onlyAudit := []*cdc.Event{testEvent(100, "noted", `{}`), testEvent(101, "noted", `{}`)}
	write(t, s, onlyAudit)
	if !slices.Equal(seen[len(seen)-2:], []int64{100, 101}) {
		t.Fatalf("audit callbacks saw %v", seen)
	}

	// A body the Go projection cannot decode: rejected, with the error.
	late := make([]*cdc.Event, 5)
	for i := range late {
		late[i] = testEvent(int64(200+i), "deposit", `{"Amount":1}`)
	}
	late[3].Data = []byte(`{"Amount":"lots"}`)
	err = s.Write(context.Background(), cdc.Batch{Events: late})
	rej := rejected(t, err)
	var pe *ProjectionError
	if rej.Index != 3 || !errors.Is(err, errBadBody) || !errors.As(err, &pe) || pe.Projection != "balances" {
		t.Fatalf("got %v, want event 3 rejected by balances with errBadBody", err)
	}
	write(t, s, late[4:])

	// An event the Batcher cannot queue (all projections are Batchers).
	q := []*cdc.Event{testEvent(300, "noted", `{}`), testEvent(301, "unqueueable", `{}`), testEvent(302, "noted", `{}`)}
	rej = rejected(t, s.Write(context.Background(), cdc.Batch{Events: q}))
	if rej.Index != 1 {
		t.Fatalf("rejected %d, want 1", rej.Index)
	}
	write(t, s, q[2:])

	// A callback refuses an event after the server inserted it, and the
	// server goes on with the next events: they must not be committed.
	c := []*cdc.Event{testEvent(400, "noted", `{}`), testEvent(401, "refused_by_callback", `{}`), testEvent(402, "noted", `{}`), testEvent(403, "noted", `{}`)}
	err = s.Write(context.Background(), cdc.Batch{Events: c})
	if rej := rejected(t, err); rej.Index != 1 || !errors.Is(err, errRefusedByCallback) {
		t.Fatalf("got %v, want event 1 rejected by the callback", err)
	}
	if n := countRows(t, s, "audit WHERE seq >= 400"); n != 1 {
		t.Fatalf("%d audit rows of the refused batch, want 1 (the event before the refused one)", n)
	}
	if p, _ := checkpointOf(t, s); p != c[0].Position() {
		t.Fatalf("checkpoint %v, want %v", p, c[0].Position())
	}
	write(t, s, c[2:])

	want := map[string]int{}
	for _, e := range append(events[:20], late[0], late[1], late[2], late[4]) {
		if e.Type == "deposit" {
			var body struct{ Amount int }
			_ = json.Unmarshal(e.Data, &body)
			want[e.StreamID] += body.Amount
		}
	}
	rows, err := pool.Query(context.Background(), `SELECT stream, amount FROM balances`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var k string
		var v int
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		got[k] = v
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("balances %v, want %v", got, want)
	}
	if n := countRows(t, s, "audit"); n != 31 {
		t.Errorf("%d audit rows, want 31", n)
	}
}

func countRows(t *testing.T, s *Sink, table string) int {
	t.Helper()
	return count(t, s.pool, `SELECT count(*) FROM `+table)
}
