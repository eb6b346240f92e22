package cdc

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Batch is a run of consecutive events, in Position order, handed to one sink.
// It holds only the events the sink's filters let through; positions in
// between that were filtered out or were not events are already accounted
// for by the pipeline.
type Batch struct {
	Events []*Event
}

// Sink receives batches of events. Implementations need not be safe for
// concurrent use: the pipeline calls Write from one goroutine per sink, one
// batch at a time, in Position order.
type Sink interface {
	// Write delivers the batch. It returns nil only when every event of the
	// batch is durable in the target (acknowledged, committed, flushed); the
	// pipeline then advances the sink's checkpoint past the batch. On error
	// the pipeline retries the same batch later, so Write must tolerate
	// receiving events it already delivered.
	Write(ctx context.Context, b Batch) error
	// Close flushes and releases the sink's resources.
	Close(ctx context.Context) error
}

// BatchPolicy says when a sink's pending batch is written: when it holds
// MaxEvents events, when it reaches MaxBytes (estimated by [Event.Size]), or
// MaxWait after its first event arrived, whichever comes first. A batch is
// also written as soon as the stream goes idle (Consumer.Idle): MaxWait is
// a linger only while events keep arriving.
type BatchPolicy struct {
	MaxEvents int           // events per batch; default 5000
	MaxBytes  int           // estimated bytes per batch; default 4 MiB
	MaxWait   time.Duration // linger after the first event while events keep arriving; default 10ms
}

// Defaults of BatchPolicy, used for its zero fields.
const (
	DefaultMaxEvents = 5000
	DefaultMaxBytes  = 4 << 20
	DefaultMaxWait   = 10 * time.Millisecond
)

// WithDefaults returns p with its zero fields set to the defaults.
func (p BatchPolicy) WithDefaults() BatchPolicy {
	if p.MaxEvents <= 0 {
		p.MaxEvents = DefaultMaxEvents
	}
	if p.MaxBytes <= 0 {
		p.MaxBytes = DefaultMaxBytes
	}
	if p.MaxWait <= 0 {
		p.MaxWait = DefaultMaxWait
	}
	return p
}

// RejectedError is returned by Sink.Write when the target permanently refused
// one event of the batch (an Elasticsearch 400, an oversized Kafka record, a
// failing projection statement): retrying will not help. Events before Index
// are durable; events after Index may or may not be, and are written again.
// The pipeline then follows the sink's on_error setting: stop the sink, or
// write the event to the dead-letter table and go on with the rest.
type RejectedError struct {
	Index int   // index of the rejected event in Batch.Events
	Err   error // why the target refused it
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("event %d of the batch rejected: %v", e.Index, e.Err)
}

func (e *RejectedError) Unwrap() error { return e.Err }

// ErrMisconfigured matches the errors a sink returns when its target is set
// up in a way that retrying cannot fix (a missing Kafka topic without
// create_topics, index settings Elasticsearch refuses): a sink checked at
// start up is then not started, while other failures are retried. Sinks
// declare such errors with Misconfigured.
var ErrMisconfigured = errors.New("the sink's target is misconfigured")

// Misconfigured returns a sentinel error with message msg that matches
// ErrMisconfigured under errors.Is.
func Misconfigured(msg string) error { return misconfigured{msg} }

type misconfigured struct{ msg string }

func (e misconfigured) Error() string      { return e.msg }
func (misconfigured) Is(target error) bool { return target == ErrMisconfigured }
