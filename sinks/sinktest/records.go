package sinktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/martencdc/cdc"
)

// Record is what a target holds of one event: enough to tell which event
// it is and to check the order of its stream.
type Record struct {
	// ID is the event id, or "" when the target does not keep it (a
	// document per stream, merged from its events): the event is then
	// known by StreamID and Version.
	ID string
	// StreamID is the event's stream id.
	StreamID string
	// Version is the event's version in its stream.
	Version int64
}

// RecordOf returns the record of e.
func RecordOf(e *cdc.Event) Record {
	return Record{ID: e.ID, StreamID: e.StreamID, Version: e.Version}
}

// String formats the record as "<id> (stream <stream id> version <v>)".
func (r Record) String() string {
	id := r.ID
	if id == "" {
		id = "event"
	}
	return fmt.Sprintf("%s (stream %s version %d)", id, r.StreamID, r.Version)
}

// Unit is one ordering unit of a target: a part within which the target
// keeps what it is given in order (a Kafka partition, a file, an index read
// in a stable order, a table read by insertion order or seq_id), and the
// records it holds, in that order.
type Unit struct {
	// Name names the unit in failure messages, e.g. "topic/3" or
	// "acme/incident_logged.jsonl".
	Name string
	// Records are the records the unit holds, in the unit's order,
	// duplicates included.
	Records []Record
}

// ParseEnvelope returns the record of the JSON envelope (see package
// envelope) in b: its "id", "stream_id" and "version".
func ParseEnvelope(b []byte) (Record, error) {
	var env struct {
		ID       *string          `json:"id"`
		StreamID *string          `json:"stream_id"`
		Version  *json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return Record{}, fmt.Errorf("not a JSON envelope: %w", err)
	}
	if env.ID == nil || env.StreamID == nil || env.Version == nil {
		return Record{}, errors.New("not a JSON envelope: id, stream_id or version missing")
	}
	v, err := strconv.ParseInt(string(*env.Version), 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("envelope of event %s: version %s: %w", *env.ID, *env.Version, err)
	}
	return Record{ID: *env.ID, StreamID: *env.StreamID, Version: v}, nil
}

// ParseLines returns the records of JSON lines of envelopes (the output of
// the stdout and file sinks), in order. Empty lines are skipped: a sink may
// end a line torn by a failed write with a newline of its own.
func ParseLines(data []byte) ([]Record, error) {
	var out []Record
	for n := 1; len(data) > 0; n++ {
		line, rest, found := bytes.Cut(data, []byte{'\n'})
		data = rest
		if !found {
			return out, fmt.Errorf("line %d: no newline at the end: %.80q", n, line)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r, err := ParseEnvelope(line)
		if err != nil {
			return out, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}
