// Package marten reproduces, from Go, what the Marten event store (a .NET
// library on PostgreSQL) creates and writes, so that tests and the
// `cdc demo` command exercise the projector against the tables and the
// write paths Marten really uses.
//
// It has three parts:
//
//   - Schema: the DDL Marten 8.x emits for its event store (mt_streams,
//     mt_events, mt_events_sequence, mt_event_progression and the functions
//     mt_quick_append_events, mt_archive_stream, mt_mark_event_progression),
//     embedded and rendered for any schema by [DDL]; [Install] runs it.
//     [LayoutDefault] is Marten's default configuration; the other [Layout]s
//     are string stream ids, archived-stream partitioning and (Marten 9.x)
//     conjoined tenancy with per-tenant partitions.
//   - Writes: [QuickAppend] calls mt_quick_append_events exactly as Marten
//     binds it; [StartStreamQuick] and [AppendRich] replay Marten's other
//     write paths (per-event INSERT with an inline nextval, and "Rich" mode
//     with seq_ids fetched ahead). Event data is always sent as query
//     parameters.
//   - Workload: [Helpdesk] generates the events of Marten's Helpdesk sample
//     (an Incident aggregate) with realistic System.Text.Json bodies, and
//     [NewID] makes time-ordered event ids like Marten's.
//
// The package is a test and demo aid: the projector itself never writes to
// a Marten store. It depends on no file outside this module at build time or
// run time.
//
// Functions take small interfaces ([Execer], [Querier], [Beginner]) that
// *pgx.Conn, pgx.Tx and *pgxpool.Pool all satisfy. They are safe for
// concurrent use when the connection they are given is.
package marten
