package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/decoder"
)

// Checkpoints loads and saves the sinks' checkpoints (checkpoint.Store).
// Save returns an error matching cdc.ErrCheckpointBackwards when the stored
// checkpoint is already further.
type Checkpoints interface {
	Load(ctx context.Context, pipeline string) (map[string]cdc.Checkpoint, error)
	Save(ctx context.Context, pipeline, sink string, cp cdc.Checkpoint) error
}

// DeadLetters keeps the events a sink rejected permanently
// (deadletter.Store).
type DeadLetters interface {
	Write(ctx context.Context, pipeline, sink string, e *cdc.Event, cause error) error
}

// Source runs the replication stream that feeds the pipeline
// (replication.Stream).
type Source interface {
	Run(ctx context.Context, c cdc.Consumer) error
}

// Resumer reads a checkpoint a sink keeps itself, in its target.
type Resumer interface {
	// Checkpoint returns the position of the last event the target has
	// committed, and false when it has none.
	Checkpoint(ctx context.Context) (cdc.Position, bool, error)
}

// OnError says what a sink does with an event its target rejects permanently.
type OnError int

// What to do with a rejected event.
const (
	Stop       OnError = iota // stop the sink, checkpoint just before the event (default)
	DeadLetter                // write the event to the dead-letter table and go on
)

// SinkConfig is one sink of a pipeline.
type SinkConfig struct {
	Name    string          // unique within the pipeline; names the checkpoint row
	Sink    cdc.Sink        // the target
	Batch   cdc.BatchPolicy // zero fields get the defaults
	Filter  Filter          // which events the sink receives
	OnError OnError         // what to do with a rejected event
	// Resume, when set, is the sink's own checkpoint, committed with its
	// writes (the Postgres sink's, in the target database): after a crash
	// it may be ahead of the checkpoint table, and the sink then resumes
	// from it, so nothing it committed is written twice.
	Resume Resumer
	// Backfill, when set, is the state of a backfill of this sink that
	// the pipeline opens with (see BackfillState).
	Backfill *BackfillState
}

// Config describes a pipeline.
type Config struct {
	Name        string // pipeline name; names the checkpoint rows
	Decoder     decoder.Config
	Sinks       []SinkConfig // at least one
	Checkpoints Checkpoints  // required
	DeadLetters DeadLetters  // required when a sink uses DeadLetter
	// Instance identifies this process in checkpoint rows (host:pid).
	Instance string
	// StallTimeout is how long the stream waits for a sink that is not
	// failing but does not take events before it detaches it; default 5s.
	StallTimeout time.Duration
	// CheckpointInterval is how often a sink saves a position that moved
	// without a write (filtered events, tombstones); default 1s.
	CheckpointInterval time.Duration
	// RetryMin and RetryMax bound the backoff between failed writes;
	// defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
	// QueueChunks is how many chunks (of up to 1,024 events) may wait for
	// each sink; default 8: enough to keep a sink busy while the stream
	// decodes, small enough that a sink slower than the stream holds
	// little memory.
	QueueChunks int
	// Fence, when set, is how long the stream may go without hearing from
	// the server before the sinks stop writing (the connection may be cut
	// off, and the slot taken over by another instance); the replication
	// timeout. 0 disables it.
	Fence time.Duration
	// ShutdownTimeout bounds a clean stop, from the end of Run's context to
	// Run's return: the sinks' writes are cancelled when it is over, and a
	// sink that has not flushed by then resumes from its checkpoint at the
	// next start. Default 20s.
	ShutdownTimeout time.Duration
	// Reached, when set, is called each time a sink's reached LSN moves
	// (SinkStatus.Reached): every transaction committed before lsn is
	// durable in the sink, or was filtered out for it. It is called from
	// the sink's goroutine or the stream's and must not block.
	Reached func(sink string, lsn cdc.LSN)
	// TrackPending keeps the seq_ids of the events received and not yet
	// durable in every sink, for PendingSeq (Marten progress rows).
	TrackPending bool
	// Logger receives the pipeline's logs, which carry component=pipeline;
	// it should carry the pipeline's name. nil discards logs.
	Logger *slog.Logger
}

// withDefaults returns c with its zero settings set to the defaults.
func (c Config) withDefaults() Config {
	if c.StallTimeout <= 0 {
		c.StallTimeout = 5 * time.Second
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(10*time.Second, c.RetryMin)
	}
	if c.QueueChunks <= 0 {
		c.QueueChunks = 8
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
