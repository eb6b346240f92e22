// Package postgres is the sink that writes events to a PostgreSQL database
// (the source database or another one), exactly once: each batch is one
// transaction of the target that also moves the sink's checkpoint, stored
// in the target, so the writes and the position commit together or not at
// all, whatever happens to the process (SIGKILL included).
//
// # Modes
//
// In [ModeProjections] (the default) the sink keeps read models, like the
// inline and async projections of Marten do: Config.Routes pair event-type
// globs with a [Projection]. [SQL] builds one from SQL statements with
// $name placeholders ($stream_id, $version, $data->>'CustomerId'...), each
// bound as a query parameter, never spliced into the SQL text; a Go value
// implementing Projection (and [Batcher], to be pipelined) is the API for
// embedding cdc as a library. Package examples/helpdesk is a complete
// example: the read models of Marten's Helpdesk sample, with a
// recomputation in Go that tests and the demo check them against.
//
// In [ModeEvents] the sink copies each event into Config.Table (an archive
// or an outbox), whose columns mirror the envelope of package envelope: id
// (uuid, the primary key), seq_id, stream_id, version, type, dotnet_type,
// tenant_id, timestamp, data (jsonb), correlation_id, causation_id, headers
// (jsonb), user_name, lsn (pg_lsn, the commit LSN) and commit_time. The
// whole batch is one INSERT ... SELECT FROM unnest(arrays) ON CONFLICT (id)
// DO NOTHING, so copying an event twice is harmless even without the
// checkpoint (another sink writing to the same table, a replay).
//
// # Checkpoint and exactly once
//
// The checkpoint table (Config.CheckpointTable, default
// cdc_sink_checkpoints, in the target) has one row per (pipeline, sink):
// the position (commit LSN, index within the transaction) of the last event
// of the last committed batch. Each Write moves it in the batch's
// transaction with a compare-and-set: the row must still hold the position
// the sink read or committed last, and the new position must be further.
// Another writer that moved it meanwhile (an instance that took over after
// this one lost the replication slot) makes the batch roll back. Write
// skips the events at or below the stored checkpoint, so delivering a batch
// again (the pipeline's own checkpoint, saved after Write returns, may be
// behind the target's after a crash) changes nothing; [Sink.Checkpoint]
// gives the pipeline the target's position to resume from, and
// [Sink.ResetCheckpoint] forgets it, for a replay into emptied read models.
//
// [Sink.Redeliver] is the write path of re-sent dead letters (cdc
// deadletters retry): their positions are at or below the checkpoint, which
// Write would skip as applied, so Redeliver applies the events through the
// same projections without reading or moving the checkpoint (it never goes
// back, and a running instance's compare-and-set is not disturbed). That
// path is at least once: nothing in the target records a redelivered
// event.
//
// # Batches and round trips
//
// When every projection a batch's events match is a Batcher (SQL
// projections are), the begin, every statement of every event and the
// checkpoint upsert are sent as one pipelined pgx.Batch (one round trip;
// the statements are prepared once per connection by pgx's statement
// cache), then the commit: two round trips per batch. Otherwise each
// event's projections are applied in turn in one transaction.
//
// # Failures
//
// A failure of the connection or the server, a serialization failure or
// deadlock, a statement that cannot run for any event (SQLSTATE class 42:
// missing table or column, syntax, privilege) and a canceled context make
// Write return a plain error: nothing was committed and the pipeline writes
// the batch again later. Any other failure (a constraint violation, an
// invalid cast of event data, an exception raised by a trigger, an error
// from a Go projection) is the event's: Write applies the batch again event
// by event, with a savepoint per event, commits the events before the first
// one that fails together with the checkpoint just before it, and returns a
// [*cdc.RejectedError] for that event wrapping a [*ProjectionError] (which
// names the projection, the statement, the event and the PostgreSQL error).
// The pipeline's on_error then stops the sink or dead-letters the event and
// writes the rest.
//
// # Connections
//
// The sink uses the pgxpool.Pool it is given (one connection at a time) and
// does not close it. New does no I/O and starts no goroutine. [Sink.Prepare]
// (at the start of cdc run; Write does it when it was not called) creates
// the checkpoint table and, in ModeEvents, the events table if they are
// missing. [Sink.Check] (for cdc validate) checks, in a transaction it
// rolls back, that the tables can be created and every statement prepared
// and planned, and reports each problem on one line naming the projection.
package postgres
