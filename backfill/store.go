package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgtable"
	"github.com/martencdc/cdc/pipeline"
)

// Table names, in the pipeline's checkpoint schema.
const (
	TableName     = "cdc_backfills"
	PageTableName = "cdc_backfill_pages"
)

// State is where a backfill is.
type State string

// States of a backfill.
const (
	Requested State = "requested" // waiting for the instance that holds the slot
	Running   State = "running"   // the sink is held and fed; resumed after a restart
	Done      State = "done"      // the sink is back on the live stream
)

// ErrInProgress is returned when asking for a backfill of a sink that has
// one running.
var ErrInProgress = errors.New("a backfill of this sink is in progress")

// Record is a backfill as cdc_backfills keeps it.
type Record struct {
	Pipeline, Sink string
	State          State
	Scope          Scope
	Segments       []Segment // the snapshots read, in order; empty until it begins
	Cursor         *Key      // the key of the last row recorded; nil before the first
	NextOrdinal    int64     // the ordinal of the next event read
	Done, Total    int64     // events durable in the sink; events to deliver (so far)
	Rate           float64   // events per second lately
	RequestedAt    time.Time
	StartedAt      time.Time
	FinishedAt     time.Time
	UpdatedAt      time.Time
	Instance       string // the instance that runs it
	Error          string // the last failure, while it is retried
}

// Segment is one snapshot of a backfill.
type Segment struct {
	Start   cdc.LSN `json:"start"`             // its hand-off LSN
	Covered *Key    `json:"covered,omitempty"` // the cursor when the next one started; nil for the last
}

// segmentJSON is Segment as stored.
type segmentJSON struct {
	Start   string `json:"start"`
	Covered string `json:"covered,omitempty"`
}

// Handoff returns the filter the sink needs on the live stream once the
// backfill is done (see pipeline.Handoff). tenantKeyed says whether keys
// carry the tenant.
func (r *Record) Handoff(tenantKeyed bool) *pipeline.Handoff {
	h := &pipeline.Handoff{}
	if !r.Scope.all() {
		scope := r.Scope
		h.Scope = scope.Covers
	}
	for _, s := range r.Segments {
		seg := pipeline.Segment{Start: s.Start}
		if s.Covered != nil {
			covered := *s.Covered
			seg.Covered = func(e *cdc.Event) bool { return keyOf(e, tenantKeyed).Compare(covered) <= 0 }
		}
		h.Segments = append(h.Segments, seg)
	}
	return h
}

// Base returns the LSN of the backfill's positions: just below the first
// segment's hand-off LSN.
func (r *Record) Base() cdc.LSN {
	if len(r.Segments) == 0 {
		return 0
	}
	return r.Segments[0].Start - 1
}

// keyOf returns the key of an event.
func keyOf(e *cdc.Event, tenantKeyed bool) Key {
	k := Key{SeqID: e.SeqID}
	if tenantKeyed {
		k.Tenant = e.TenantID
	}
	return k
}

// all reports whether the scope covers every event.
func (s Scope) all() bool {
	return s.FromSeq <= 0 && s.FromTime.IsZero() && len(s.Tenants) == 0
}

// Page is a page of a backfill as saved before the sink gets it: the ids
// of its events in key order, and its key range (After, Last].
type Page struct {
	FirstOrdinal int64
	After        *Key
	Last         Key
	IDs          []string
}

// Store keeps backfills in the checkpoint database. Safe for concurrent
// use.
type Store struct {
	pool          *pgxpool.Pool
	name, pages   pgx.Identifier
	table, ptable string
}

// NewStore returns the store of schema; it does no I/O: call Init first.
func NewStore(pool *pgxpool.Pool, schema string) *Store {
	if schema == "" {
		schema = "public"
	}
	name, pages := pgx.Identifier{schema, TableName}, pgx.Identifier{schema, PageTableName}
	return &Store{pool: pool, name: name, pages: pages, table: name.Sanitize(), ptable: pages.Sanitize()}
}

