package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

// Defaults of Job.
const (
	DefaultPageSize = 1000 // events read per page
	DefaultInFlight = 4    // pages handed to the sink and not yet durable
)

// ErrSinkStopped is returned by a backfill whose sink stopped on an event
// its target rejected (on_error: stop): fix the cause and restart cdc; the
// backfill resumes just before the event.
var ErrSinkStopped = errors.New("the sink stopped on a rejected event (on_error: stop)")

// Job fills one sink from mt_events and hands it back to the live stream:
// a requested backfill, or one resumed after a restart (see the package
// documentation).
type Job struct {
	Record   *Record
	Store    *Store
	Table    *Table             // mt_events as the backfill reads it
	Pool     *pgxpool.Pool      // the source database, for the snapshot's reads
	DSN      string             // the source database, for the snapshot's slot
	Slot     replication.Config // settings of the snapshot slot's connection
	Sink     *pipeline.Backfill
	Instance string // written into the record
	PageSize int    // default DefaultPageSize
	InFlight int    // default DefaultInFlight
	// Progress, when set, is told how many events are durable in the sink
	// and how many there are to deliver, after every page.
	Progress func(done, total int64)
	Log      *slog.Logger
}

// Run runs the backfill until the sink is back on the live stream, or ctx
// ends, or it fails; the record then says where it stopped, and it
// resumes from there at its next Run.
func (j *Job) Run(ctx context.Context) (err error) {
	r := j.Record
	if j.PageSize <= 0 {
		j.PageSize = DefaultPageSize
	}
	if j.InFlight <= 0 {
		j.InFlight = DefaultInFlight
	}
	if j.Log == nil {
		j.Log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err == nil {
			return
		}
		// Whatever the sink has not written of this run is dropped: the
		// next run (here, or on the instance that holds the slot then)
		// feeds it again from what is durable.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = j.Sink.Abort(actx)
		if ctx.Err() == nil && !errors.Is(err, pipeline.ErrAbandoned) {
			j.Store.fail(actx, r, err)
		}
	}()
	if err := j.Sink.Hold(ctx); err != nil {
		return fmt.Errorf("hold sink %s: %w", r.Sink, err)
	}
	slot, err := replication.CreateSnapshotSlot(ctx, j.DSN, j.Slot, tempSlotName(), true)
	if err != nil {
		return err
	}
	defer slot.Close()
	conn, err := j.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to read mt_events: %w", err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin the snapshot's transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+slot.Snapshot+"'"); err != nil {
		return fmt.Errorf("use the snapshot of slot %s: %w", slot.Name, err)
	}

	resumed := len(r.Segments) > 0
	remaining, err := j.Table.Count(ctx, tx, r.Scope, r.Cursor)
	if err != nil {
		return err
	}
	r.Total = max(r.Total, r.NextOrdinal+remaining)
	if resumed {
		covered := Key{SeqID: math.MinInt64}
		if r.Cursor != nil {
			covered = *r.Cursor
		}
		r.Segments[len(r.Segments)-1].Covered = &covered
		r.Segments = append(r.Segments, Segment{Start: slot.Point})
		if err := j.Sink.Resume(ctx); err != nil {
			return err
		}
	} else {
		var scope func(*cdc.Event) bool
		if !r.Scope.all() {
			scope = r.Scope.Covers
		}
		if scope != nil {
			j.Log.Info("backfill: the sink takes the live stream up to the hand-off point first", "lsn", slot.Point.String())
		}
		if err := j.Sink.Begin(ctx, slot.Point, scope); err != nil {
			return fmt.Errorf("hand sink %s over to the backfill: %w", r.Sink, err)
		}
		r.Segments = []Segment{{Start: slot.Point}}
	}
	if err := j.Store.begin(ctx, r, j.Instance); err != nil {
		return err
	}
	j.Log.Info("backfill: reading mt_events", "lsn", r.Base().String(), "scope", r.Scope.String(),
		"events", r.Total, "segment", len(r.Segments))

	p := &progress{job: j, started: time.Now(), start: j.done()}
	if resumed {
		if err := j.replay(ctx, tx, p); err != nil {
			return err
		}
	}
	for {
		rows, err := j.Table.Page(ctx, tx, r.Scope, r.Cursor, j.PageSize)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		page := Page{FirstOrdinal: r.NextOrdinal, After: r.Cursor, Last: rows[len(rows)-1].Key}
		var events []*cdc.Event
		for _, row := range rows {
			if row.Event == nil {
				continue
			}
			if r.NextOrdinal >= math.MaxUint32 {
				return fmt.Errorf("backfill of %s/%s: more than %d events: narrow it with --from or --tenant", r.Pipeline, r.Sink, uint32(math.MaxUint32-1))
			}
			e := row.Event
			e.LSN, e.Index = r.Base(), uint32(r.NextOrdinal)
			r.NextOrdinal++
			page.IDs = append(page.IDs, e.ID)
			events = append(events, e)
		}
		last := page.Last
		r.Cursor = &last
		if err := j.Store.recordPage(ctx, r, page); err != nil {
			return err
		}
		if err := j.feed(ctx, events, p); err != nil {
			return err
		}
		if len(rows) < j.PageSize {
			break
		}
	}
	if err := j.wait(ctx, r.NextOrdinal, p); err != nil {
		return err
	}
	if err := j.Sink.Finish(ctx, r.Handoff(j.Table.TenantKeyed())); err != nil {
		return fmt.Errorf("hand sink %s back to the live stream: %w", r.Sink, err)
	}
	r.Done = r.NextOrdinal
	if j.Progress != nil {
		j.Progress(r.Done, r.Done)
	}
	if err := j.Store.finish(context.WithoutCancel(ctx), r); err != nil {
		return err
	}
	j.Log.Info("backfill done: the sink takes the live stream again", "events", r.Done,
		"duration", time.Since(p.started).Round(time.Millisecond))
	return nil
}

