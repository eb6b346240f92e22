package poller

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Marten's defaults (JasperFx.Events DaemonSettings and AsyncOptions).
const (
	// DefaultStaleThreshold is DaemonSettings.StaleSequenceThreshold.
	DefaultStaleThreshold = 3 * time.Second
	// DefaultFastPoll is DaemonSettings.FastPollingTime.
	DefaultFastPoll = 250 * time.Millisecond
	// DefaultSlowPoll is DaemonSettings.SlowPollingTime.
	DefaultSlowPoll = time.Second
	// DefaultPageSize is AsyncOptions.BatchSize.
	DefaultPageSize = 500
	// DefaultSchema is Marten's StoreOptions.DatabaseSchemaName.
	DefaultSchema = "public"
)

// sequenceSlack is how far below the highest reserved seq_id the mark may
// jump when nothing above a stale hole has committed (Marten GH-2681 and
// GH-3865: HighestSequence - 32).
const sequenceSlack = 32

// Querier runs queries. *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it; Run
// needs one that is safe for its goroutine (a pool or a dedicated
// connection).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Options configure [Run]. The zero value polls schema public with Marten's
// defaults.
type Options struct {
	// Schema is the schema of mt_events and mt_events_sequence; empty means
	// "public".
	Schema string
	// StaleThreshold is how long the mark may stay under a gap before it
	// skips it (StaleSequenceThreshold); zero means 3 s.
	StaleThreshold time.Duration
	// FastPoll is the wait after a poll that moved the mark or skipped a gap
	// (FastPollingTime); zero means 250 ms.
	FastPoll time.Duration
	// SlowPoll is the wait after a poll that found the mark caught up, or
	// stale within the threshold (SlowPollingTime); zero means 1 s.
	SlowPoll time.Duration
	// PageSize is how many events one read fetches (BatchSize); zero means
	// 500.
	PageSize int
	// From is where the mark and the delivery start: Run delivers events
	// with seq_id > From. Zero delivers everything.
	From int64
	// HoldLiveGaps selects the gap skipping of Marten 9.16.1 and later
	// (ProjectionOptions.UseTransactionEvidenceForGapSkipping, their
	// default): a gap stale past the threshold is skipped only when no
	// transaction that could fill it is alive, and then up to the highest
	// seq_id committed, at most the highest reserved when the gap was first
	// seen. Off (the zero value) is the wall-clock skipping of Marten 8.x.
	HoldLiveGaps bool
	// RecordMark, when set, upserts the mark in mt_event_progression (row
	// 'HighWaterMark', with <schema>.mt_mark_event_progression) each time
	// it moves, as Marten does. Off by default so that the poller writes
	// nothing to the store it measures.
	RecordMark bool
	// OnPoll, when set, is called after each poll, from Run's goroutine,
	// before the events up to the new mark are delivered.
	OnPoll func(Poll)
}

