package config

import (
	"time"

	"github.com/martencdc/cdc"
)

// Defaults applied by [Parse] to keys left out of the file.
const (
	DefaultSchema         = "public"         // Source.Schema
	DefaultSlotPrefix     = "cdc_"           // Source.Slot and Source.Publication are DefaultSlotPrefix + pipeline name
	DefaultStart          = StartNow         // Source.Start
	DefaultStandbyRetry   = 1 * time.Second  // Pipeline.StandbyRetry
	DefaultStatusInterval = 1 * time.Second  // Pipeline.StatusInterval
	DefaultTimeout        = 30 * time.Second // Source.Timeout
	DefaultShutdown       = 20 * time.Second // Pipeline.ShutdownTimeout
	DefaultFailureGrace   = 1 * time.Minute  // Pipeline.FailureGrace
	DefaultOnError        = OnErrorStop      // Sink.OnError
)

// MaxPipelineNameLen is the longest pipeline name, in bytes: with
// [DefaultSlotPrefix] the default slot name stays within PostgreSQL's 63 bytes.
const MaxPipelineNameLen = 40

// Config is a whole configuration file.
type Config struct {
	Pipelines []Pipeline // at least one; names are unique
}

// Pipeline returns the pipeline called name, for --pipeline flags.
func (c *Config) Pipeline(name string) (*Pipeline, bool) {
	for i := range c.Pipelines {
		if c.Pipelines[i].Name == name {
			return &c.Pipelines[i], true
		}
	}
	return nil, false
}

// Pipeline is one replication slot feeding a set of sinks.
type Pipeline struct {
	// Name identifies the pipeline in flags, logs, metrics and checkpoints,
	// and names its slot and publication unless they are set. It matches
	// ^[a-z][a-z0-9_]*$ and has at most MaxPipelineNameLen bytes. Required.
	Name string
	// Source is where the events are read from.
	Source Source
	// Checkpoints is where the sinks' checkpoints are kept.
	Checkpoints Checkpoints
	// Sinks receive the events; at least one, names unique in the pipeline.
	Sinks []Sink
	// StandbyRetry is how often a standby instance (one that found the slot
	// active) tries to take the slot again. Default 1s.
	StandbyRetry time.Duration
	// StatusInterval is how often standby status updates (the confirmed
	// flush position) are sent to PostgreSQL. Default 1s.
	StatusInterval time.Duration
	// ShutdownTimeout bounds a clean stop (SIGTERM): within it every sink
	// writes what it holds and saves its checkpoint; a sink that cannot is
	// abandoned and resumes from its checkpoint at the next start.
	// Default 20s.
	ShutdownTimeout time.Duration
	// FailureGrace is how long a sink may fail, or the stream reconnect,
	// before /readyz reports the pipeline unready. Default 1m.
	FailureGrace time.Duration
	// Backfill tunes the pipeline's backfills (start: beginning, cdc
	// replay).
	Backfill BackfillOptions
}

// Sink returns the pipeline's sink called name, for --sink flags.
func (p *Pipeline) Sink(name string) (*Sink, bool) {
	for i := range p.Sinks {
		if p.Sinks[i].Name == name {
			return &p.Sinks[i], true
		}
	}
	return nil, false
}

// Source says where a pipeline reads Marten's events.
type Source struct {
	// DSN is the connection string, libpq URL or key=value form, of a role
	// with the REPLICATION privilege. Required. It may hold a password:
	// show it only through [Redact].
	DSN string
	// Schema is the schema of Marten's mt_events table, a lower-case
	// identifier. Default "public".
	Schema string
	// Slot is the logical replication slot; 1 to 63 of [a-z0-9_].
	// Default "cdc_" + pipeline name.
	Slot string
	// Publication is the publication the slot reads; same rule as Slot.
	// Default "cdc_" + pipeline name.
	Publication string
	// Filter is an optional publication row filter (PostgreSQL 15+), an SQL
	// expression such as "tenant_id::text in ('acme','globex')" (compare varchar columns as text). Default "": all rows.
	Filter string
	// Start says where a new slot starts: StartNow, or StartBeginning to
	// backfill every sink with the events already in mt_events first.
	// Default StartNow.
	Start Start
	// Timeout is how long the replication connection may carry nothing
	// from the server before cdc drops it and reconnects; PostgreSQL is
	// told to end a silent cdc connection after the same time
	// (wal_sender_timeout). Default 30s.
	Timeout time.Duration
}

