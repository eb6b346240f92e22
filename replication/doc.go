// Package replication owns everything that talks to PostgreSQL's logical
// replication: the publication and the pgoutput slot (Setup, Teardown), the
// server checks that tell a user what is missing (Check), the slot's state
// (Slot), and the stream itself (Stream).
//
// A Stream holds the slot: PostgreSQL allows one replication connection per
// slot, so the slot is the lock that makes one instance active. An instance
// that finds the slot active (SQLSTATE 55006) stands by, logs who holds it and
// retries every StandbyRetry until it frees; no advisory lock or leader table is
// involved.
//
// The stream is read with pgoutput protocol version 1, so every transaction
// arrives whole and committed, in commit order, and a rolled-back one is never
// seen. Each pgoutput message is handed to a cdc.Consumer (the pipeline), which decodes and routes
// it. Only the Stream writes to the replication connection: it sends standby
// status updates every StatusInterval and whenever the server asks, confirming
// the LSN the Consumer reports as safe (Consumer.Confirmable), never less than
// the slot's own confirmed position, so the slot never moves back. When the
// Consumer signals that this LSN moved (Consumer.Advanced: a sink saved a
// checkpoint), an update is sent at once, at most every 20 ms.
//
// After a commit, when nothing more is buffered and the connection stays
// quiet for a millisecond, the Stream tells the Consumer it is idle
// (Consumer.Idle), so that sinks write what they hold instead of lingering;
// while the server keeps streaming, it does not.
//
// A dropped connection is retried with backoff; the stream then restarts at
// the slot's confirmed position and the Consumer skips what it already has.
// When the context ends, the Stream stops reading, lets the Consumer drain
// (flush every sink, write checkpoints) while it still holds the slot, sends a
// last status update and closes.
//
// This package is the only importer of pglogrepl.
package replication
