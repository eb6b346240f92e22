package cdc

import (
	"errors"
	"time"
)

// Checkpoint is one sink's durable position and the progress figures the
// active instance reports with it. The pipeline saves it only after the sink
// has durably accepted every event at or below Position; package checkpoint
// stores it in cdc_checkpoints.
type Checkpoint struct {
	Position   Position  // everything at or below has been durably accepted
	Flush      LSN       // end LSN of the last fully accepted transaction: what the slot may confirm for this sink
	CommitTime time.Time // commit time of the transaction at Position.LSN, zero if unknown
	Events     int64     // events delivered to the sink since the row was created
	Pending    int64     // events received by the active instance and not yet accepted
	Instance   string    // host and pid of the instance that wrote the row
	UpdatedAt  time.Time // when the row was written (set by the store)
	// State is the sink's state when the row was written (SinkOK,
	// SinkFailing, ...), since when, and the error behind it: what cdc
	// status shows of a sink a running instance holds.
	State SinkState
	Since time.Time
	Error string
}

// SinkState says how a sink is doing.
type SinkState string

// Sink states.
const (
	SinkOK       SinkState = "ok"       // writing, or idle
	SinkFailing  SinkState = "failing"  // its writes (or its target, at start) fail; retried with backoff
	SinkDetached SinkState = "detached" // failing or stalled, left behind; it catches up when it recovers
	SinkStopped  SinkState = "stopped"  // stopped just before an event its target rejected (on_error: stop)
	// SinkBackfilling: a backfill (source.start: beginning, a sink's
	// start: beginning, cdc replay) is filling it from mt_events; it takes
	// the live stream again once done.
	SinkBackfilling SinkState = "backfilling"
)

// ErrCheckpointBackwards is returned when saving a checkpoint older than the
// stored one: checkpoints only move forward, so an instance that lost the
// slot can neither move one back nor overwrite a newer one (the fencing of
// SPEC §3).
var ErrCheckpointBackwards = errors.New("checkpoint would move backwards")