// Init creates the tables when they are missing.
func (s *Store) Init(ctx context.Context) error {
	if _, err := pgtable.Ensure(ctx, s.pool, s.name, `CREATE TABLE IF NOT EXISTS `+s.table+` (
    pipeline     text        NOT NULL,
    sink         text        NOT NULL,
    state        text        NOT NULL,            -- requested, running, done
    from_seq     bigint      NOT NULL DEFAULT 0,
    from_time    timestamptz NULL,
    tenants      text[]      NOT NULL DEFAULT '{}',
    segments     jsonb       NOT NULL DEFAULT '[]', -- [{"start": "0/16B3748", "covered": "42"}]
    cursor       text        NULL,                -- key of the last row recorded
    next_ordinal bigint      NOT NULL DEFAULT 0,
    done_events  bigint      NOT NULL DEFAULT 0,
    total_events bigint      NOT NULL DEFAULT 0,
    rate         double precision NOT NULL DEFAULT 0,
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz NULL,
    finished_at  timestamptz NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    instance     text        NOT NULL DEFAULT '',
    error        text        NOT NULL DEFAULT '',
    PRIMARY KEY (pipeline, sink)
)`); err != nil {
		return fmt.Errorf("backfill table: %w", err)
	}
	if _, err := pgtable.Ensure(ctx, s.pool, s.pages, `CREATE TABLE IF NOT EXISTS `+s.ptable+` (
    pipeline      text   NOT NULL,
    sink          text   NOT NULL,
    first_ordinal bigint NOT NULL,
    after_key     text   NULL,
    last_key      text   NOT NULL,
    ids           text[] NOT NULL,
    PRIMARY KEY (pipeline, sink, first_ordinal)
)`); err != nil {
		return fmt.Errorf("backfill page table: %w", err)
	}
	return nil
}

// exists reports whether the backfill table exists (cdc status reads
// without creating anything).
func (s *Store) exists(ctx context.Context) (bool, error) {
	return pgtable.Exists(ctx, s.pool, s.name)
}

// Request asks for a backfill of sink in scope; it replaces a requested or
// finished one, and fails with ErrInProgress when one is running.
func (s *Store) Request(ctx context.Context, pipelineName, sink string, scope Scope) error {
	if err := scope.Validate(); err != nil {
		return err
	}
	var fromTime *time.Time
	if !scope.FromTime.IsZero() {
		t := scope.FromTime
		fromTime = &t
	}
	tenants := scope.Tenants
	if tenants == nil {
		tenants = []string{}
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` AS b (pipeline, sink, state, from_seq, from_time, tenants)
VALUES ($1, $2, 'requested', $3, $4, $5)
ON CONFLICT (pipeline, sink) DO UPDATE SET
    state = 'requested', from_seq = excluded.from_seq, from_time = excluded.from_time, tenants = excluded.tenants,
    segments = '[]', cursor = NULL, next_ordinal = 0, done_events = 0, total_events = 0, rate = 0,
    requested_at = now(), started_at = NULL, finished_at = NULL, updated_at = now(), instance = '', error = ''
WHERE b.state <> 'running'`, pipelineName, sink, scope.FromSeq, fromTime, tenants)
	if err != nil {
		return fmt.Errorf("request a backfill of %s/%s: %w", pipelineName, sink, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("request a backfill of %s/%s: %w", pipelineName, sink, ErrInProgress)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.ptable+` WHERE pipeline = $1 AND sink = $2`, pipelineName, sink); err != nil {
		return fmt.Errorf("request a backfill of %s/%s: %w", pipelineName, sink, err)
	}
	return nil
}

// RequestIfNone asks for a backfill of sink from the beginning unless it
// has one, in any state: source.start and a sink's start ask once.
func (s *Store) RequestIfNone(ctx context.Context, pipelineName, sink string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (pipeline, sink, state) VALUES ($1, $2, 'requested')
ON CONFLICT (pipeline, sink) DO NOTHING`, pipelineName, sink)
	if err != nil {
		return fmt.Errorf("request a backfill of %s/%s: %w", pipelineName, sink, err)
	}
	return nil
}

// RequestForNewSlot asks for a backfill of sink from the beginning when its
// replication slot is about to be created with source.start: beginning: a
// finished backfill (of an earlier slot, dropped since) is requested again;
// a requested or running one is kept (a crash before the slot was created).
func (s *Store) RequestForNewSlot(ctx context.Context, pipelineName, sink string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` AS b (pipeline, sink, state) VALUES ($1, $2, 'requested')
ON CONFLICT (pipeline, sink) DO UPDATE SET
    state = 'requested', from_seq = 0, from_time = NULL, tenants = '{}',
    segments = '[]', cursor = NULL, next_ordinal = 0, done_events = 0, total_events = 0, rate = 0,
    requested_at = now(), started_at = NULL, finished_at = NULL, updated_at = now(), instance = '', error = ''
WHERE b.state = 'done'`, pipelineName, sink)
	if err != nil {
		return fmt.Errorf("request a backfill of %s/%s: %w", pipelineName, sink, err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.ptable+` p USING `+s.table+` b
WHERE p.pipeline = $1 AND p.sink = $2 AND b.pipeline = p.pipeline AND b.sink = p.sink AND b.state = 'requested'`, pipelineName, sink); err != nil {
		return fmt.Errorf("request a backfill of %s/%s: %w", pipelineName, sink, err)
	}
	return nil
}

// Delete removes every backfill of a pipeline, with its pages (cdc
// teardown --checkpoints), and returns how many it removed. A missing
// table is none.
func (s *Store) Delete(ctx context.Context, pipelineName string) (int64, error) {
	if ok, err := s.exists(ctx); err != nil || !ok {
		if err != nil {
			return 0, fmt.Errorf("delete the backfills of pipeline %s: %w", pipelineName, err)
		}
		return 0, nil
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.ptable+` WHERE pipeline = $1`, pipelineName); err != nil {
		return 0, fmt.Errorf("delete the backfills of pipeline %s: %w", pipelineName, err)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE pipeline = $1`, pipelineName)
	if err != nil {
		return 0, fmt.Errorf("delete the backfills of pipeline %s: %w", pipelineName, err)
	}
	return tag.RowsAffected(), nil
}