// replay hands the sink again the saved pages it had not made durable,
// read by id in the new snapshot: their events keep their ordinals.
func (j *Job) replay(ctx context.Context, tx pgx.Tx, p *progress) error {
	r := j.Record
	done := j.done()
	pages, err := j.Store.pendingPages(ctx, r, done)
	if err != nil {
		return err
	}
	for _, page := range pages {
		rows, err := j.Table.ByIDs(ctx, tx, page.IDs, page.After, page.Last)
		if err != nil {
			return err
		}
		byID := make(map[string]*cdc.Event, len(rows))
		for _, row := range rows {
			if row.Event != nil {
				byID[row.Event.ID] = row.Event
			}
		}
		var events []*cdc.Event
		for i, id := range page.IDs {
			ordinal := page.FirstOrdinal + int64(i)
			e := byID[id]
			if ordinal < done || e == nil {
				continue
			}
			e.LSN, e.Index = r.Base(), uint32(ordinal)
			events = append(events, e)
		}
		if err := j.feed(ctx, events, p); err != nil {
			return err
		}
	}
	return nil
}

// feed hands events to the sink, then waits until at most InFlight pages
// are not durable.
func (j *Job) feed(ctx context.Context, events []*cdc.Event, p *progress) error {
	if len(events) > 0 {
		if err := j.Sink.Feed(ctx, events); err != nil {
			return err
		}
	}
	return j.wait(ctx, j.Record.NextOrdinal-int64(j.InFlight*j.PageSize), p)
}

// wait waits until the events before ordinal are durable in the sink,
// recording progress meanwhile.
func (j *Job) wait(ctx context.Context, ordinal int64, p *progress) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		done := j.done()
		if err := p.update(ctx, done); err != nil {
			return err
		}
		if done >= ordinal {
			return nil
		}
		if j.Sink.Stopped() {
			return fmt.Errorf("backfill of %s/%s: %w", j.Record.Pipeline, j.Record.Sink, ErrSinkStopped)
		}
		if j.Sink.Abandoned() {
			return pipeline.ErrAbandoned
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// done returns how many of the backfill's events are durable in the sink:
// the ordinal after its checkpoint's.
func (j *Job) done() int64 {
	pos := j.Sink.Durable()
	switch base := j.Record.Base(); {
	case len(j.Record.Segments) == 0 || pos.LSN < base:
		return 0
	case pos.LSN > base || pos.Index == cdc.EndOfTx:
		return j.Record.NextOrdinal
	default:
		return int64(pos.Index) + 1
	}
}

// progress records how far the sink got, at most once a second.
type progress struct {
	job     *Job
	started time.Time
	start   int64     // events durable when this run started
	saved   time.Time // last record
}

func (p *progress) update(ctx context.Context, done int64) error {
	r := p.job.Record
	if done == r.Done && !p.saved.IsZero() {
		return nil
	}
	r.Done = done
	if p.job.Progress != nil {
		p.job.Progress(done, r.Total)
	}
	if time.Since(p.saved) < time.Second {
		return nil
	}
	if d := time.Since(p.started).Seconds(); d > 0 {
		r.Rate = float64(done-p.start) / d
	}
	p.saved = time.Now()
	return p.job.Store.progress(ctx, r)
}

// tempSlotName is a name for a backfill's temporary slot, unique enough
// among the slots of a cluster.
func tempSlotName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "cdc_backfill_" + hex.EncodeToString(b[:])
}
