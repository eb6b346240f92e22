// Package decoder turns the pgoutput messages of a logical replication stream
// into Marten events.
//
// # Role in the flow
//
//	replication (slot, pgoutput stream) -> decoder -> pipeline -> sinks
//
// The replication package reads the slot and hands every XLogData payload, in
// stream order, to [Decoder.Decode]. The decoder is pure: bytes and its own
// relation cache in, [Message] values out. It does no I/O, reads no clock and
// does not import a replication library: it parses the pgoutput wire format
// (protocol version 1, text values, no streaming of in-progress transactions)
// itself, as described in the PostgreSQL documentation, "Logical Replication
// Message Formats". One Decoder serves one replication stream and is not safe
// for concurrent use; call [Decoder.Reset] when the stream restarts on a new
// connection, since the server then re-sends its Relation messages.
//
// # What a stream looks like
//
// Every transaction arrives whole and already committed, in commit order:
// Begin, then Relation messages for tables whose schema the server has not
// described yet on this connection, then the rows, then Commit. Decode
// reports a [KindBegin], a [KindEvent] or [KindSkip] per row inserted into the
// target table (Config.Schema + "." + Config.Table, default public.mt_events),
// and a [KindCommit]; everything else is [KindNone].
//
// Columns of the target table are found by name in its Relation message,
// never by position, and are mapped again whenever the server re-sends the
// Relation (after ALTER TABLE, e.g. a Marten upgrade adding a column).
// Required columns are seq_id, id, stream_id, version, data, type, timestamp
// and tenant_id: a Relation without them fails with a [*MissingColumnError].
// mt_dotnet_type, correlation_id, causation_id, headers, user_name,
// is_archived and is_skipped are used when present. Other columns (Marten 9's
// bdata, for one) are ignored.
//
// # Positions
//
// A row's position is (commit LSN of its transaction, index of the row among
// the transaction's inserts into the target table, from 0). Every such
// insert takes an index, events and skipped rows alike, so a position is
// stable whatever is filtered later, and the pipeline can count a skipped
// row as processed. The commit LSN is the Begin's final LSN; a Commit whose
// LSN differs is an error. What a client confirms to the server for a
// finished transaction is the Commit's end LSN ([Message.EndLSN]): confirming
// the commit LSN would make the server send the transaction again.
//
// # What is skipped, and why
//
// A row inserted into the target table is not an event, and Decode returns
// [KindSkip] with its position and reason, when
//
//   - its type is "tombstone" ([SkipTombstone]): Marten's filler for the
//     sequence numbers of an append that failed;
//   - is_skipped is true ([SkipSkipped]): Marten marked the event to be
//     skipped by projections and subscriptions;
//   - is_archived is true ([SkipArchived]): under archived-stream
//     partitioning, archiving a stream moves its rows to the archived
//     partition, which the WAL shows as new inserts of copies of events that
//     were already delivered. The copy is decoded and attached to the
//     message, for an opt-in "archived" notification.
//
// Updates, deletes, truncates and rows of other tables are not events and
// are reported as [KindNone]. A rolled-back transaction never reaches the
// stream.
//
// # Errors
//
// Malformed or truncated messages fail with an error wrapping [ErrMalformed],
// messages that break the Begin/Commit pairing with one wrapping
// [ErrOutOfSequence], a NULL or unparsable value of a required column with a
// [*ColumnError] naming the relation, the column and the row's position.
// Decode never panics on bad input. An error means the stream cannot be
// trusted past that point: stop, and Reset before decoding a new stream.
//
// # Memory
//
// Decode copies what an event keeps out of the message, once, into one
// buffer per event; the event's strings and JSON values are views of that
// buffer, which is never written again. Low-cardinality strings (type,
// tenant_id, mt_dotnet_type) are interned. Events are shared by every sink
// and must not be modified, which includes the bytes of Data and Headers.
package decoder
