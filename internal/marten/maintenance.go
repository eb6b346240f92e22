package marten

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// tombstoneStreamID stands in for Marten's Tombstone.StreamId, a
// Guid.NewGuid() taken once per process.
var tombstoneStreamID = NewID()

// TombstoneStreamID returns the id of the stream Marten files tombstones
// under: "mt_tombstone" with string stream ids, otherwise a uuid chosen
// once per process (Marten's Tombstone.StreamId is a Guid.NewGuid() taken
// when the process starts, so each application process has its own).
func (s Store) TombstoneStreamID() string {
	if t, _ := s.Layout.traits(); t.stringIDs {
		return "mt_tombstone"
	}
	return tombstoneStreamID
}

// TombstoneType is the event type alias (mt_events.type) of Marten's
// tombstone rows.
const TombstoneType = "tombstone"

// TombstoneDotnetType returns the mt_dotnet_type of Marten's tombstone rows
// in the layout's Marten version: "Marten.Events.Operations.Tombstone,
// Marten" in Marten 7 (an internal class of Marten), "JasperFx.Events.Tombstone,
// JasperFx.Events" from Marten 8 on (the class moved to JasperFx.Events).
func (s Store) TombstoneDotnetType() string {
	if t, _ := s.Layout.traits(); t.major == 7 {
		return "Marten.Events.Operations.Tombstone, Marten"
	}
	return "JasperFx.Events.Tombstone, JasperFx.Events"
}