// withDefaults returns o with its zero values replaced by Marten's.
func (o Options) withDefaults() Options {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.StaleThreshold <= 0 {
		o.StaleThreshold = DefaultStaleThreshold
	}
	if o.FastPoll <= 0 {
		o.FastPoll = DefaultFastPoll
	}
	if o.SlowPoll <= 0 {
		o.SlowPoll = DefaultSlowPoll
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	return o
}

// Status is how a poll found the mark (Marten's HighWaterStatus).
type Status int

// The statuses of a poll.
const (
	// CaughtUp: the mark is at the highest reserved seq_id; next poll after
	// SlowPoll.
	CaughtUp Status = iota
	// Changed: the mark moved; next poll after FastPoll.
	Changed
	// Stale: the mark did not move and seq_ids above it are reserved: a
	// gap. Within the threshold the next poll comes after SlowPoll; past it
	// the mark skips the gap and the next poll comes after FastPoll.
	Stale
)

// String returns the status in snake case.
func (s Status) String() string {
	switch s {
	case CaughtUp:
		return "caught_up"
	case Changed:
		return "changed"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Poll is what one poll found, for [Options.OnPoll].
type Poll struct {
	// Status classifies the poll.
	Status Status
	// Mark is the high-water mark after the poll (after a skip, if the poll
	// skipped a gap).
	Mark int64
	// Highest is the highest seq_id reserved (last_value of
	// mt_events_sequence), committed or not.
	Highest int64
	// Skipped tells that the poll moved the mark over a stale gap.
	Skipped bool
	// At is the server's transaction timestamp of the poll.
	At time.Time
}

// Delivery is one event handed over by [Run].
type Delivery struct {
	// ID is the event id (mt_events.id) as text.
	ID string
	// SeqID is the event's mt_events.seq_id.
	SeqID int64
	// At is when the poller handed the event over (local clock).
	At time.Time
}

// Stats is what [Run] did.
type Stats struct {
	// Delivered counts the events delivered.
	Delivered int
	// Polls counts the high-water detections: one per poll, and one more
	// for each safe-zone detection (a poll stale past the threshold).
	Polls int
	// SkippedGaps counts the times the mark jumped over a stale gap.
	SkippedGaps int
	// Skipped lists, ascending, the seq_ids the mark passed over with no
	// event: rolled-back seq_ids and those of transactions that had not
	// committed; see [Lost].
	Skipped []int64
}

// Run polls the Marten store in o.Schema as Marten's async daemon does (see
// the package documentation) and calls deliver for each event below the
// high-water mark, in seq_id order, never twice. It returns when ctx ends,
// with a nil error, or on the first database error. The Stats are valid in
// both cases.
func Run(ctx context.Context, db Querier, o Options, deliver func(Delivery)) (Stats, error) {
	o = o.withDefaults()
	r := &runner{db: db, o: o, deliver: deliver, mark: o.From, delivered: o.From}
	r.sql = newQueries(pgx.Identifier{o.Schema}.Sanitize())
	err := r.run(ctx)
	if err != nil && ctx.Err() != nil {
		err = nil
	}
	return r.stats, err
}

// runner is the state of one Run: HighWaterAgent and HighWaterDetector in
// one loop.
type runner struct {
	db      Querier
	o       Options
	sql     queries
	deliver func(Delivery)

	mark      int64     // the high-water mark (Marten's LastMark)
	markAt    time.Time // server time the mark last moved (Marten's mt_event_progression.last_updated)
	current   time.Time // server time of the last poll that moved the mark or found it caught up (_current.Timestamp)
	delivered int64     // the highest seq_id delivered or passed over
	stuck     *stuckGap // with HoldLiveGaps: the gap the mark is under
	stats     Stats
}

// stuckGap is Marten 9's StuckGapObservation: when the mark was first seen
// under a gap, and what the sequence and the snapshot were then.
type stuckGap struct {
	mark    int64
	since   time.Time // server time of the first sighting
	xmax    int64     // pg_snapshot_xmax of that poll
	ceiling int64     // the highest reserved seq_id then
}

// run is the HighWaterAgent loop.
func (r *runner) run(ctx context.Context) error {
	// StartAsync: one detection, then FastPollingTime.
	s, err := r.detect(ctx, false)
	if err != nil {
		return err
	}
	r.current = s.at
	if err := r.advance(ctx, s, Changed); err != nil {
		return err
	}
	wait := r.o.FastPoll
	for {
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		s, err := r.detect(ctx, false)
		if err != nil {
			return err
		}
		status := s.status(r.mark)
		switch status {
		case CaughtUp:
			wait = r.o.SlowPoll
			r.current = s.at
		case Changed:
			wait = r.o.FastPoll
			r.current = s.at
		case Stale:
			// Give the gap StaleThreshold to fill, counted from the last
			// poll that moved the mark or found it caught up.
			if r.current.Add(r.o.StaleThreshold).After(s.at) {
				wait = r.o.SlowPoll
				break
			}
			if s, err = r.detect(ctx, true); err != nil {
				return err
			}
			wait = r.o.FastPoll
			if s.mark > r.mark {
				r.current = s.at
			}
		}
		if err := r.advance(ctx, s, status); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// statistics is one reading of the store: Marten's HighWaterStatistics
// with the gap query's answer.
type statistics struct {
	highest int64     // last_value of mt_events_sequence
	at      time.Time // transaction_timestamp()
	xmax    int64     // pg_snapshot_xmax(pg_current_snapshot())
	maxSeq  *int64    // max(seq_id) >= the start of the gap query
	skipped bool      // the mark jumped over a stale gap
	mark    int64     // the mark the reading supports
}

// status is Marten's HighWaterStatistics.InterpretStatus against the mark
// before the poll.
func (s statistics) status(previous int64) Status {
	switch {
	case s.highest == 1 && s.mark == 0, s.mark == s.highest:
		return CaughtUp
	case s.mark > previous:
		return Changed
	}
	return Stale
}

// gapReading is the answer of the gap query from a start, all from one
// snapshot; nil fields are SQL NULL.
type gapReading struct {
	start      int64
	firstAfter *int64 // min(seq_id) > start
	gapEdge    *int64 // first seq_id >= start followed by a hole
	maxSeq     *int64 // max(seq_id) >= start
}

// nextMark is the mark a gap reading supports. The normal path (hold) holds
// at start before a leading gap (Marten #4964); the safe-zone path, which
// runs from mark+1, does not, and so jumps over the hole above the mark to
// the next gap, or to the last committed seq_id. ok is false when the
// reading has no row at all from start.
func (g gapReading) nextMark(hold bool) (mark int64, ok bool) {
	switch {
	case hold && g.firstAfter != nil && *g.firstAfter > g.start+1:
		return g.start, true
	case g.gapEdge != nil:
		return *g.gapEdge, true
	case g.maxSeq != nil:
		return *g.maxSeq, true
	}
	return 0, false
}

// detect is HighWaterDetector.Detect (safeZone false) or DetectInSafeZone
// (safeZone true): the statistics and the mark they support, never below
// the current one.
func (r *runner) detect(ctx context.Context, safeZone bool) (statistics, error) {
	r.stats.Polls++
	start := r.mark
	if safeZone && !r.o.HoldLiveGaps {
		start++ // Marten 8: the safe zone walks from mark+1, over the hole
	}
	var (
		s statistics
		g = gapReading{start: start}
	)
	err := r.db.QueryRow(ctx, r.sql.detect, start).Scan(&s.highest, &s.at, &s.xmax, &g.firstAfter, &g.gapEdge, &g.maxSeq)
	if err != nil {
		return s, fmt.Errorf("detect high-water mark from %d: %w", start, err)
	}
	s.mark, s.maxSeq = r.mark, g.maxSeq
	if s.highest == r.mark || s.highest == 0 {
		r.stuck = nil
		return s, nil // Marten does not run the gap query then
	}
	if r.o.HoldLiveGaps {
		return r.detectHolding(ctx, s, g, safeZone)
	}
	if m, ok := g.nextMark(!safeZone); ok && m > s.mark {
		s.mark, s.skipped = m, safeZone
	} else if safeZone && !r.markAt.IsZero() && s.at.Sub(r.markAt) > r.o.StaleThreshold && s.highest-sequenceSlack > r.mark {
		// GH-2681: nothing committed above the hole; move on, but stay
		// clear of the sequence's last reservations (GH-3865).
		s.mark, s.skipped = s.highest-sequenceSlack, true
	}
	return s, nil
}

// detectHolding is the rest of detect with HoldLiveGaps: Marten 9's
// HighWaterDetector.Detect and DetectInSafeZone with transaction evidence.
func (r *runner) detectHolding(ctx context.Context, s statistics, g gapReading, safeZone bool) (statistics, error) {
	// The safe zone too first tries the normal, holding walk.
	if m, ok := g.nextMark(true); ok && m > s.mark {
		s.mark = m
		r.stuck = nil
		return s, nil
	}
	if s.mark == 0 && s.highest <= 1 {
		r.stuck = nil // a pristine sequence reads 1
		return s, nil
	}
	// The mark is under a gap: start or go on with its clock.
	if r.stuck == nil || r.stuck.mark != s.mark {
		r.stuck = &stuckGap{mark: s.mark, since: s.at, xmax: s.xmax, ceiling: s.highest}
	}
	if !safeZone || s.at.Sub(r.stuck.since) < r.o.StaleThreshold {
		return s, nil
	}
	var live int64
	if err := r.db.QueryRow(ctx, r.sql.live, r.stuck.since, r.o.Schema, r.stuck.xmax).Scan(&live); err != nil {
		return s, fmt.Errorf("look for transactions that may fill the gap above %d: %w", s.mark, err)
	}
	if live > 0 {
		return s, nil // hold
	}
	// Proven dead: skip the whole span, up to the highest committed seq_id
	// but not past the reservations seen with the gap.
	target := r.stuck.ceiling
	if s.maxSeq != nil && *s.maxSeq > s.mark {
		target = min(*s.maxSeq, target)
	}
	if target > s.mark {
		s.mark, s.skipped = target, true
		r.stuck = nil
	}
	return s, nil
}

// advance takes the mark of s, records it if asked, reports the poll and
// delivers the events up to the mark.
func (r *runner) advance(ctx context.Context, s statistics, status Status) error {
	moved := s.mark > r.mark
	if moved {
		r.mark, r.markAt = s.mark, s.at
		if s.skipped {
			r.stats.SkippedGaps++
		}
		if r.o.RecordMark {
			if _, err := r.db.Exec(ctx, r.sql.record, r.mark); err != nil {
				return fmt.Errorf("record high-water mark %d: %w", r.mark, err)
			}
		}
	} else if r.markAt.IsZero() {
		r.markAt = s.at
	}
	if r.o.OnPoll != nil {
		r.o.OnPoll(Poll{Status: status, Mark: r.mark, Highest: s.highest, Skipped: s.skipped && moved, At: s.at})
	}
	return r.deliverUpTo(ctx, r.mark)
}

// deliverUpTo reads the events with seq_id in (delivered, mark] in pages,
// in seq_id order, and delivers them; the seq_ids of the range that have
// no event go to Stats.Skipped.
func (r *runner) deliverUpTo(ctx context.Context, mark int64) error {
	for r.delivered < mark {
		rows, err := r.db.Query(ctx, r.sql.page, r.delivered, mark, r.o.PageSize)
		if err != nil {
			return fmt.Errorf("read events after %d up to %d: %w", r.delivered, mark, err)
		}
		var (
			seq int64
			id  string
			n   int
		)
		_, err = pgx.ForEachRow(rows, []any{&seq, &id}, func() error {
			n++
			r.skip(r.delivered+1, seq-1)
			r.delivered = seq
			r.stats.Delivered++
			r.deliver(Delivery{ID: id, SeqID: seq, At: time.Now()})
			return nil
		})
		if err != nil {
			return fmt.Errorf("read events after %d up to %d: %w", r.delivered, mark, err)
		}
		if n < r.o.PageSize {
			// The range holds no more events: the rest was skipped.
			r.skip(r.delivered+1, mark)
			r.delivered = mark
		}
	}
	return nil
}

// skip records the seq_ids from..to (inclusive) as skipped.
func (r *runner) skip(from, to int64) {
	for s := from; s <= to; s++ {
		r.stats.Skipped = append(r.stats.Skipped, s)
	}
}

// Lost returns, ascending, the seq_ids of skipped that are in
// <schema>.mt_events now: events whose transaction committed after the
// mark skipped their seq_id, which the poller therefore never delivered.
// The other skipped seq_ids were rolled back (or are still in flight). An
// empty schema means "public".
func Lost(ctx context.Context, db Querier, schema string, skipped []int64) ([]int64, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if len(skipped) == 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, newQueries(pgx.Identifier{schema}.Sanitize()).lost, skipped)
	if err != nil {
		return nil, fmt.Errorf("find skipped events: %w", err)
	}
	lost, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("find skipped events: %w", err)
	}
	return lost, nil
}
