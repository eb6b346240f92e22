package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
)

// BigCommit is the transaction [BigTransaction] committed.
type BigCommit struct {
	// Commit has the ids and seq_ids of the events, stream after stream,
	// and when COMMIT returned.
	Commit
	// LSN is pg_current_wal_insert_lsn() read on the same connection right
	// after COMMIT returned: at or past the end of the transaction's commit
	// record (equal to it on a quiet server). A replication consumer whose
	// position has reached LSN has received the whole transaction; it may
	// have it earlier, as WAL other sessions wrote in between can put LSN
	// beyond the commit's own end.
	LSN cdc.LSN
}

// BigTransaction appends n events in ONE transaction, spread evenly over
// o.Streams new streams (default [DefaultStreamsPerWriter]), with one COPY
// into mt_events: the bulk append path of [marten.Store.CopyEvents], which
// draws all seq_ids first. It uses o.Schema, o.Layout, o.PayloadBytes,
// o.Tenants (streams spread over them as in [Run]) and o.Seed, and ignores
// the other fields. It returns when COMMIT returned.
//
// The insert LSN is read rather than pg_current_wal_lsn() (the WAL written
// out), because under synchronous_commit = off the commit record may not
// be written yet when COMMIT returns.
func BigTransaction(ctx context.Context, pool *pgxpool.Pool, o Options, n int) (BigCommit, error) {
	if o.Streams == 0 {
		o.Streams = DefaultStreamsPerWriter
	}
	o.Writers = 1
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return BigCommit{}, fmt.Errorf("big transaction: %w", err)
	}
	if n < o.Streams {
		return BigCommit{}, fmt.Errorf("big transaction: %d events for %d streams: each stream needs an event", n, o.Streams)
	}
	store := marten.Store{Layout: o.Layout, Schema: o.Schema}
	gen := newGenerator(rand.New(rand.NewPCG(o.Seed, 0)), o.PayloadBytes)
	streams := make([]marten.StreamEvents, o.Streams)
	for i := range streams {
		id := store.NewStreamID()
		count := n / o.Streams
		if i < n%o.Streams {
			count++
		}
		tenant := o.tenantID(i)
		if tenant != "" && i < o.Tenants {
			if err := store.AddTenant(ctx, pool, tenant); err != nil {
				return BigCommit{}, fmt.Errorf("big transaction: %w", err)
			}
		}
		streams[i] = marten.StreamEvents{StreamID: id, StreamType: marten.HelpdeskStreamType, TenantID: tenant, Events: gen.events(id, count)}
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return BigCommit{}, fmt.Errorf("big transaction: acquire a connection: %w", err)
	}
	defer conn.Release()
	seqIDs, err := store.CopyEvents(ctx, conn, streams)
	if err != nil {
		return BigCommit{}, fmt.Errorf("big transaction of %d events: %w", n, err)
	}
	c := BigCommit{Commit: Commit{At: time.Now(), IDs: make([]string, 0, n), SeqIDs: make([]int64, 0, n)}}
	for i, s := range streams {
		c.IDs = append(c.IDs, marten.IDs(s.Events)...)
		c.SeqIDs = append(c.SeqIDs, seqIDs[i]...)
	}
	var lsn string
	if err := conn.QueryRow(ctx, "select pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return c, fmt.Errorf("big transaction of %d events: committed; read the WAL insert position: %w", n, err)
	}
	if c.LSN, err = cdc.ParseLSN(lsn); err != nil {
		return c, fmt.Errorf("big transaction of %d events: committed; %w", n, err)
	}
	return c, nil
}
