package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/martencdc/cdc"
)

// step is an event of a batch to write: its index in the batch and the
// routes that match its type (none: the checkpoint covers it, nothing else).
type step struct {
	i      int
	routes []int
}

// owner says which projection a queued query belongs to: the route and
// statement (1-based) applying steps[step]. step is -1 for the sink's own
// queries (begin, savepoints, checkpoint) and for the insert of a whole
// batch in ModeEvents.
type owner struct {
	step, route, stmt int
}

// savepoint names the savepoint Write sets before each event when it looks
// for the event at fault.
const savepoint = "cdc_event"

// When Write looks for the event at fault, it checks deferred constraints
// at the end of each event (the events before the one at fault must be
// committable on their own), then defers them again for the next event.
// Non-deferrable constraints are not affected.
const (
	checkConstraints = "SET CONSTRAINTS ALL IMMEDIATE"
	deferConstraints = "SET CONSTRAINTS ALL DEFERRED"
)

// rollbackTimeout bounds the rollback of a failed transaction.
const rollbackTimeout = 10 * time.Second

// Write applies the batch in one transaction of the target database that
// also moves the sink's checkpoint row to the position of the batch's last
// event. It returns nil only once that transaction is committed.
//
// Events at or below the checkpoint stored in the target (read on the first
// Write and after a failure, then kept as committed) are skipped: they were
// applied by an earlier transaction, maybe by an instance that crashed
// before the pipeline saved its own checkpoint. Events no route matches are
// only covered by the checkpoint. When every projection that matches the
// batch's events is a Batcher (SQL projections and ModeEvents are), the
// statements of the whole batch, the begin and the checkpoint go to the
// server in one round trip, and the commit in a second; otherwise each
// event's projections are applied in turn.
//
// When the batch fails, a connection, serialization, deadlock or resource
// problem, a canceled ctx, a statement that cannot run for any event
// (SQLSTATE class 42: a missing table or column, a syntax error, a missing
// privilege) and a checkpoint moved by another writer are returned as plain
// errors: nothing was committed, and the pipeline writes the batch again.
// Any other failure (a constraint violation, a bad cast of event data, an
// exception raised by a trigger, an error of a Go projection) is looked
// for: the batch is applied again event by event in a new transaction, with
// a savepoint before each event and deferred constraints checked at the end
// of each event (pipelined too when all projections are Batchers: one round
// trip whatever the batch size), and at the first event i that fails, the
// events before it are committed with the checkpoint at event i-1 and Write
// returns a [*cdc.RejectedError] with Index i wrapping a [*ProjectionError].
// If no event fails the second time, that transaction commits the whole
// batch and Write returns nil.
func (s *Sink) Write(ctx context.Context, b cdc.Batch) error {
	return s.write(ctx, b, moveCheckpoint)
}

// checkpointing says whether a write moves the sink's checkpoint.
type checkpointing bool

const (
	// moveCheckpoint: Write. Events at or below the checkpoint are skipped
	// and the checkpoint moves with the batch (compare-and-set): exactly
	// once.
	moveCheckpoint checkpointing = true
	// leaveCheckpoint: Redeliver. Every event is applied and the
	// checkpoint row is neither read nor written: at least once.
	leaveCheckpoint checkpointing = false
)

// Redeliver applies the events of b again through the sink's projections
// (or, in ModeEvents, inserts them into the events table), whatever the
// sink's checkpoint: it re-sends dead letters (cdc deadletters retry),
// whose positions are at or below the checkpoint since the sink went on
// after rejecting them. It is Write without the checkpoint: no event is
// skipped as already applied, and the checkpoint row is neither read nor
// moved, so it never goes back, and the compare-and-set of an instance
// running the sink meanwhile is not disturbed.
//
// Failures are handled as by Write: a plain error when nothing was
// committed and trying again may help; otherwise the batch is applied
// again event by event with savepoints, the events before the first one
// that fails commit, and Redeliver returns a [*cdc.RejectedError] for it.
//
// Redelivery is at least once, not exactly once: nothing in the target
// records that an event was redelivered (the caller removes the dead
// letter once Redeliver returned nil), so a commit whose outcome was lost,
// or a caller that fails before removing its dead letter, makes the next
// call apply the event again. Idempotent statements (upserts, version
// guards) make that harmless; ModeEvents is idempotent on the event id.
func (s *Sink) Redeliver(ctx context.Context, b cdc.Batch) error {
	return s.write(ctx, b, leaveCheckpoint)
}

