// Package nats is the sink that publishes each event as one message to a
// NATS JetStream stream, on a subject that is a template over the event's
// fields (see package route), for example "helpdesk.{{.TenantID}}.{{.Type}}".
// It uses the official client, github.com/nats-io/nats.go, and its
// jetstream package.
//
// # Messages
//
// The payload is the JSON envelope of package envelope, or the event's data
// as stored (see [Value]). Every message carries the headers Nats-Msg-Id
// (the event id), Nats-Expected-Stream (the configured stream) and, as the
// Kafka sink's, event-id, event-type, stream-id, tenant-id, seq-id and lsn
// (the commit LSN, as PostgreSQL prints it), plus correlation-id and
// causation-id when the event has them.
//
// # Exactly once
//
// JetStream drops a message whose Nats-Msg-Id it already stored within the
// stream's duplicate window (acknowledging it as a duplicate), so
// publishing an event again is a no-op as long as it happens within the
// window of its first publish. Write returns nil only once the stream
// acknowledged every message, and the pipeline saves the checkpoint only
// then; what is published again is what came after the checkpoint: after
// a failed Write, the messages the stream did not acknowledge (those it
// did are remembered and skipped); after a restart, everything after the
// checkpoint. The stream then holds every event exactly once provided
// those re-publishes fall within the duplicate window.
// [Config.MinDuplicateWindow] is the window a failed Write needs
// (twice AckTimeout plus the pipeline's longest backoff); a restart needs the
// window to cover the time to restart.
//
// # Order
//
// Messages are published asynchronously, up to MaxInFlight waiting for
// their acknowledgement at once, but a message is published only once the
// previous message of its event stream (stream id) in the batch was
// acknowledged. Order matters within an event stream, and a failure there
// must not let a later message be stored before an earlier one: with
// several messages of a stream in flight, an earlier one may be lost (a
// connection cut, a leader change) while a later one is stored, and the
// retry would then store the earlier one after it; the duplicate check
// cannot undo that. So the events of one stream are stored in version
// order, through failures and retries; the events of different streams
// are interleaved in the order their acknowledgements come, which is not
// always commit order. A stream with many events in one batch costs one
// round trip per event.
//
// # Errors
//
// A failure that may pass (a server down or restarting, a lost
// connection, an acknowledgement that does not come within AckTimeout) is
// returned as a plain error once the messages in flight are answered; the
// pipeline writes the batch again after a backoff.
//
// An event the stream will never take is returned as a [cdc.RejectedError]
// once every event before it is acknowledged, and nothing after it is
// published; the pipeline stops the sink or dead-letters the event
// (on_error). That is an event whose subject template fails or renders an
// invalid or reserved subject, whose message is larger than the server's
// max_payload or the stream's max_msg_size, or whose subject no stream, or
// another stream than the configured one, takes (when a publish gets no
// answer, the sink asks JetStream which stream takes the subject; with
// CreateStream, a stream deleted meanwhile is created again instead).
//
// # Connections
//
// New connects to nothing. Prepare (at the start of cdc run) connects and
// creates the stream when it is missing and CreateStream is set (a stream
// that exists is never changed); Inspect (cdc validate) reports problems
// and warns about a short duplicate window. The sink keeps one connection,
// which the client reconnects by itself; no error or log holds a password
// or token.
package nats