// Load returns the backfills of a pipeline by sink. A missing table gives
// none.
func (s *Store) Load(ctx context.Context, pipelineName string) (map[string]*Record, error) {
	if ok, err := s.exists(ctx); err != nil || !ok {
		return map[string]*Record{}, err
	}
	rows, err := s.pool.Query(ctx, `SELECT sink, state, from_seq, from_time, tenants, segments::text, cursor, next_ordinal,
    done_events, total_events, rate, requested_at, started_at, finished_at, updated_at, instance, error
FROM `+s.table+` WHERE pipeline = $1`, pipelineName)
	if err != nil {
		return nil, fmt.Errorf("load backfills of pipeline %s: %w", pipelineName, err)
	}
	defer rows.Close()
	out := map[string]*Record{}
	for rows.Next() {
		r := &Record{Pipeline: pipelineName}
		var (
			fromTime, started, finished *time.Time
			segments                    string
			cursor                      *string
		)
		if err := rows.Scan(&r.Sink, &r.State, &r.Scope.FromSeq, &fromTime, &r.Scope.Tenants, &segments, &cursor, &r.NextOrdinal,
			&r.Done, &r.Total, &r.Rate, &r.RequestedAt, &started, &finished, &r.UpdatedAt, &r.Instance, &r.Error); err != nil {
			return nil, fmt.Errorf("load backfills of pipeline %s: %w", pipelineName, err)
		}
		if fromTime != nil {
			r.Scope.FromTime = *fromTime
		}
		if started != nil {
			r.StartedAt = *started
		}
		if finished != nil {
			r.FinishedAt = *finished
		}
		if len(r.Scope.Tenants) == 0 {
			r.Scope.Tenants = nil
		}
		if cursor != nil {
			k, err := ParseKey(*cursor)
			if err != nil {
				return nil, fmt.Errorf("load backfill of %s/%s: %w", pipelineName, r.Sink, err)
			}
			r.Cursor = &k
		}
		if r.Segments, err = decodeSegments(segments); err != nil {
			return nil, fmt.Errorf("load backfill of %s/%s: %w", pipelineName, r.Sink, err)
		}
		out[r.Sink] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load backfills of pipeline %s: %w", pipelineName, err)
	}
	return out, nil
}

func decodeSegments(s string) ([]Segment, error) {
	var raw []segmentJSON
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("segments: %w", err)
	}
	out := make([]Segment, len(raw))
	for i, r := range raw {
		lsn, err := cdc.ParseLSN(r.Start)
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		out[i].Start = lsn
		if r.Covered != "" {
			k, err := ParseKey(r.Covered)
			if err != nil {
				return nil, fmt.Errorf("segment %d: %w", i, err)
			}
			out[i].Covered = &k
		}
	}
	return out, nil
}

func encodeSegments(segs []Segment) string {
	raw := make([]segmentJSON, len(segs))
	for i, s := range segs {
		raw[i].Start = s.Start.String()
		if s.Covered != nil {
			raw[i].Covered = s.Covered.String()
		}
	}
	b, _ := json.Marshal(raw)
	return string(b)
}

