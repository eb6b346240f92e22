package elastic

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/martencdc/cdc"
)

// incident returns the events of one incident stream: logged, prioritised,
// closed. Applying version 2 after version 3 would set Priority back to 2.
func incident() []*cdc.Event {
	return []*cdc.Event{
		event("inc-1", 1, 11, "incident_logged", `{"Description":"Printer on fire","Priority":1,"Tags":{"a":true},"Big":1234567890123456789}`),
		event("inc-1", 2, 12, "incident_prioritised", `{"Priority":2,"Tags":{"b":true}}`),
		event("inc-1", 3, 13, "incident_closed", `{"Priority":3,"Tags":{"a":null},"Closed":true,"Description":null}`),
	}
}

// The incident's document after version 2 and after version 3.
const (
	incidentV2 = `{"@stream_id":"inc-1","@type":"incident_prioritised","@version":2,"@tenant_id":"*DEFAULT*",` +
		`"@timestamp":"2026-11-22T10:00:12Z","Description":"Printer on fire","Priority":2,"Tags":{"a":true,"b":true},"Big":1234567890123456789}`
	incidentV3 = `{"@stream_id":"inc-1","@type":"incident_closed","@version":3,"@tenant_id":"*DEFAULT*",` +
		`"@timestamp":"2026-11-22T10:00:13Z","Priority":3,"Tags":{"b":true},"Big":1234567890123456789,"Closed":true}`
)

// TestLatestDocuments writes the incident's events in various batches,
// stale and repeated ones included, and checks the document.
func TestLatestDocuments(t *testing.T) {
	ev := incident()
	tests := []struct {
		name    string
		batches [][]*cdc.Event
		version int64
		want    string
	}{
		{"one batch", [][]*cdc.Event{ev}, 3, incidentV3},
		{"two events", [][]*cdc.Event{ev[:2]}, 2, incidentV2},
		{"across batches", [][]*cdc.Event{ev[:1], ev[1:]}, 3, incidentV3},
		{"one event per batch", [][]*cdc.Event{ev[:1], ev[1:2], ev[2:]}, 3, incidentV3},
		{"stale batch after", [][]*cdc.Event{ev, ev[:2]}, 3, incidentV3},
		{"stale event alone", [][]*cdc.Event{ev, ev[1:2]}, 3, incidentV3},
		{"overlapping batches", [][]*cdc.Event{ev[:2], ev[1:]}, 3, incidentV3},
		{"replay of everything", [][]*cdc.Event{ev, ev}, 3, incidentV3},
		// Version 2 comes after 3: it is stale, and skipped.
		{"out of order in a batch", [][]*cdc.Event{{ev[0], ev[2], ev[1]}}, 3, strings.Replace(incidentV3, `"Tags":{"b":true}`, `"Tags":{}`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			s := newSink(t, srv, Config{Mode: ModeLatest})
			for _, b := range tt.batches {
				write(t, s, b)
			}
			wantDoc(t, srv, "cdc", "inc-1", tt.version, []byte(tt.want))
			if n := len(srv.Docs("cdc")); n != 1 {
				t.Errorf("%d documents, want 1", n)
			}
		})
	}
}

// TestLatestStaleWriteSkipped checks that a batch older than the stored
// document sends nothing, and that a newer one writes once per stream.
func TestLatestStaleWriteSkipped(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{Mode: ModeLatest})
	ev := incident()
	write(t, s, ev)
	before, _ := srv.Doc("cdc", "inc-1")
	stats := srv.Stats()
	write(t, s, ev[:2])
	after, _ := srv.Doc("cdc", "inc-1")
	if after.SeqNo != before.SeqNo || after.Version != before.Version {
		t.Fatalf("stale batch rewrote the document: %+v, was %+v", after, before)
	}
	if got := srv.Stats(); got.Items != stats.Items {
		t.Fatalf("stale batch sent %d bulk items", got.Items-stats.Items)
	}
}

// TestLatestOneItemPerStream writes several events of each stream in one
// batch: one bulk item per stream.
func TestLatestOneItemPerStream(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{Mode: ModeLatest})
	events := makeEvents(7, 5, 20, 1)
	write(t, s, events)
	if got := srv.Stats().Items; got != 7 {
		t.Fatalf("%d bulk items, want 7", got)
	}
	docs := srv.Docs("cdc")
	for st := range 7 {
		id := events[st].StreamID
		d := docs[id]
		if d.Version != 5 {
			t.Errorf("stream %s at version %d, want 5", id, d.Version)
		}
		var got map[string]any
		if err := json.Unmarshal(d.Source, &got); err != nil {
			t.Fatal(err)
		}
		for v := 1; v <= 5; v++ {
			if got[keyV(v)] != true {
				t.Errorf("stream %s lacks the member of version %d: %s", id, v, d.Source)
			}
		}
		if got["Step"] != 5.0 || got["@type"] != eventTypes[4%len(eventTypes)] {
			t.Errorf("stream %s: %s", id, d.Source)
		}
	}
}