// write is Write (cp moveCheckpoint) or Redeliver (cp leaveCheckpoint).
func (s *Sink) write(ctx context.Context, b cdc.Batch, cp checkpointing) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if len(b.Events) == 0 {
		return nil
	}
	if !s.prepared {
		if err := s.prepare(ctx); err != nil {
			return err
		}
	}
	if !s.floorKnown && cp == moveCheckpoint {
		if err := s.loadFloor(ctx); err != nil {
			return err
		}
	}
	steps, batchable := s.plan(b.Events, cp)
	if len(steps) == 0 {
		return nil
	}
	s.current = b.Events
	defer func() { s.current = nil }()
	var err error
	if batchable {
		err = s.writeBatched(ctx, b.Events, steps, cp)
	} else {
		err = s.writeApplied(ctx, b.Events, steps, cp)
	}
	if err == nil {
		return nil
	}
	// A failed commit may have committed: read the checkpoint again.
	s.floorKnown = false
	if ctx.Err() != nil || retryable(err) {
		return fmt.Errorf("postgres sink %s: write %d events: %w", s.sink, len(steps), err)
	}
	s.log.Debug("batch failed; applying it again event by event to find the event at fault", "events", len(steps), "err", err)
	if err := s.isolate(ctx, b.Events, cp); err != nil {
		var rej *cdc.RejectedError
		if errors.As(err, &rej) {
			return err
		}
		s.floorKnown = false
		return fmt.Errorf("postgres sink %s: write %d events: %w", s.sink, len(steps), err)
	}
	return nil
}

// plan returns the events above the floor (with leaveCheckpoint: every
// event) with their routes, and whether every matching projection is a
// Batcher.
func (s *Sink) plan(events []*cdc.Event, cp checkpointing) (steps []step, batchable bool) {
	batchable = true
	for i, e := range events {
		if cp == moveCheckpoint && s.hasFloor && e.Position().Compare(s.floor) <= 0 {
			continue
		}
		rs := s.routesFor(e.Type)
		for _, r := range rs {
			if _, ok := s.routes[r].Projection.(Batcher); !ok {
				batchable = false
			}
		}
		steps = append(steps, step{i: i, routes: rs})
	}
	return steps, batchable
}

// writeBatched writes the steps with one pipelined batch (begin,
// statements, checkpoint unless leaveCheckpoint) and a commit; in ModeEvents
// with writeEvents.
func (s *Sink) writeBatched(ctx context.Context, events []*cdc.Event, steps []step, cpMode checkpointing) error {
	if s.events != nil {
		rows := make([]*cdc.Event, len(steps))
		for k, st := range steps {
			rows[k] = events[st.i]
		}
		return s.writeEvents(ctx, rows, rows[len(rows)-1].Position(), cpMode)
	}
	var b pgx.Batch
	b.BeginTx(pgx.TxOptions{})
	owners := []owner{{step: -1}}
	for k, st := range steps {
		for _, r := range st.routes {
			n := b.Len()
			if err := s.routes[r].Projection.(Batcher).Queue(&b, events[st.i]); err != nil {
				return s.projectionError(events[st.i], r, 0, err)
			}
			for q := n; q < b.Len(); q++ {
				owners = append(owners, owner{step: k, route: r, stmt: q - n + 1})
			}
		}
	}
	last := events[steps[len(steps)-1].i].Position()
	cp := -1
	var applied []*cdc.Event
	if cpMode == moveCheckpoint && s.progress != nil {
		applied = s.upTo(last)
		if sql, args, ok := s.progress.Statement(applied); ok {
			b.Queue(sql, args...)
			owners = append(owners, owner{step: -1})
		}
	}
	if cpMode == moveCheckpoint {
		cp = b.Len()
		b.Queue(s.cpSQL, s.checkpointArgs(last)...)
		owners = append(owners, owner{step: -1})
	}

	tags, failed := track(&b)
	br := s.pool.SendBatch(ctx, &b)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		rollback(ctx, tx)
		return s.attribute(err, *failed, &b, owners, events, steps)
	}
	if cp >= 0 && tags[cp].RowsAffected() != 1 {
		rollback(ctx, tx)
		return errCheckpointMoved
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if cp >= 0 {
		s.setFloor(last)
		if s.progress != nil {
			s.progress.Committed(applied)
		}
	}
	return nil
}

// upTo returns the events of the batch being written at or below p.
func (s *Sink) upTo(p cdc.Position) []*cdc.Event {
	n := 0
	for n < len(s.current) && s.current[n].Position().Compare(p) <= 0 {
		n++
	}
	return s.current[:n]
}

