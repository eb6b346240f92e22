package cdc

import (
	"context"
	"time"
)

// Consumer receives the pgoutput stream of a replication slot: package
// replication calls it, package pipeline implements it. The stream calls
// every method from one goroutine.
type Consumer interface {
	// Open is called each time streaming starts on a newly acquired slot,
	// before the first Message: the consumer (re)loads its checkpoints and
	// forgets any partly received transaction and relation. An error is
	// retried with backoff on a new connection.
	Open(ctx context.Context) error
	// Message handles one pgoutput message. data is only valid during the
	// call. An error ends the stream.
	Message(ctx context.Context, data []byte) error
	// Idle reports that the stream has handed over everything the server
	// has sent for now: a transaction was committed and nothing followed it
	// on the connection for a moment. The consumer may write what it holds
	// instead of waiting for more (group commit); while the stream is busy
	// (a catch-up) Idle is not called and batches fill.
	Idle()
	// Keepalive reports the server's WAL end from a keepalive message: every
	// transaction committed before it has been handed to Message.
	Keepalive(walEnd LSN)
	// Heard reports the server's clock when it sent the message the stream
	// is about to hand over (Message or Keepalive): data the process read
	// long after it was sent (it was paused, or its host frozen) is told
	// from fresh data this way, not by when it was read.
	Heard(sent time.Time)
	// Confirmable returns the LSN up to which the slot may confirm: every
	// transaction ending at or before it is durably handled.
	Confirmable() LSN
	// Advanced delivers a value when Confirmable may have moved (a sink
	// saved a checkpoint): the stream then confirms it promptly, without
	// waiting for its next status update.
	Advanced() <-chan struct{}
	// Restart delivers a value when the consumer needs the stream read
	// again from the confirmed position (a sink recovered and must catch up).
	Restart() <-chan struct{}
	// Drain is called once on shutdown while the slot is still held: flush
	// everything received and write checkpoints.
	Drain(ctx context.Context) error
	// Abandon is called when the stream lost its connection, or gave it up
	// to read the slot again (restart, after Restart fired), and so the
	// slot: another instance may take it over and deliver what this one
	// received. The consumer must start nothing more of it: it drops what it
	// holds and the next Open starts again from the checkpoints. Writes in
	// flight are cancelled when the connection was lost; on a restart they
	// may finish, since they began while the slot was held, and cancelling
	// a write the target may already have taken would deliver it twice. It
	// must not block.
	Abandon(restart bool)
}
