// Package poller is the baseline of `cdc bench`: a projector that finds new
// events the way Marten's async daemon does, by polling mt_events by seq_id
// behind a high-water mark, so that the benchmark compares cdc (a logical
// replication slot: commit order, no gaps) against what a Marten user runs
// today.
//
// # What Marten does
//
// Read in JasperFx/marten (tag 8.37.4, the version the project's schema
// fixtures follow, and HEAD, 9.29.0) and JasperFx/jasperfx (JasperFx.Events,
// where the agent loop lives since Marten 8):
//
//   - src/Marten/Events/Daemon/HighWater/HighWaterStatisticsDetector.cs reads
//     the statistics of one poll: HighestSequence = last_value of
//     mt_events_sequence (the highest seq_id reserved, committed or not), the
//     last mark (mt_event_progression row 'HighWaterMark') and the server's
//     transaction_timestamp().
//   - src/Marten/Events/Daemon/HighWater/GapDetector.cs finds the mark: from
//     a start (the last mark), the first seq_id that is followed by a hole
//     ("select seq_id from (select seq_id, lead(seq_id) over (order by
//     seq_id) as no from mt_events where seq_id >= :start) ct where no is not
//     null and no - seq_id > 1 limit 1"), else max(seq_id) from the start.
//     HighWaterDetector.Detect skips the query when the last mark equals
//     HighestSequence, and records a new mark with
//     mt_mark_event_progression('HighWaterMark', mark).
//   - src/JasperFx.Events/Daemon/HighWater/HighWaterStatistics.cs classifies
//     a poll: CaughtUp when the mark equals HighestSequence (or the sequence
//     is pristine), Changed when the mark moved past the previous one, Stale
//     otherwise (the sequence is ahead of a mark that does not move: a gap).
//   - src/JasperFx.Events/Daemon/HighWater/HighWaterAgent.cs is the loop:
//     after CaughtUp it waits SlowPollingTime (1 s), after Changed
//     FastPollingTime (250 ms). On Stale it waits SlowPollingTime until
//     StaleSequenceThreshold (3 s) has passed since the timestamp of the last
//     poll that moved the mark or found it caught up; then it calls
//     HighWaterDetector.DetectInSafeZone, which runs the gap query from
//     mark+1, so the mark jumps over the hole to the next gap (or to
//     max(seq_id)), and waits FastPollingTime. When nothing is committed
//     above the hole it moves the mark to HighestSequence-32 once the mark is
//     older than the threshold, if that passes it (GH-2681, GH-3865).
//     Defaults are in src/JasperFx.Events/Daemon/DaemonSettings.cs (read at
//     JasperFx HEAD; Marten 8.37.4 pins JasperFx.Events 1.36.2).
//   - Projection shards then read events with seq_id in (their position,
//     mark] in pages of AsyncOptions.BatchSize (500,
//     src/JasperFx.Events/Projections/AsyncOptions.cs), in seq_id order.
//
// A seq_id the mark skipped is never read again: if its transaction commits
// after the skip, its events are lost to the projection. That is the
// behaviour of every Marten 8.x release and of 9.x before 9.16.1, and of
// later releases with ProjectionOptions.UseTransactionEvidenceForGapSkipping
// = false. By default this package reproduces it.
//
// Marten 9.16.1 (July 2026, issue #4953, commits a146fc8 and later) changed
// the default: UseTransactionEvidenceForGapSkipping = true makes
// DetectInSafeZone consult PostgreSQL (GapLivenessProbe.cs: RowExclusiveLock
// holders on mt_events, open transactions in pg_stat_activity older than the
// gap, in-progress xids in pg_current_snapshot()) and hold the mark for as
// long as a transaction that could fill the gap is alive, skipping only gaps
// proven dead (rolled back), unless SkipStaleGapsDespiteLiveTransactionsAfter
// is set; a proven-dead span is then skipped in one step, up to the highest
// committed seq_id but not past the highest reserved when the gap was first
// seen. That daemon stalls behind a slow transaction instead of dropping its
// events. [Options.HoldLiveGaps] selects it, with the probe's three clauses
// but without the refinements of #5057, #5091 and #5108 (an allocation fence
// that ignores sessions idle since before the gap's seq_ids were drawn, and
// the daemon's own advisory-lock sessions): here any transaction in the
// database older than the gap holds it. Without the option the poller is the
// daemon of Marten 8.x, of 9.x before 9.16.1, and of later 9.x with
// UseTransactionEvidenceForGapSkipping = false.
//
// Two fixes from 9.16 are kept here because they repair silent losses that
// have nothing to do with the stale threshold: the gap query is one SQL
// statement, so its readings come from one snapshot (#4953: with Marten
// 8.x's two statements, a commit between them could carry the max() fallback
// over an in-flight seq_id), and the normal path holds before a leading gap,
// a hole right above a mark that has no row of its own, e.g. seq_id 1 in
// flight on a fresh store (#4964, commit a3ba5f4).
//
// # Differences from the daemon
//
// The mark lives in memory: Run starts from [Options.From] and writes nothing
// to the database unless [Options.RecordMark] is set (Marten upserts the
// 'HighWaterMark' row each time the mark moves). The stale clock uses the
// server's timestamps, as Marten's does. Delivery runs in the polling loop,
// between a poll and the next wait, where Marten's shard agents fetch
// concurrently once told of the new mark; a slow deliver function therefore
// slows polling. Errors end Run; the daemon logs them and retries after
// SlowPollingTime. Marten 9.x can also wake the agent early with
// LISTEN/NOTIFY on appends (EventGraph.UseListenNotifyForEventAppends, off by
// default); the poller only polls.
//
// # Guarantees
//
// Events are delivered in seq_id order and at most once. An event whose
// seq_id the mark skipped is never delivered (with HoldLiveGaps, the mark
// skips only seq_ids with no live transaction behind them); [Stats.Skipped] lists those
// seq_ids and [Lost] tells, afterwards, which of them belong to events that
// committed later (the rest were rolled back). Run calls deliver from its
// own goroutine, one event at a time.
package poller