// writeApplied writes the steps in a transaction, calling each projection's
// Apply in turn.
func (s *Sink) writeApplied(ctx context.Context, events []*cdc.Event, steps []step, cp checkpointing) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer rollback(ctx, tx)
	for _, st := range steps {
		e := events[st.i]
		for _, r := range st.routes {
			if err := s.routes[r].Projection.Apply(ctx, tx, e); err != nil {
				if tx.Conn().IsClosed() {
					err = &transientError{err}
				}
				return s.projectionError(e, r, 0, err)
			}
		}
	}
	return s.commit(ctx, tx, events[steps[len(steps)-1].i].Position(), cp)
}

// isolate applies the batch again event by event, each after a savepoint,
// to find the first event that fails; it commits the events before it and
// returns a RejectedError, or commits the whole batch if none fails. With
// Batchers, every event's savepoint, statements, constraint check and
// release go in one pipelined batch: the server stops at the first failure.
func (s *Sink) isolate(ctx context.Context, events []*cdc.Event, cp checkpointing) error {
	if cp == moveCheckpoint {
		if err := s.loadFloor(ctx); err != nil {
			return err
		}
	}
	steps, batchable := s.plan(events, cp)
	if len(steps) == 0 {
		return nil // the failed attempt committed after all
	}
	err := s.search(ctx, events, steps, batchable, cp)
	if errors.Is(err, errAmbiguous) {
		err = s.search(ctx, events, steps, false, cp)
	}
	return err
}

// errAmbiguous is why a pipelined search gives way to one event at a time:
// a Batcher's callback failed while the server went on with the events
// after it, so that savepoints cannot tell which events to keep.
var errAmbiguous = errors.New("a batch callback failed")

// search is isolate in one transaction, pipelined or not.
func (s *Sink) search(ctx context.Context, events []*cdc.Event, steps []step, pipelined bool, cp checkpointing) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer rollback(ctx, tx)
	bad := -1 // index in steps of the event at fault
	if pipelined {
		bad, err = s.applyQueued(ctx, tx, events, steps)
	} else {
		for k, st := range steps {
			if err = s.applySaved(ctx, tx, events[st.i], st.routes); err != nil {
				bad = k
				break
			}
		}
	}
	switch {
	case err == nil:
		return s.commit(ctx, tx, events[steps[len(steps)-1].i].Position(), cp)
	case ctx.Err() != nil || retryable(err) || tx.Conn().IsClosed() || bad < 0:
		return err
	}
	if bad > 0 {
		if err := s.commit(ctx, tx, events[steps[bad-1].i].Position(), cp); err != nil {
			return err
		}
	}
	e := events[steps[bad].i]
	s.log.Debug("event rejected", "position", e.Position().String(), "event_id", e.ID, "err", err)
	return &cdc.RejectedError{Index: steps[bad].i, Err: err}
}

// applyQueued applies the steps, whose projections are all Batchers, in tx
// in one round trip: for each event a savepoint, its statements, a check of
// deferred constraints and a release. It returns the index in steps of the
// first event that fails and why, after rolling back to that event's
// savepoint, or -1 and nil.
func (s *Sink) applyQueued(ctx context.Context, tx pgx.Tx, events []*cdc.Event, steps []step) (int, error) {
	var b pgx.Batch
	var owners []owner
	bad, queueErr := -1, error(nil)
queue:
	for k, st := range steps {
		if len(st.routes) == 0 {
			continue
		}
		e, first := events[st.i], b.Len()
		b.Queue("SAVEPOINT " + savepoint)
		owners = append(owners, owner{step: -1})
		for _, r := range st.routes {
			n := b.Len()
			if err := s.routes[r].Projection.(Batcher).Queue(&b, e); err != nil {
				// Send the events before this one only.
				b.QueuedQueries, owners = b.QueuedQueries[:first], owners[:first]
				bad, queueErr = k, s.projectionError(e, r, 0, err)
				break queue
			}
			for q := n; q < b.Len(); q++ {
				owners = append(owners, owner{step: k, route: r, stmt: q - n + 1})
			}
		}
		b.Queue(checkConstraints)
		b.Queue(deferConstraints)
		b.Queue("RELEASE SAVEPOINT " + savepoint)
		owners = append(owners, owner{step: k, route: -1}, owner{step: -1}, owner{step: -1})
	}
	_, failed := track(&b)
	err := tx.SendBatch(ctx, &b).Close()
	if err == nil {
		return bad, queueErr
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) && !tx.Conn().IsClosed() {
		return -1, fmt.Errorf("%w: %w", errAmbiguous, err)
	}
	err = s.attribute(err, *failed, &b, owners, events, steps)
	if *failed < 0 || owners[*failed].step < 0 {
		// A savepoint, SET CONSTRAINTS or release failed, or a statement
		// could not be prepared: nothing to blame an event for.
		return -1, &transientError{err}
	}
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+savepoint); rerr != nil {
		return -1, &transientError{fmt.Errorf("%w (and rollback to savepoint: %v)", err, rerr)}
	}
	return owners[*failed].step, err
}