// begin records a new segment: the backfill runs, from this snapshot on.
func (s *Store) begin(ctx context.Context, r *Record, instance string) error {
	_, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET state = 'running', segments = $3::jsonb, total_events = $4,
    started_at = coalesce(started_at, now()), updated_at = now(), instance = $5, error = ''
WHERE pipeline = $1 AND sink = $2`, r.Pipeline, r.Sink, encodeSegments(r.Segments), r.Total, instance)
	if err != nil {
		return fmt.Errorf("record backfill segment of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	return nil
}

// recordPage saves a page and moves the cursor past it, in one
// transaction, before the sink gets the page.
func (s *Store) recordPage(ctx context.Context, r *Record, p Page) error {
	var after *string
	if p.After != nil {
		a := p.After.String()
		after = &a
	}
	last := p.Last.String()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record backfill page of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if len(p.IDs) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.ptable+` (pipeline, sink, first_ordinal, after_key, last_key, ids)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pipeline, sink, first_ordinal) DO UPDATE
SET after_key = excluded.after_key, last_key = excluded.last_key, ids = excluded.ids`,
			r.Pipeline, r.Sink, p.FirstOrdinal, after, last, p.IDs); err != nil {
			return fmt.Errorf("record backfill page of %s/%s: %w", r.Pipeline, r.Sink, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE `+s.table+` SET cursor = $3, next_ordinal = $4, total_events = greatest(total_events, $4), updated_at = now()
WHERE pipeline = $1 AND sink = $2`, r.Pipeline, r.Sink, last, r.NextOrdinal); err != nil {
		return fmt.Errorf("record backfill page of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record backfill page of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	return nil
}

// pendingPages returns the saved pages with an event at or after ordinal
// from, in order.
func (s *Store) pendingPages(ctx context.Context, r *Record, from int64) ([]Page, error) {
	rows, err := s.pool.Query(ctx, `SELECT first_ordinal, after_key, last_key, ids FROM `+s.ptable+`
WHERE pipeline = $1 AND sink = $2 AND first_ordinal + cardinality(ids) > $3 ORDER BY first_ordinal`, r.Pipeline, r.Sink, from)
	if err != nil {
		return nil, fmt.Errorf("load backfill pages of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	defer rows.Close()
	var out []Page
	for rows.Next() {
		var (
			p     Page
			after *string
			last  string
		)
		if err := rows.Scan(&p.FirstOrdinal, &after, &last, &p.IDs); err != nil {
			return nil, fmt.Errorf("load backfill pages of %s/%s: %w", r.Pipeline, r.Sink, err)
		}
		if after != nil {
			k, err := ParseKey(*after)
			if err != nil {
				return nil, err
			}
			p.After = &k
		}
		if p.Last, err = ParseKey(last); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// progress records how far the sink got, and forgets the pages it has
// made durable.
func (s *Store) progress(ctx context.Context, r *Record) error {
	if _, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET done_events = $3, rate = $4, total_events = greatest(total_events, $5), updated_at = now(), error = ''
WHERE pipeline = $1 AND sink = $2`, r.Pipeline, r.Sink, r.Done, r.Rate, r.Total); err != nil {
		return fmt.Errorf("record backfill progress of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.ptable+` WHERE pipeline = $1 AND sink = $2 AND first_ordinal + cardinality(ids) <= $3`,
		r.Pipeline, r.Sink, r.Done); err != nil {
		return fmt.Errorf("record backfill progress of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	return nil
}

// fail records why the backfill stopped; it stays running, to be resumed.
func (s *Store) fail(ctx context.Context, r *Record, cause error) {
	msg := cause.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	_, _ = s.pool.Exec(ctx, `UPDATE `+s.table+` SET error = $3, updated_at = now() WHERE pipeline = $1 AND sink = $2`,
		r.Pipeline, r.Sink, strings.ToValidUTF8(msg, "?"))
}

// finish records that the sink is back on the live stream.
func (s *Store) finish(ctx context.Context, r *Record) error {
	if _, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET state = 'done', done_events = $3, total_events = $3, finished_at = now(), updated_at = now(), error = ''
WHERE pipeline = $1 AND sink = $2`, r.Pipeline, r.Sink, r.Done); err != nil {
		return fmt.Errorf("record the end of the backfill of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.ptable+` WHERE pipeline = $1 AND sink = $2`, r.Pipeline, r.Sink); err != nil {
		return fmt.Errorf("record the end of the backfill of %s/%s: %w", r.Pipeline, r.Sink, err)
	}
	return nil
}