// BackfillOptions tune how a backfill reads mt_events.
type BackfillOptions struct {
	// PageSize is how many rows a backfill reads at a time; 0 means the
	// default (1000).
	PageSize int
	// PagesInFlight is how many pages a sink may hold that it has not made
	// durable; 0 means the default (4). Memory grows with PageSize ×
	// PagesInFlight.
	PagesInFlight int
}

// Start says where a pipeline whose slot does not exist yet, or a sink with
// no checkpoint yet, starts reading.
type Start string

const (
	// StartNow delivers only events appended after the slot is created.
	StartNow Start = "now"
	// StartBeginning first backfills every event already in mt_events.
	StartBeginning Start = "beginning"
)

// Checkpoints says where a pipeline keeps its sinks' checkpoints (table
// cdc_checkpoints, package checkpoint) and dead letters (cdc_dead_letters).
type Checkpoints struct {
	// DSN is the connection string of the checkpoint database.
	// Default: Source.DSN. May hold a password: show it only through [Redact].
	DSN string
	// Schema is the schema of the checkpoint table, a lower-case identifier.
	// Default: Source.Schema.
	Schema string
}

// Sink is one destination of a pipeline's events.
type Sink struct {
	// Name identifies the sink in flags, logs, metrics and its checkpoint;
	// it matches ^[a-z][a-z0-9_-]*$ and is unique in its pipeline. Required.
	Name string
	// Kind is the sink kind, e.g. "stdout". Required.
	Kind string
	// Include lists event-type globs (path.Match syntax); an event is
	// delivered only if its type matches one. Default empty: all types.
	Include []string
	// Exclude lists event-type globs of events never delivered, even if
	// included. Default empty.
	Exclude []string
	// Tenants lists the tenant ids delivered. Default empty: all tenants.
	Tenants []string
	// Batch says when a pending batch is written. Its zero fields are set
	// to cdc.BatchPolicy's defaults (5000 events, 4 MiB, 10ms).
	Batch cdc.BatchPolicy
	// OnError says what happens to an event the sink rejects permanently.
	// Default OnErrorStop.
	OnError OnError
	// Start says where a sink with no checkpoint yet (new, or added to an
	// existing pipeline) starts: StartNow (the default) with what the slot
	// delivers next, StartBeginning with every event already in mt_events
	// (a backfill), then the live stream.
	Start Start
	// MartenProgress writes the sink's position into Marten's
	// mt_event_progression table (rows cdc:<pipeline>:<sink>, see package
	// progression). Default false.
	MartenProgress bool
	// Options holds the kind's own settings: *StdoutOptions for "stdout",
	// *FileOptions for "file".
	Options SinkOptions
}

// OnError says what a sink does with a poison event, one it rejects permanently.
type OnError string

const (
	// OnErrorStop stops the sink and reports the event.
	OnErrorStop OnError = "stop"
	// OnErrorDeadLetter writes the event to the dead-letter table
	// cdc_dead_letters and goes on.
	OnErrorDeadLetter OnError = "dead_letter"
)

// SinkOptions is the kind-specific part of a sink's configuration. Each kind
// has its own struct; type-switch on it or check Kind.
type SinkOptions interface {
	// Kind returns the sink kind the options belong to, e.g. "stdout".
	Kind() string
}

// StdoutOptions configures a "stdout" sink, which writes one JSON envelope
// per line to standard output. It has no keys of its own.
type StdoutOptions struct{}

// Kind returns "stdout".
func (*StdoutOptions) Kind() string { return "stdout" }
