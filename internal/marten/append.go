package marten

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// DefaultTenantID is the tenant id Marten writes under single tenancy.
const DefaultTenantID = "*DEFAULT*"

// Querier runs a query that returns one row. *pgx.Conn, pgx.Tx and
// *pgxpool.Pool satisfy it.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner starts a transaction (a savepoint when it is itself a
// transaction). *pgx.Conn, pgx.Tx and *pgxpool.Pool satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Errors callers branch on.
var (
	// ErrVersionConflict is wrapped by the error of an append whose stream
	// version changed between reading and updating it.
	ErrVersionConflict = errors.New("stream version changed concurrently")
	// ErrStreamArchived is wrapped by the error of an append (other than
	// QuickAppend, where the function decides) to an archived stream, which
	// Marten refuses.
	ErrStreamArchived = errors.New("stream is archived")
	// ErrUnknownTenant is wrapped by the error of a write to a
	// [LayoutConjoinedPartitioned] store for a tenant that was not added
	// with [Store.AddTenant]. (mt_quick_append_events raises SQLSTATE MT002
	// instead.)
	ErrUnknownTenant = errors.New("tenant has no registered partition")
)

// QuickAppend appends events to a stream the way Marten's Quick append mode
// does: one call of <schema>.mt_quick_append_events with the parameters
// bound positionally as Marten binds them for the layout:
//
//   - Marten 8.x layouts ([LayoutDefault], [LayoutStringIDs],
//     [LayoutArchivedPartitioned], [LayoutConjoined]): stream, stream
//     type, tenant, event ids, type aliases, .NET types, bodies, causation
//     ids, correlation ids, headers;
//   - [LayoutMarten7]: the first seven of those;
//   - [LayoutMarten9]: stream, stream type, tenant, event ids, type
//     aliases, .NET types, bodies, bdatas, causation ids, correlation ids,
//     headers, user names, timestamps (expected_version left at its
//     default, NULL);
//   - [LayoutConjoinedPartitioned]: the same without user names.
//
// The function creates the stream row on first use and draws one seq_id
// per event (from the tenant's own sequence under per-tenant partitioning).
// Marten 7/8 functions stamp events with the server clock; Marten 9 ones
// take NewEvent.Timestamp.
//
// streamID is the stream id as text (a uuid unless the layout has string
// ids); streamType is the aggregate alias (e.g. "incident"), empty for
// NULL; tenantID empty means [DefaultTenantID]. It returns the stream's new
// version and the seq_ids assigned, in event order.
func (s Store) QuickAppend(ctx context.Context, q Querier, streamID, streamType, tenantID string, events []NewEvent) (version int64, seqIDs []int64, err error) {
	t, evs, stream, err := s.appendArgs(streamID, events)
	if err != nil {
		return 0, nil, fmt.Errorf("quick append to stream %s: %w", streamID, err)
	}
	n := len(evs)
	var (
		ids         = make([]pgtype.UUID, n)
		types       = make([]string, n)
		dotnetTypes = make([]pgtype.Text, n)
		bodies      = make([][]byte, n)
		bdatas      = make([][]byte, n)
		causation   = make([]pgtype.Text, n)
		correlation = make([]pgtype.Text, n)
		headers     = make([][]byte, n)
		userNames   = make([]pgtype.Text, n)
		timestamps  = make([]time.Time, n)
	)
	for i, e := range evs {
		if e.skipped {
			return 0, nil, fmt.Errorf("quick append to stream %s: event %d: mt_quick_append_events cannot write is_skipped", streamID, i)
		}
		ids[i], types[i], dotnetTypes[i], bodies[i], bdatas[i] = e.id, e.typ, e.dotnetType, e.data, e.bdata
		causation[i], correlation[i], headers[i], userNames[i], timestamps[i] = e.causation, e.correlation, e.headers, e.userName, e.timestamp
	}
	args := []any{stream, text(streamType), tenant(tenantID), ids, types, dotnetTypes, bodies}
	if t.bdata() {
		args = append(args, bdatas)
	}
	if t.metadata {
		args = append(args, causation, correlation, headers)
	}
	if t.userName {
		args = append(args, userNames)
	}
	if t.major >= 9 { // AppendMode.QuickWithServerTimestamps
		args = append(args, timestamps)
	}
	params := make([]string, len(args))
	for i := range params {
		params[i] = "$" + strconv.Itoa(i+1)
	}
	sql := "select " + s.table("mt_quick_append_events") + "(" + strings.Join(params, ", ") + ")"
	var ret []int64
	if err := q.QueryRow(ctx, sql, args...).Scan(&ret); err != nil {
		return 0, nil, fmt.Errorf("quick append %d events to stream %s: %w", n, streamID, err)
	}
	if len(ret) != n+1 {
		return 0, nil, fmt.Errorf("quick append %d events to stream %s: mt_quick_append_events returned %d values, want %d",
			n, streamID, len(ret), n+1)
	}
	return ret[0], ret[1:], nil
}

