package marten

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// NewEvent is an event to append, with the values Marten puts in the
// columns of mt_events. Values whose column the store's layout lacks
// (correlation and causation ids and headers under [LayoutMarten7],
// UserName outside [LayoutMarten9]) are not written; BData and Skipped are
// refused where their column is missing.
type NewEvent struct {
	// ID is the event id (mt_events.id), a uuid in canonical text form.
	// Required; Marten generates it client-side, see NewID.
	ID string
	// Type is the event type alias (mt_events.type), e.g. "incident_logged".
	Type string
	// DotnetType is the .NET type name (mt_events.mt_dotnet_type), e.g.
	// "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api".
	DotnetType string
	// Data is the event body as JSON (mt_events.data). Required unless
	// BData is set; then empty Data writes '{}'.
	Data json.RawMessage
	// BData is the body of a binary-serialized event (mt_events.bdata,
	// Marten 9 layouts only); nil writes NULL. Marten 9 stores such events
	// with the JSON placeholder '{}' in data (its quick-append function
	// says so: bodies[index] is the {} placeholder for those events); that
	// is what an empty Data with BData set writes.
	BData []byte
	// CausationID is mt_events.causation_id; empty writes NULL.
	CausationID string
	// CorrelationID is mt_events.correlation_id; empty writes NULL.
	CorrelationID string
	// Headers is a JSON object (mt_events.headers); nil writes NULL.
	Headers json.RawMessage
	// UserName is mt_events.user_name (MetadataConfig.UserNameEnabled, in
	// [LayoutMarten9]); empty writes NULL.
	UserName string
	// Skipped writes is_skipped = TRUE ([LayoutMarten9] only), the flag
	// Marten's async daemon sets on events it skips. QuickAppend refuses it:
	// mt_quick_append_events has no is_skipped parameter.
	Skipped bool
	// Timestamp is mt_events.timestamp for the paths that take the client's
	// clock (AppendRich, CopyEvents, and QuickAppend in Marten 9 layouts,
	// whose function takes a timestamps array); zero means the time of the
	// call. The other paths stamp events with the server clock.
	Timestamp time.Time
}

// event is a validated NewEvent, typed for pgx.
type event struct {
	id          pgtype.UUID
	typ         string
	dotnetType  pgtype.Text
	data        []byte
	bdata       []byte // nil encodes as NULL
	causation   pgtype.Text
	correlation pgtype.Text
	headers     []byte // nil encodes as NULL
	userName    pgtype.Text
	skipped     bool
	timestamp   time.Time
}

// prepare validates events for a store with traits t and types them. now
// stands in for zero timestamps.
func (t traits) prepare(events []NewEvent, now time.Time) ([]event, error) {
	if len(events) == 0 {
		return nil, errors.New("no events")
	}
	out := make([]event, len(events))
	for i, e := range events {
		id, err := parseUUID(e.ID)
		if err != nil {
			return nil, fmt.Errorf("event %d: id: %w", i, err)
		}
		if e.Type == "" {
			return nil, fmt.Errorf("event %d: empty type", i)
		}
		data := []byte(e.Data)
		switch {
		case len(data) == 0 && e.BData != nil:
			data = []byte("{}")
		case len(data) == 0:
			return nil, fmt.Errorf("event %d: empty data", i)
		case !json.Valid(data):
			return nil, fmt.Errorf("event %d: data is not valid JSON", i)
		}
		if e.Headers != nil && !json.Valid(e.Headers) {
			return nil, fmt.Errorf("event %d: headers are not valid JSON", i)
		}
		if e.BData != nil && !t.bdata() {
			return nil, fmt.Errorf("event %d: binary data needs a Marten 9 layout (mt_events has no bdata in %s)", i, t.name)
		}
		if e.Skipped && !t.skipping {
			return nil, fmt.Errorf("event %d: skipped events need mt_events.is_skipped, which %s lacks", i, t.name)
		}
		ts := e.Timestamp
		if ts.IsZero() {
			ts = now
		}
		out[i] = event{
			id:          pgtype.UUID{Bytes: id, Valid: true},
			typ:         e.Type,
			dotnetType:  text(e.DotnetType),
			data:        data,
			bdata:       e.BData,
			causation:   text(e.CausationID),
			correlation: text(e.CorrelationID),
			headers:     []byte(e.Headers),
			userName:    text(e.UserName),
			skipped:     e.Skipped,
			timestamp:   ts,
		}
	}
	return out, nil
}

// text is s as a nullable text value: NULL when empty.
func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

// tenant returns tenantID, or DefaultTenantID when it is empty.
func tenant(tenantID string) string {
	if tenantID == "" {
		return DefaultTenantID
	}
	return tenantID
}