// applySaved applies the routes of e in tx through Apply, in a pseudo
// nested transaction (a savepoint) rolled back on failure.
func (s *Sink) applySaved(ctx context.Context, tx pgx.Tx, e *cdc.Event, routes []int) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return &transientError{err}
	}
	fail := func(perr error) error {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return &transientError{fmt.Errorf("%w (and rollback to savepoint: %v)", perr, rerr)}
		}
		return perr
	}
	for _, r := range routes {
		if err := s.routes[r].Projection.Apply(ctx, sp, e); err != nil {
			return fail(s.projectionError(e, r, 0, err))
		}
	}
	if _, err := sp.Exec(ctx, checkConstraints); err != nil {
		return fail(s.eventError(e, routes, err))
	}
	if _, err := sp.Exec(ctx, deferConstraints); err != nil {
		return fail(&transientError{err})
	}
	if err := sp.Commit(ctx); err != nil {
		return &transientError{err}
	}
	return nil
}

// commit moves the checkpoint to p in tx (unless leaveCheckpoint) and
// commits.
func (s *Sink) commit(ctx context.Context, tx pgx.Tx, p cdc.Position, cp checkpointing) error {
	if cp == leaveCheckpoint {
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}
	var applied []*cdc.Event
	if s.progress != nil {
		applied = s.upTo(p)
		if sql, args, ok := s.progress.Statement(applied); ok {
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				return fmt.Errorf("record progress: %w", err)
			}
		}
	}
	tag, err := tx.Exec(ctx, s.cpSQL, s.checkpointArgs(p)...)
	if err != nil {
		return fmt.Errorf("move checkpoint: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return errCheckpointMoved
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.setFloor(p)
	if s.progress != nil {
		s.progress.Committed(applied)
	}
	return nil
}

// track makes every query of b record its command tag and, for the first
// one that fails, its index. It keeps the callbacks Batchers set.
func track(b *pgx.Batch) (tags []pgconn.CommandTag, failed *int) {
	tags = make([]pgconn.CommandTag, b.Len())
	failed = new(int)
	*failed = -1
	for q, qq := range b.QueuedQueries {
		if fn := qq.Fn; fn != nil {
			qq.Fn = func(br pgx.BatchResults) error {
				if err := fn(br); err != nil {
					*failed = q
					return err
				}
				return nil
			}
			continue
		}
		qq.Fn = func(br pgx.BatchResults) error {
			tag, err := br.Exec()
			if err != nil {
				*failed = q
				return err
			}
			tags[q] = tag
			return nil
		}
	}
	return tags, failed
}

// attribute names the projection, statement and event of the failed query
// of b, when that is known; a statement that could not be prepared counts
// against the first event using it.
func (s *Sink) attribute(err error, failed int, b *pgx.Batch, owners []owner, events []*cdc.Event, steps []step) error {
	if failed < 0 {
		var pe pgx.ErrPreprocessingBatch
		if errors.As(err, &pe) {
			for q, qq := range b.QueuedQueries {
				if qq.SQL == pe.SQL() {
					failed = q
					break
				}
			}
		}
	}
	if failed < 0 || failed >= len(owners) || owners[failed].step < 0 {
		return err
	}
	o := owners[failed]
	st := steps[o.step]
	if o.route < 0 {
		return s.eventError(events[st.i], st.routes, err)
	}
	return s.projectionError(events[st.i], o.route, o.stmt, err)
}

// eventError describes a failure of the projections of e that no one
// statement is known to have caused (a deferred constraint checked at the
// end of the event): it names every route of the event.
func (s *Sink) eventError(e *cdc.Event, routes []int, err error) error {
	names := make([]string, len(routes))
	for i, r := range routes {
		names[i] = s.routes[r].Name
	}
	return &ProjectionError{
		Projection: strings.Join(names, ", "),
		EventID:    e.ID, Type: e.Type, Position: e.Position(), Err: err,
	}
}

// projectionError describes the failure of route r for e.
func (s *Sink) projectionError(e *cdc.Event, r, stmt int, err error) error {
	var se *statementError
	if stmt == 0 && errors.As(err, &se) {
		stmt, err = se.n, se.err
	}
	return &ProjectionError{
		Projection: s.routes[r].Name, Statement: stmt,
		EventID: e.ID, Type: e.Type, Position: e.Position(), Err: err,
	}
}

// rollback rolls tx back, if it is still open, even when ctx has ended.
func rollback(ctx context.Context, tx pgx.Tx) {
	if tx == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = tx.Rollback(ctx)
}