// StartStreamQuick starts a new stream the way Marten 8.x Quick mode does
// for StartStream: in one transaction, it inserts the stream row with its
// final version, then one INSERT per event with the seq_id drawn inline by
// nextval and the server clock as timestamp. It returns the seq_ids
// assigned, in event order. It fails if the stream exists (on the stream
// row's primary key, before any seq_id is drawn).
func (s Store) StartStreamQuick(ctx context.Context, db Beginner, streamID, streamType, tenantID string, events []NewEvent) (seqIDs []int64, err error) {
	_, seqIDs, err = s.insertInline(ctx, db, streamID, streamType, tenantID, events, true)
	if err != nil {
		return nil, fmt.Errorf("start stream %s: %w", streamID, err)
	}
	return seqIDs, nil
}

// InsertInline appends events to a new or existing stream with Marten
// 8.x's per-event quick INSERT, the path Quick mode takes for appends with
// a known expected version: in one transaction, it inserts the stream row
// (new stream) or moves its version on with an optimistic check (existing
// stream), then inserts each event with its seq_id drawn inline,
// nextval('<schema>.mt_events_sequence') (the tenant's sequence under
// per-tenant partitioning), and the server clock, now(), as timestamp. It
// returns the stream's new version and the seq_ids, in event order.
func (s Store) InsertInline(ctx context.Context, db Beginner, streamID, streamType, tenantID string, events []NewEvent) (version int64, seqIDs []int64, err error) {
	version, seqIDs, err = s.insertInline(ctx, db, streamID, streamType, tenantID, events, false)
	if err != nil {
		return 0, nil, fmt.Errorf("insert inline into stream %s: %w", streamID, err)
	}
	return version, seqIDs, nil
}

// appendArgs checks the store and an append's stream id and events, and
// types them for the layout.
func (s Store) appendArgs(streamID string, events []NewEvent) (traits, []event, any, error) {
	t, err := s.check()
	if err != nil {
		return t, nil, nil, err
	}
	evs, err := t.prepare(events, time.Now())
	if err != nil {
		return t, nil, nil, err
	}
	stream, err := t.streamKey(streamID)
	if err != nil {
		return t, nil, nil, err
	}
	return t, evs, stream, nil
}

// insertInline is InsertInline, or StartStreamQuick when start is set.
func (s Store) insertInline(ctx context.Context, db Beginner, streamID, streamType, tenantID string, events []NewEvent, start bool) (version int64, seqIDs []int64, err error) {
	t, evs, stream, err := s.appendArgs(streamID, events)
	if err != nil {
		return 0, nil, err
	}
	tenantID = tenant(tenantID)
	n := int64(len(evs))
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		sequence, err := s.sequence(ctx, tx, t, tenantID)
		if err != nil {
			return err
		}
		if start {
			version = n
			err = s.insertStream(ctx, tx, stream, streamType, tenantID, n)
		} else {
			version, err = s.claimVersions(ctx, tx, t, stream, streamType, tenantID, n)
		}
		if err != nil {
			return err
		}
		seq := nextval(sequence)
		for i := range evs {
			cols, vals := t.eventRow(&evs[i], stream, version-n+int64(i)+1, tenantID, sqlExpr("now()"), seq)
			sql, args := insertSQL(s.table("mt_events"), cols, vals)
			var id int64
			if err := tx.QueryRow(ctx, sql+" returning seq_id", args...).Scan(&id); err != nil {
				return fmt.Errorf("insert event %d: %w", i, err)
			}
			seqIDs = append(seqIDs, id)
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("%d events: %w", n, err)
	}
	return version, seqIDs, nil
}

