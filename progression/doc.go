// Package progression writes a sink's progress into Marten's own
// mt_event_progression table, so that Marten tooling that reads it (the
// async daemon's progress views, projection health checks, dashboards)
// sees how far cdc's sinks have got. It is opt-in per sink
// (`marten_progress: true`).
//
// Each sink owns rows named "cdc:<pipeline>:<sink>", or with per-tenant
// sequences (Marten's per-tenant partitioning, where seq_id repeats across
// tenants) one row per tenant, "cdc:<pipeline>:<sink>:<tenant>". A row's
// last_seq_id is the highest seq_id the sink has durably delivered (per
// tenant) below which nothing received is pending: concurrent appends
// commit out of seq_id order, so an event with a lower seq_id that
// committed later, received by the stream and not yet written by the sink
// (pipeline.Pipeline.PendingSeq), holds the row just below it. The value
// never goes down. An append not committed yet is unknown to cdc. Rows of
// other names (the daemon's 'HighWaterMark', '<Projection>:All') are never
// written: every statement is restricted to names starting with "cdc:".
//
// Marten 7, 8 and 9 share the table's key and base columns (name,
// last_seq_id, last_updated); 8 and 9 can add columns (extended progression
// tracking: heartbeat, agent_status, ...; optimized rebuilds: mode,
// rebuild_threshold, assigned_node). [Detect] reads which columns the
// table has: last_updated is set when present, heartbeat and agent_status
// ('Running') too; the others keep their defaults.
//
// A [Writer] builds the statement for a batch; the Postgres sink runs it in
// the batch's own transaction, and [Sink] wraps any other sink to run it
// after each durable write.
package progression