// InsertTombstones writes what Marten writes after a Rich append failed
// having drawn seqIDs (see [Store.AppendRich]), in one transaction: the
// tombstone stream row (id [Store.TombstoneStreamID], version 0, the
// tenant; insert ... on conflict do nothing), then for each seq_id a filler
// row of type 'tombstone' with data '{}', mt_dotnet_type
// [Store.TombstoneDotnetType], a new event id, version equal to the seq_id
// (Marten does so to stay clear of the (stream, version) index) and the
// tenant. tenantID empty means [DefaultTenantID]. The decoder must treat
// these rows as non-events.
func (s Store) InsertTombstones(ctx context.Context, db Beginner, tenantID string, seqIDs []int64) error {
	t, err := s.check()
	if err != nil {
		return fmt.Errorf("insert tombstones: %w", err)
	}
	if len(seqIDs) == 0 {
		return errors.New("insert tombstones: no seq_ids")
	}
	tenantID = tenant(tenantID)
	stream, err := t.streamKey(s.TombstoneStreamID())
	if err != nil {
		return fmt.Errorf("insert tombstones: %w", err)
	}
	conflict := "id"
	if t.conjoined {
		conflict += ", tenant_id"
	}
	if t.archivedP {
		conflict += ", is_archived"
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "insert into "+s.table("mt_streams")+" (id, tenant_id, version, is_archived) values ($1, $2, 0, false) on conflict ("+conflict+") do nothing",
			stream, tenantID)
		if err != nil {
			return fmt.Errorf("establish the tombstone stream: %w", err)
		}
		now := time.Now()
		for _, seq := range seqIDs {
			e := NewEvent{ID: NewID(), Type: TombstoneType, DotnetType: s.TombstoneDotnetType(), Data: json.RawMessage("{}")}
			evs, err := t.prepare([]NewEvent{e}, now)
			if err != nil {
				return err
			}
			cols, vals := t.eventRow(&evs[0], stream, seq, tenantID, now, seq)
			sql, args := insertSQL(s.table("mt_events"), cols, vals)
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				return fmt.Errorf("insert tombstone %d: %w", seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("insert %d tombstones: %w", len(seqIDs), err)
	}
	return nil
}

// ArchiveStream archives a stream as Marten's ArchiveStream does:
// select <schema>.mt_archive_stream($1), or ($1, $2) with the tenant under
// conjoined tenancy ([LayoutConjoined], [LayoutConjoinedPartitioned]; the
// tenant is ignored otherwise; empty means [DefaultTenantID]). Under
// [LayoutArchivedPartitioned] this moves the rows to the archived
// partitions; elsewhere it flags them.
func (s Store) ArchiveStream(ctx context.Context, db Execer, streamID, tenantID string) error {
	t, err := s.check()
	if err != nil {
		return fmt.Errorf("archive stream %s: %w", streamID, err)
	}
	stream, err := t.streamKey(streamID)
	if err != nil {
		return fmt.Errorf("archive stream %s: %w", streamID, err)
	}
	if t.conjoined {
		_, err = db.Exec(ctx, "select "+s.table("mt_archive_stream")+"($1, $2)", stream, tenant(tenantID))
	} else {
		_, err = db.Exec(ctx, "select "+s.table("mt_archive_stream")+"($1)", stream)
	}
	if err != nil {
		return fmt.Errorf("archive stream %s: %w", streamID, err)
	}
	return nil
}

// MarkEventProgression records a progression row (the async daemon's
// "HighWaterMark" or a projection shard "<Name>:All"; under per-tenant
// partitioning "HighWaterMark:<tenant>") as Marten does:
// select <schema>.mt_mark_event_progression($1, $2).
func (s Store) MarkEventProgression(ctx context.Context, db Execer, name string, lastSeqID int64) error {
	if _, err := s.check(); err != nil {
		return fmt.Errorf("mark event progression %q: %w", name, err)
	}
	if _, err := db.Exec(ctx, "select "+s.table("mt_mark_event_progression")+"($1, $2)", name, lastSeqID); err != nil {
		return fmt.Errorf("mark event progression %q at %d: %w", name, lastSeqID, err)
	}
	return nil
}

// legacy is the store the package-level write functions use: a
// single-tenancy Marten 8.x store in schema that binds stream ids as text,
// as those functions always have, so that they serve [LayoutDefault],
// [LayoutStringIDs] and [LayoutArchivedPartitioned] alike (PostgreSQL casts
// the text to uuid where the column is one).
func legacy(schema string) Store { return Store{Layout: LayoutStringIDs, Schema: schema} }

// QuickAppend is [Store.QuickAppend] for a single-tenancy Marten 8.x store
// in schema: it binds the 8.x function signature, so it works for
// [LayoutDefault], [LayoutStringIDs], [LayoutArchivedPartitioned] and
// [LayoutConjoined].
func QuickAppend(ctx context.Context, q Querier, schema, streamID, streamType, tenantID string, events []NewEvent) (version int64, seqIDs []int64, err error) {
	return legacy(schema).QuickAppend(ctx, q, streamID, streamType, tenantID, events)
}

// StartStreamQuick is [Store.StartStreamQuick] for a single-tenancy Marten
// 8.x store in schema ([LayoutDefault], [LayoutStringIDs],
// [LayoutArchivedPartitioned]).
func StartStreamQuick(ctx context.Context, db Beginner, schema, streamID, streamType, tenantID string, events []NewEvent) (seqIDs []int64, err error) {
	return legacy(schema).StartStreamQuick(ctx, db, streamID, streamType, tenantID, events)
}

// AppendRich is [Store.AppendRich] for a single-tenancy Marten 8.x store in
// schema ([LayoutDefault], [LayoutStringIDs], [LayoutArchivedPartitioned]).
func AppendRich(ctx context.Context, db Beginner, schema, streamID, streamType, tenantID string, events []NewEvent) (version int64, seqIDs []int64, err error) {
	return legacy(schema).AppendRich(ctx, db, streamID, streamType, tenantID, events)
}

// ArchiveStream is [Store.ArchiveStream] for a single-tenancy store in
// schema: select <schema>.mt_archive_stream($1). It does not apply to the
// conjoined layouts, whose function also takes the tenant.
func ArchiveStream(ctx context.Context, db Execer, schema, streamID string) error {
	return legacy(schema).ArchiveStream(ctx, db, streamID, "")
}

// MarkEventProgression is [Store.MarkEventProgression] for a store in
// schema.
func MarkEventProgression(ctx context.Context, db Execer, schema, name string, lastSeqID int64) error {
	return Store{Schema: schema}.MarkEventProgression(ctx, db, name, lastSeqID)
}
