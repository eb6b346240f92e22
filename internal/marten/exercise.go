package marten

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// DB runs statements and transactions. *pgxpool.Pool and *pgx.Conn satisfy
// it.
type DB interface {
	Execer
	Querier
	Beginner
}

// SampleEvents returns one new event per type for stream, with bodies that
// carry quotes, an accent and markup, and with correlation id, causation id
// and headers on the first event.
func SampleEvents(stream string, types ...string) []NewEvent {
	out := make([]NewEvent, len(types))
	for i, typ := range types {
		out[i] = NewEvent{
			ID:         NewID(),
			Type:       typ,
			DotnetType: HelpdeskDotnetType(typ),
			Data:       json.RawMessage(fmt.Sprintf(`{"IncidentId":%q,"N":%d,"Note":"caf\u00e9 \"q\" <b>"}`, stream, i)),
		}
		if i == 0 {
			out[i].CorrelationID, out[i].CausationID = "corr-"+stream, "cmd-"+stream
			out[i].Headers = json.RawMessage(`{"source":"test","attempt":1}`)
		}
	}
	return out
}

// IDs returns the ids of events, in order.
func IDs(events []NewEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// NewStreamID returns a new stream id for the store's layout: a uuid, or a
// string id ("incident-…") under string stream identity.
func (s Store) NewStreamID() string {
	if t, _ := s.Layout.traits(); t.stringIDs {
		return "incident-" + NewID()[24:]
	}
	return NewID()
}

// Exercise is what a change-data-capture reader of this store must get
// right, written for tenantID from one goroutine so that commit order is
// call order:
//   - the quick-append function, on a new stream;
//   - per-event INSERTs with the seq_id drawn inline by nextval (a new
//     stream, then an existing one);
//   - Rich mode (seq_ids fetched ahead, then INSERTs);
//   - a Rich append that fails after drawing its seq_ids (a type name too
//     long for varchar(500)), which Marten fills with two tombstones;
//   - a quick append that is rolled back;
//   - one COPY of bulkStreams streams × bulkEvents events in one
//     transaction;
//   - a last quick append to an existing stream.
//
// It returns the ids of the events a reader must deliver, in commit order,
// and the ids of the COPY's events among them.
func (s Store) Exercise(ctx context.Context, db DB, tenantID string, bulkStreams, bulkEvents int) (want, copied []string, err error) {
	a, b := s.NewStreamID(), s.NewStreamID()
	step := func(what string, events []NewEvent, err error) error {
		if err != nil {
			return fmt.Errorf("exercise %v store, tenant %q: %s: %w", s.Layout, tenantID, what, err)
		}
		want = append(want, IDs(events)...)
		return nil
	}

	e := SampleEvents(a, "incident_logged", "incident_categorised")
	_, _, err = s.QuickAppend(ctx, db, a, "incident", tenantID, e)
	if err := step("quick append (new stream)", e, err); err != nil {
		return nil, nil, err
	}
	e = SampleEvents(b, "incident_logged", "incident_prioritised")
	_, err = s.StartStreamQuick(ctx, db, b, "incident", tenantID, e)
	if err := step("start stream with inline nextval", e, err); err != nil {
		return nil, nil, err
	}
	e = SampleEvents(a, "agent_assigned_to_incident")
	_, _, err = s.InsertInline(ctx, db, a, "incident", tenantID, e)
	if err := step("inline nextval insert", e, err); err != nil {
		return nil, nil, err
	}
	e = SampleEvents(b, "agent_responded_to_incident", "incident_resolved")
	_, _, err = s.AppendRich(ctx, db, b, "incident", tenantID, e)
	if err := step("rich append", e, err); err != nil {
		return nil, nil, err
	}

	bad := SampleEvents(b, strings.Repeat("x", 501), "incident_closed")
	_, drawn, err := s.AppendRich(ctx, db, b, "incident", tenantID, bad)
	if err == nil || len(drawn) != len(bad) {
		return nil, nil, fmt.Errorf("exercise %v store: a rich append with a 501-character type: err %v, %d seq_ids drawn; want an error after drawing %d",
			s.Layout, err, len(drawn), len(bad))
	}
	if err := s.InsertTombstones(ctx, db, tenantID, drawn); err != nil {
		return nil, nil, fmt.Errorf("exercise %v store: %w", s.Layout, err)
	}

	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("exercise %v store: %w", s.Layout, err)
	}
	_, _, err = s.QuickAppend(ctx, tx, a, "incident", tenantID, SampleEvents(a, "incident_closed"))
	err = errors.Join(err, tx.Rollback(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("exercise %v store: quick append to roll back: %w", s.Layout, err)
	}

	types := HelpdeskEventTypes()
	var bulk []StreamEvents
	for range bulkStreams {
		id := s.NewStreamID()
		names := make([]string, bulkEvents)
		for i := range names {
			names[i] = types[i%len(types)]
		}
		e := SampleEvents(id, names...)
		bulk = append(bulk, StreamEvents{StreamID: id, StreamType: "incident", TenantID: tenantID, Events: e})
		copied = append(copied, IDs(e)...)
	}
	if _, err := s.CopyEvents(ctx, db, bulk); err != nil {
		return nil, nil, fmt.Errorf("exercise %v store: %w", s.Layout, err)
	}
	want = append(want, copied...)

	e = SampleEvents(a, "incident_closed")
	_, _, err = s.QuickAppend(ctx, db, a, "incident", tenantID, e)
	if err := step("quick append (existing stream)", e, err); err != nil {
		return nil, nil, err
	}
	return want, copied, nil
}
