// Package workload is the write side of `cdc bench`: it appends Marten
// events to an installed event store the way a Marten application does, at
// a given rate or as fast as the server allows, and reports every committed
// transaction with its event ids, seq_ids and the time its COMMIT returned,
// so that a benchmark can measure when each event reaches a sink.
//
// All SQL is the project's faithful Marten write paths in internal/marten:
// [Run] appends with mt_quick_append_events ([marten.Store.QuickAppend],
// Marten's Quick append mode, which keeps stream versions right whatever
// the concurrency), and [BigTransaction] bulk-loads one large transaction
// with COPY ([marten.Store.CopyEvents]). Event bodies are those of Marten's
// Helpdesk sample ([marten.Helpdesk]), padded to a chosen size.
//
// Besides plain commits, [Run] makes the two kinds of transaction that
// trouble a seq_id poller such as Marten's async daemon: slow ones, which
// take their seq_ids and commit only after [Options.SlowFor] (so a higher
// seq_id commits first: a gap), and rolled-back ones (seq_ids that never
// commit). Rolled-back events are counted in the [Result] and handed to
// [Options.OnRollback], never reported as commits.
//
// Concurrency: Run starts [Options.Writers] goroutines, each with a
// connection of its own from the pool, and each with streams of its own, so
// writers never wait on each other's stream locks. A writer skips its
// streams that have a slow transaction pending, as appending to one would
// wait for that transaction's lock (or, on a stream it created, fail on
// mt_streams' primary key, as it does in Marten). A slow transaction is
// parked on its connection in a goroutine of its own while its writer goes
// on with a fresh connection, so slow transactions do not eat into the
// rate. Run's onCommit and OnRollback callbacks are called from those
// goroutines, concurrently.
//
// Context: when the context passed to Run ends, no new transaction starts;
// statements already sent run to completion (they are not cancelled, so
// that the outcome of every transaction is known) and parked slow
// transactions commit at once. Run returns when all of them have finished.
package workload