// AppendRich appends events the way Marten 7/8's Rich append mode does: in
// one transaction it fetches the seq_ids ahead (select nextval(...) from
// generate_series(1, n), from the tenant's sequence under per-tenant
// partitioning), inserts the stream row (new stream) or bumps its version
// with an optimistic check (existing stream), and inserts every event with
// its seq_id and the client's timestamp as parameters. It returns the
// stream's new version and the seq_ids, in event order.
//
// seq_ids drawn by a transaction that then fails are lost: Marten fills
// them with tombstone rows. On an error after the seq_ids were drawn,
// AppendRich returns them along with the error, so that the caller can do
// the same with [Store.InsertTombstones].
//
// Marten 9 rejects Rich mode under per-tenant partitioning; AppendRich
// still writes such a store the same way.
func (s Store) AppendRich(ctx context.Context, db Beginner, streamID, streamType, tenantID string, events []NewEvent) (version int64, seqIDs []int64, err error) {
	t, evs, stream, err := s.appendArgs(streamID, events)
	if err != nil {
		return 0, nil, fmt.Errorf("rich append to stream %s: %w", streamID, err)
	}
	tenantID = tenant(tenantID)
	n := int64(len(evs))
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		sequence, err := s.sequence(ctx, tx, t, tenantID)
		if err != nil {
			return err
		}
		if seqIDs, err = nextSeqIDs(ctx, tx, sequence, len(evs)); err != nil {
			return err
		}
		if version, err = s.claimVersions(ctx, tx, t, stream, streamType, tenantID, n); err != nil {
			return err
		}
		for i := range evs {
			cols, vals := t.eventRow(&evs[i], stream, version-n+int64(i)+1, tenantID, evs[i].timestamp, seqIDs[i])
			sql, args := insertSQL(s.table("mt_events"), cols, vals)
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				return fmt.Errorf("insert event %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, seqIDs, fmt.Errorf("rich append %d events to stream %s: %w", n, streamID, err)
	}
	return version, seqIDs, nil
}

// StreamEvents is the events of one stream, for [Store.CopyEvents].
type StreamEvents struct {
	// StreamID is the stream id as text (a uuid unless the layout has
	// string ids).
	StreamID string
	// StreamType is the aggregate alias (mt_streams.type) of a new stream;
	// empty writes NULL.
	StreamType string
	// TenantID is the stream's tenant; empty means [DefaultTenantID].
	TenantID string
	// Events are appended to the stream, in order.
	Events []NewEvent
}

// CopyEvents bulk-loads the events of one or more streams the way a bulk
// loader (or Marten's bulk insert of events) does: in one transaction it
// fetches every seq_id ahead (one nextval batch per sequence: per tenant
// under per-tenant partitioning) and hands them out in the order given,
// inserts or moves on each stream row as [Store.AppendRich] does, then
// writes all events with one COPY into mt_events, with the client's
// timestamps. It returns the seq_ids of each stream's events, indexed like
// streams. A stream may appear only once.
//
// As with AppendRich, on an error after the seq_ids were drawn they are
// returned with the error (those of streams[i] in seqIDs[i]), to be filled
// with [Store.InsertTombstones].
func (s Store) CopyEvents(ctx context.Context, db Beginner, streams []StreamEvents) (seqIDs [][]int64, err error) {
	t, err := s.check()
	if err != nil {
		return nil, fmt.Errorf("copy events: %w", err)
	}
	if len(streams) == 0 {
		return nil, errors.New("copy events: no streams")
	}
	type prepared struct {
		stream any
		tenant string
		seq    string // sequence key: the tenant under per-tenant partitioning, else ""
		events []event
	}
	now := time.Now()
	ps := make([]prepared, len(streams))
	seen := map[[2]string]bool{}
	counts := map[string]int{} // events per sequence key
	var keys []string          // sequence keys in order of first appearance
	for i, st := range streams {
		p := prepared{tenant: tenant(st.TenantID)}
		if p.stream, err = t.streamKey(st.StreamID); err != nil {
			return nil, fmt.Errorf("copy events: stream %d: %w", i, err)
		}
		if p.events, err = t.prepare(st.Events, now); err != nil {
			return nil, fmt.Errorf("copy events: stream %s: %w", st.StreamID, err)
		}
		key := [2]string{st.StreamID, ""}
		if !t.stringIDs {
			key[0] = strings.ToLower(key[0])
		}
		if t.conjoined {
			key[1] = p.tenant
		}
		if seen[key] {
			return nil, fmt.Errorf("copy events: stream %s appears twice", st.StreamID)
		}
		seen[key] = true
		if t.perTenant {
			p.seq = p.tenant
		}
		if _, ok := counts[p.seq]; !ok {
			keys = append(keys, p.seq)
		}
		counts[p.seq] += len(p.events)
		ps[i] = p
	}

	var drawn [][]int64
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// seq_ids ahead, one batch per sequence, handed out in order
		pool := map[string][]int64{}
		for _, key := range keys {
			sequence, err := s.sequence(ctx, tx, t, key)
			if err != nil {
				return err
			}
			if pool[key], err = nextSeqIDs(ctx, tx, sequence, counts[key]); err != nil {
				return err
			}
		}
		drawn = make([][]int64, len(ps))
		for i, p := range ps {
			drawn[i], pool[p.seq] = pool[p.seq][:len(p.events)], pool[p.seq][len(p.events):]
		}

		var cols []string
		var rows [][]any
		for i, p := range ps {
			n := int64(len(p.events))
			version, err := s.claimVersions(ctx, tx, t, p.stream, streams[i].StreamType, p.tenant, n)
			if err != nil {
				return fmt.Errorf("stream %s: %w", streams[i].StreamID, err)
			}
			for j := range p.events {
				var vals []any
				cols, vals = t.eventRow(&p.events[j], p.stream, version-n+int64(j)+1, p.tenant, p.events[j].timestamp, drawn[i][j])
				rows = append(rows, vals)
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.Schema, "mt_events"}, cols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy into mt_events: %w", err)
		}
		return nil
	})
	if err != nil {
		return drawn, fmt.Errorf("copy events of %d streams: %w", len(streams), err)
	}
	return drawn, nil
}