func keyV(v int) string { return "V" + string(rune('0'+v)) }

// TestLatestStoredVersionWins has a document stored at a version newer than
// the batch by someone else: nothing is written, Write succeeds.
func TestLatestConcurrentWriter(t *testing.T) {
	srv := newServer(t)
	other := newSink(t, srv, Config{Mode: ModeLatest})
	s := newSink(t, srv, Config{Mode: ModeLatest})
	ev := incident()
	write(t, s, ev[:1])
	write(t, other, ev) // another instance got further
	write(t, s, ev[1:2])
	wantDoc(t, srv, "cdc", "inc-1", 3, []byte(incidentV3))
}

// TestLatestMergedRejection has one event of a stream make the merged
// document refused: the events of the stream before it are written, and
// it is the one rejected.
func TestLatestMergedRejection(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{Mode: ModeLatest})
	// Map N as a number first: within one batch, which of two documents
	// that disagree on a new field's type is indexed first (and sets the
	// mapping) depends on the bulk workers.
	write(t, s, []*cdc.Event{event("seed", 1, 100, "t", `{"N":0}`)})
	events := []*cdc.Event{
		event("a", 1, 1, "t", `{"N":1}`),
		event("b", 1, 2, "t", `{"N":1}`),
		event("a", 2, 3, "t", `{"M":"x"}`),
		event("a", 3, 4, "t", `{"N":2}`),
		event("a", 4, 5, "t", `{"N":{"deep":true}}`), // N is a number
		event("b", 2, 6, "t", `{"M":"y"}`),
		event("a", 5, 7, "t", `{"M":"z"}`),
	}
	err := s.Write(context.Background(), cdc.Batch{Events: events})
	if rej := rejected(t, err); rej.Index != 4 {
		t.Fatalf("rejected event %d, want 4: %v", rej.Index, err)
	}
	d, _ := srv.Doc("cdc", "a")
	if d.Version != 3 {
		t.Fatalf("stream a at version %d, want 3 (the events before the rejected one)", d.Version)
	}
	// The pipeline dead-letters event 4 and writes the rest.
	write(t, s, events[5:])
	wantDoc(t, srv, "cdc", "a", 5, []byte(`{"@stream_id":"a","@type":"t","@version":5,"@tenant_id":"*DEFAULT*","@timestamp":"2026-11-22T10:00:07Z","N":2,"M":"z"}`))
	wantDoc(t, srv, "cdc", "b", 2, []byte(`{"@stream_id":"b","@type":"t","@version":2,"@tenant_id":"*DEFAULT*","@timestamp":"2026-11-22T10:00:06Z","N":1,"M":"y"}`))
}

// TestLatestTwoMergedRejections has two refused documents: the event
// rejected is the earliest at fault, and of the other stream only what
// comes before it is written.
func TestLatestTwoMergedRejections(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{Mode: ModeLatest})
	write(t, s, []*cdc.Event{event("seed", 1, 100, "t", `{"N":0}`)})
	events := []*cdc.Event{
		event("a", 1, 1, "t", `{"M":1}`),
		event("x", 1, 2, "t", `{"M":1}`),
		event("a", 2, 3, "t", `{"N":{"bad":1}}`),
		event("x", 2, 4, "t", `{"N":{"bad":2}}`),
	}
	err := s.Write(context.Background(), cdc.Batch{Events: events})
	if rej := rejected(t, err); rej.Index != 2 {
		t.Fatalf("rejected event %d, want 2: %v", rej.Index, err)
	}
	for _, id := range []string{"a", "x"} {
		if d, ok := srv.Doc("cdc", id); !ok || d.Version != 1 {
			t.Errorf("stream %s: %+v, want version 1", id, d)
		}
	}
	err = s.Write(context.Background(), cdc.Batch{Events: events[3:]})
	if rej := rejected(t, err); rej.Index != 0 {
		t.Fatalf("rejected event %d, want 0: %v", rej.Index, err)
	}
}
