// Package marten reproduces, from Go, what the Marten event store (a .NET
// library on PostgreSQL) creates and writes, so that tests and the
// `cdc demo` command exercise the projector against the tables and the
// write paths Marten really uses.
//
// It has three parts:
//
//   - Schema: the DDL Marten emits for its event store (mt_streams,
//     mt_events, mt_events_sequence, mt_event_progression and the functions
//     mt_quick_append_events, mt_archive_stream, mt_mark_event_progression),
//     embedded and rendered for any schema by [DDL]; [Store.Install] runs
//     it. [LayoutDefault] is Marten 8.x's default configuration; the other
//     [Layout]s are string stream ids, archived-stream partitioning,
//     conjoined tenancy with and (Marten 9.x) without per-tenant
//     partitions, Marten 7.x's default and Marten 9.x's single tenancy
//     with the bdata, user_name and is_skipped columns. [Layouts] lists
//     them all.
//   - Writes: a [Store] (a layout in a schema) replays Marten's write
//     paths for its layout: [Store.QuickAppend] calls
//     mt_quick_append_events with the parameters that layout's function
//     takes; [Store.StartStreamQuick] and [Store.InsertInline] the
//     per-event INSERT with an inline nextval; [Store.AppendRich] "Rich"
//     mode with seq_ids fetched ahead; [Store.CopyEvents] a bulk COPY;
//     [Store.InsertTombstones] the filler rows Marten writes for the
//     seq_ids of a failed append; [Store.ArchiveStream] archiving. Under
//     per-tenant partitioning every path draws seq_ids from the tenant's
//     own sequence. Event data is always sent as query parameters. The
//     package-level [QuickAppend], [StartStreamQuick], [AppendRich] and
//     [ArchiveStream] are the same for the single-tenancy Marten 8.x
//     layouts.
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
