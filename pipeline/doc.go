// Package pipeline routes the events of one replication slot to its sinks:
// it decodes the pgoutput stream, fans the events out to every sink, batches
// them per sink, retries failed writes, keeps one checkpoint per sink and
// tells the stream how far the slot may confirm.
//
// # Flow
//
// The replication stream calls the Pipeline (a cdc.Consumer, consumer.go) from
// one goroutine: each message is decoded and appended to a chunk; at every
// commit (or when the chunk is full) the chunk is handed to one goroutine per
// sink, a runner (dispatch.go, runner.go).
// Chunks are shared, read-only, between sinks. Each sink goroutine skips what
// is at or below its own position, applies the sink's filters, batches by the
// sink's BatchPolicy, writes (batch.go), then saves its checkpoint
// (checkpoint.go).
//
// Batches are group commits: a batch is written when it is full, or as soon
// as the stream goes idle (Idle: the stream hands every runner a marker
// behind its chunks), so MaxWait is a linger only while events keep
// arriving; while the stream is busy (a catch-up) batches fill. When a sink's
// saved flush LSN moves, the pipeline signals the stream (Advanced), which
// confirms the new position promptly rather than at its next status update.
//
// The package imports the vocabulary (package cdc) and the pure decoder only:
// the checkpoint store, the dead-letter table and the replication stream are
// interfaces (Checkpoints, DeadLetters, Source), so the core can be read and
// tested without PostgreSQL.
//
// # Checkpoint invariant
//
// A sink's checkpoint is saved only after Write returned nil for everything
// at or below it. The slot confirms the minimum over the sinks' saved flush
// LSNs (the end LSN of the last transaction each fully accepted), so no
// transaction a sink still needs is ever released by the slot. When every sink
// has saved everything received and no transaction is open, the server's WAL
// end from keepalives is confirmed instead, so an idle event store retains no
// WAL.
//
// # Reached LSN
//
// Each sink also has a reached LSN (reached.go, SinkStatus.Reached): every
// transaction committed before it is durable in the sink. It is the saved
// flush LSN, raised to a keepalive's WAL end once the sink has saved every
// transaction dispatched before that keepalive, so an LSN read with
// pg_current_wal_lsn() after a commit is passed as soon as that commit is
// applied, even when nothing follows it. Config.Reached is told of every
// move (read-your-writes waits, package applied).
//
// # Failing sinks
//
// A sink whose Write fails is retried with backoff. If its queue fills while
// it fails (or it stalls for StallTimeout), it is detached: the other sinks go
// on and the slot keeps the WAL from its checkpoint. Once it has written what
// it had, it asks for the stream to be re-read from the slot; the healthy
// sinks skip what they already have and the recovered one catches up from
// its own checkpoint.
//
// A sink that rejects an event permanently (cdc.RejectedError) stops, with its
// checkpoint just before the event, under on_error stop; under dead_letter the
// event goes to the dead-letter table and the sink goes on.
package pipeline
