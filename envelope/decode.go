package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/martencdc/cdc"
)

// wire is the envelope as encoding/json reads it. Pointers tell null (or
// absent) from an empty string.
type wire struct {
	ID            *string         `json:"id"`
	SeqID         int64           `json:"seq_id"`
	StreamID      *string         `json:"stream_id"`
	Version       int64           `json:"version"`
	Type          *string         `json:"type"`
	DotnetType    *string         `json:"dotnet_type"`
	TenantID      *string         `json:"tenant_id"`
	Timestamp     *string         `json:"timestamp"`
	Data          json.RawMessage `json:"data"`
	CorrelationID *string         `json:"correlation_id"`
	CausationID   *string         `json:"causation_id"`
	Headers       json.RawMessage `json:"headers"`
	UserName      *string         `json:"user_name"`
	LSN           *string         `json:"lsn"`
	CommitTime    *string         `json:"commit_time"`
}

// Decode parses a JSON envelope, as Append writes it or as PostgreSQL's
// jsonb gives it back (keys in any order, other white space), into an
// event. It is the inverse of Append: Append(nil, Decode(Append(nil, e)))
// is byte for byte Append(nil, e), with one exception: invalid UTF-8, which
// Append writes as the escape \ufffd, comes back as the character U+FFFD
// itself, which Append writes unescaped.
//
// The envelope does not carry everything an event has: Index (the row's
// index in its transaction), TxID and BData are left zero; a caller that
// knows the index (the dead-letter table stores it) sets it. data and
// headers are kept as the JSON text they are in b; null gives nil, as do
// absent optional fields, and null strings give "".
func Decode(b []byte) (*cdc.Event, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	e := &cdc.Event{SeqID: w.SeqID, Version: w.Version}
	var missing []string
	for _, f := range []struct {
		name string
		src  *string
		dst  *string
	}{{"id", w.ID, &e.ID}, {"stream_id", w.StreamID, &e.StreamID}, {"type", w.Type, &e.Type}, {"lsn", w.LSN, nil}} {
		if f.src == nil {
			missing = append(missing, f.name)
		} else if f.dst != nil {
			*f.dst = *f.src
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("decode envelope: %w: %v", errMissing, missing)
	}
	e.DotnetType = deref(w.DotnetType)
	e.TenantID = deref(w.TenantID)
	e.CorrelationID = deref(w.CorrelationID)
	e.CausationID = deref(w.CausationID)
	e.UserName = deref(w.UserName)
	e.Data = raw(w.Data)
	e.Headers = raw(w.Headers)
	var err error
	if e.LSN, err = cdc.ParseLSN(*w.LSN); err != nil {
		return nil, fmt.Errorf("decode envelope: lsn: %w", err)
	}
	if e.Timestamp, err = parseTime(w.Timestamp); err != nil {
		return nil, fmt.Errorf("decode envelope: timestamp: %w", err)
	}
	if e.CommitTime, err = parseTime(w.CommitTime); err != nil {
		return nil, fmt.Errorf("decode envelope: commit_time: %w", err)
	}
	return e, nil
}

// errMissing is why an envelope without a required field is refused.
var errMissing = errors.New("required fields missing or null")

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// raw returns an embedded JSON value, nil for null or absent.
func raw(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}

// parseTime parses an RFC 3339 time; null gives the zero time, as Append
// writes the zero time as null.
func parseTime(s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}
