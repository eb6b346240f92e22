// Package applied answers read-your-writes questions: has sink S of
// pipeline P applied everything committed before WAL position L? An
// application that appended events reads L with pg_current_wal_lsn() on
// its connection right after the commit (L is then at or past the commit's
// end) and asks; the answer is exact because cdc knows how far each sink
// has durably got, unlike a poller of seq_id that must guess about gaps.
//
// A [Tracker] holds the waiters. Each sink has a reached LSN: every
// transaction committed before it is durable in the sink (or filtered out
// for it). It is learnt two ways, and the larger wins (both only grow):
//
//   - from the pipeline running in this process, which pushes every move
//     ([Tracker.Advance], wired to pipeline.Config.Reached): waiters are
//     released as soon as the sink's checkpoint is saved;
//   - from a [Source] that reads the checkpoint table and the slot's
//     confirmed position, which any instance can read: a standby, or an
//     instance running other pipelines, answers from it. The tracker polls
//     it, one goroutine per pipeline, every PollInterval, only while that
//     pipeline has waiters.
//
// Waiters sleep on a channel of their own, kept in a heap per sink ordered
// by LSN: an advance wakes exactly the waiters it releases, and idle
// waiters cost no CPU whatever their number.
//
// A sink that is stopped (on_error: stop) releases its waiters at once with
// its state; one failing or detached keeps them until the sink catches up or
// their context ends, and the answer then carries the state and error.
//
// A Tracker is safe for concurrent use.
package applied
