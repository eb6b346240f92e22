// Package backfill fills a sink with the events already in mt_events and
// hands it back to the live stream exactly: source.start: beginning, a
// sink's start: beginning, and cdc replay.
//
// # The hand-off
//
// A backfill reads the table in the snapshot exported by a replication slot
// it creates (a temporary one, see replication.CreateSnapshotSlot). That
// slot's consistent point H is the boundary: the snapshot holds exactly the
// transactions whose commit record starts before H, and the pipeline's slot
// decodes exactly those whose commit record starts at or after H, because
// PostgreSQL builds both from the same point of its snapshot builder (its
// table synchronisation for logical replication relies on it). A sink is
// held (it takes nothing live and its flush LSN stays, so the pipeline's
// slot keeps the WAL from before H), fed the snapshot's events at positions
// (H-1, ordinal), which sort after every live event before H and before
// every one from H, then handed back to the live stream from H. Comparing
// seq_ids, or LSNs read beside a snapshot, would not be exact: seq_ids are
// taken before commit, and a transaction whose commit record is written
// just before a snapshot can still be in progress for it.
//
// A backfill that covers part of the events (--from seq:N, time:T,
// --tenant) first lets the sink take the live stream up to H, delivering
// the events outside the scope and skipping those inside it, which the
// snapshot has.
//
// # Resuming
//
// The table is read in key order (seq_id, and tenant_id where seq_id
// repeats per tenant) in pages. Each page's event ids and key range are
// saved in cdc_backfill_pages before the sink gets them, and the key of the
// last page read (the cursor) in cdc_backfills. After a crash or a stop
// the snapshot is gone, so a new one is made (a new segment, at H2): the
// pages the sink had not made durable are read again by id (their events
// keep their ordinals, so a sink that keeps its own checkpoint skips what
// it has), then the pages after the cursor. The live stream then delivers
// a transaction committed between H and H2 only when its key is at or
// below the cursor (no later snapshot read it); Handoff and Segment in
// package pipeline carry this rule to the sink.
//
// Only the instance that holds the pipeline's slot runs backfills (the
// slot is the lock). cdc replay records a request in cdc_backfills; the
// running instance (on any machine) picks it up; with none running, the
// command runs the pipeline itself until the backfill is done.
package backfill
