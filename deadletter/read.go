package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
)

// This file reads, updates and deletes dead letters, for cdc deadletters.

// ErrNotFound is returned by Get for an id the pipeline has no dead letter
// with.
var ErrNotFound = errors.New("no such dead letter")

// Letter is one row of cdc_dead_letters.
type Letter struct {
	ID        int64           // the row's id, what the commands take as --id
	Pipeline  string          // the pipeline of the sink
	Sink      string          // the sink that rejected the event
	Position  cdc.Position    // the event's position: commit LSN and index in the transaction
	EventID   string          // mt_events.id
	StreamID  string          // mt_events.stream_id
	Type      string          // the event type
	Error     string          // why the sink rejected it, as the target said
	Payload   json.RawMessage // the event as a JSON envelope, as jsonb gives it back
	CreatedAt time.Time       // when the sink first rejected the event
}

// Event rebuilds the rejected event from the stored envelope, with its
// index in the transaction from the row. The envelope has no TxID and no
// binary body (BData): those stay zero.
func (l *Letter) Event() (*cdc.Event, error) {
	e, err := envelope.Decode(l.Payload)
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", l.ID, err)
	}
	e.LSN, e.Index = l.Position.LSN, l.Position.Index
	return e, nil
}

// Envelope returns the stored envelope with its fields in the envelope's
// order (jsonb gives them back in an order of its own), or the payload as
// stored when it does not decode.
func (l *Letter) Envelope() []byte {
	e, err := l.Event()
	if err != nil {
		return l.Payload
	}
	return envelope.Append(nil, e)
}

// Binary reports whether the event was rejected because its body is binary
// (cdc.ErrBinaryBody): the envelope holds no body to re-send, so no retry
// can deliver it.
func (l *Letter) Binary() bool { return l.Error == cdc.ErrBinaryBody.Error() }

// Filter chooses dead letters: those of Pipeline (required), of Sink when
// set (all sinks of the pipeline otherwise), and with the ids IDs when set
// (all of them when IDs is empty).
type Filter struct {
	Pipeline string
	Sink     string
	IDs      []int64
}

// where returns the WHERE clause of f and its arguments.
func (f Filter) where() (string, []any) {
	conds := []string{"pipeline = $1"}
	args := []any{f.Pipeline}
	if f.Sink != "" {
		args = append(args, f.Sink)
		conds = append(conds, fmt.Sprintf("sink = $%d", len(args)))
	}
	if len(f.IDs) > 0 {
		args = append(args, f.IDs)
		conds = append(conds, fmt.Sprintf("id = ANY($%d)", len(args)))
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// what names the dead letters f chooses, for errors.
func (f Filter) what() string {
	if f.Sink == "" {
		return "dead letters of pipeline " + f.Pipeline
	}
	return "dead letters of " + f.Pipeline + "/" + f.Sink
}

// columns are the columns a Letter is scanned from, in scanLetter's order.
const columns = `id, pipeline, sink, lsn::text, tx_index, event_id, stream_id, type, error, payload::text, created_at`

// order is the order dead letters are listed and re-sent in: by position,
// the order the sink received them.
const order = ` ORDER BY lsn, tx_index, id`

func scanLetter(row pgx.CollectableRow) (Letter, error) {
	var l Letter
	var lsn, payload string
	var idx int64
	if err := row.Scan(&l.ID, &l.Pipeline, &l.Sink, &lsn, &idx, &l.EventID, &l.StreamID, &l.Type, &l.Error, &payload, &l.CreatedAt); err != nil {
		return l, err
	}
	p, err := cdc.ParseLSN(lsn)
	if err != nil {
		return l, fmt.Errorf("dead letter %d: %w", l.ID, err)
	}
	if idx < 0 || idx > int64(cdc.EndOfTx) {
		return l, fmt.Errorf("dead letter %d: tx_index %d out of range", l.ID, idx)
	}
	l.Position = cdc.Position{LSN: p, Index: uint32(idx)}
	l.Payload = json.RawMessage(payload)
	return l, nil
}

// List returns the dead letters f chooses, oldest position first. A
// missing table holds none.
func (s *Store) List(ctx context.Context, f Filter) ([]Letter, error) {
	where, args := f.where()
	return s.query(ctx, "list "+f.what(), `SELECT `+columns+` FROM `+s.table+where+order, args)
}

// Get returns the dead letter id of pipeline, or ErrNotFound.
func (s *Store) Get(ctx context.Context, pipeline string, id int64) (Letter, error) {
	letters, err := s.List(ctx, Filter{Pipeline: pipeline, IDs: []int64{id}})
	if err != nil {
		return Letter{}, err
	}
	if len(letters) == 0 {
		return Letter{}, fmt.Errorf("dead letter %d of pipeline %s: %w", id, pipeline, ErrNotFound)
	}
	return letters[0], nil
}

// Delete removes the dead letters f chooses and returns them (payloads
// included), by position. A missing table holds none.
func (s *Store) Delete(ctx context.Context, f Filter) ([]Letter, error) {
	where, args := f.where()
	return s.query(ctx, "delete "+f.what(), `WITH d AS (DELETE FROM `+s.table+where+` RETURNING *) SELECT `+columns+` FROM d`+order, args)
}

// query runs sql, which returns dead-letter rows, unless the table is
// missing (no rows); what names the work in errors.
func (s *Store) query(ctx context.Context, what, sql string, args []any) ([]Letter, error) {
	if ok, err := s.exists(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	} else if !ok {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, scanLetter)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// UpdateError replaces the error of dead letter id (a retry rejected
// again); created_at keeps the time of the first rejection. It returns ErrNotFound when the row is
// gone (discarded meanwhile).
func (s *Store) UpdateError(ctx context.Context, id int64, msg string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET error = $2 WHERE id = $1`, id, msg)
	if err != nil {
		return fmt.Errorf("update the error of dead letter %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update the error of dead letter %d: %w", id, ErrNotFound)
	}
	return nil
}
