package elastic

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/route"
)

// TestEventsDocuments checks each event's document: index from the
// template, _id, external version = seq_id, body = the envelope.
func TestEventsDocuments(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		index  func(*cdc.Event) string
		id     func(*cdc.Event) string
		events []*cdc.Event
	}{
		{
			name:   "constant index",
			cfg:    Config{},
			index:  func(*cdc.Event) string { return "cdc" },
			id:     func(e *cdc.Event) string { return e.ID },
			events: makeEvents(10, 3, 100, 1),
		},
		{
			name:   "index per type",
			cfg:    Config{Index: route.MustParse("helpdesk-{{.Type}}")},
			index:  func(e *cdc.Event) string { return "helpdesk-" + e.Type },
			id:     func(e *cdc.Event) string { return e.ID },
			events: makeEvents(10, 3, 100, 1),
		},
		{
			name:   "tenant prefix",
			cfg:    Config{Index: route.MustParse("helpdesk-{{.TenantID}}"), TenantPrefix: true},
			index:  func(e *cdc.Event) string { return "helpdesk-" + e.TenantID },
			id:     func(e *cdc.Event) string { return e.TenantID + ":" + e.ID },
			events: makeEvents(10, 3, 100, 1),
		},
		{
			name:  "json with line feeds",
			cfg:   Config{},
			index: func(*cdc.Event) string { return "cdc" },
			id:    func(e *cdc.Event) string { return e.ID },
			events: []*cdc.Event{
				event("s1", 1, 1, "note", "{\n  \"text\": \"two\\nlines\"\n}"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			s := newSink(t, srv, tt.cfg)
			write(t, s, tt.events)
			for _, e := range tt.events {
				wantDoc(t, srv, tt.index(e), tt.id(e), e.SeqID, envelopeOf(e))
			}
		})
	}
}

// TestTenantPrefixKeepsTenantsApart writes events of two tenants with the
// same ids and seq_ids (tenant partitioning) into one index.
func TestTenantPrefixKeepsTenantsApart(t *testing.T) {
	for _, mode := range []Mode{ModeEvents, ModeLatest} {
		t.Run(string(mode), func(t *testing.T) {
			srv := newServer(t)
			s := newSink(t, srv, Config{Mode: mode, TenantPrefix: true})
			a := event("stream-1", 1, 1, "incident_logged", `{"Tenant":"acme"}`)
			a.TenantID = "acme"
			g := event("stream-1", 1, 1, "incident_logged", `{"Tenant":"globex"}`)
			g.TenantID = "globex"
			write(t, s, []*cdc.Event{a, g})
			docs := srv.Docs("cdc")
			if len(docs) != 2 {
				t.Fatalf("%d documents, want 2: %v", len(docs), keys(docs))
			}
			for _, e := range []*cdc.Event{a, g} {
				id := e.TenantID + ":" + e.ID
				if mode == ModeLatest {
					id = e.TenantID + ":" + e.StreamID
				}
				d, ok := docs[id]
				if !ok {
					t.Fatalf("no document %s: %v", id, keys(docs))
				}
				if !strings.Contains(string(d.Source), e.TenantID) {
					t.Errorf("document %s holds %s", id, d.Source)
				}
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRedelivery writes batches again, whole and in part, as the pipeline
// does after a crash or a replay: 409s count as success and change nothing.
func TestRedelivery(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{})
	events := makeEvents(20, 5, 50, 1)
	write(t, s, events[:60])
	before := srv.Docs("cdc")
	conflicts := srv.Stats().ItemConflicts
	write(t, s, events[:60])   // the same batch again
	write(t, s, events[30:])   // overlapping
	write(t, s, events[10:20]) // an old part
	if got := srv.Stats().ItemConflicts - conflicts; got != 60+30+10 {
		t.Errorf("%d items answered 409, want %d", got, 60+30+10)
	}
	after := srv.Docs("cdc")
	if len(after) != len(events) {
		t.Fatalf("%d documents, want %d", len(after), len(events))
	}
	for id, d := range before {
		if a := after[id]; a.Version != d.Version || a.SeqNo != d.SeqNo {
			t.Errorf("document %s rewritten: version %d seq_no %d, was %d %d", id, a.Version, a.SeqNo, d.Version, d.SeqNo)
		}
	}
	for _, e := range events {
		wantDoc(t, srv, "cdc", e.ID, e.SeqID, envelopeOf(e))
	}
}

// TestItem429 has Elasticsearch refuse items with 429: they are sent again
// in new rounds until every document is written.
func TestItem429(t *testing.T) {
	tests := []struct {
		name     string
		mode     Mode
		refuse   int
		streams  int
		versions int
	}{
		{"events, half the batch", ModeEvents, 50, 100, 1},
		{"events, more than the batch", ModeEvents, 250, 100, 1},
		{"latest", ModeLatest, 30, 50, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			s := newSink(t, srv, Config{Mode: tt.mode, FlushBytes: 8 << 10})
			srv.RejectItems(tt.refuse)
			events := makeEvents(tt.streams, tt.versions, 100, 1)
			write(t, s, events)
			if got := srv.Stats().Items429; got != int64(tt.refuse) {
				t.Errorf("%d items refused with 429, want %d", got, tt.refuse)
			}
			docs := srv.Docs("cdc")
			if want := tt.streams * tt.versions; tt.mode == ModeEvents && len(docs) != want {
				t.Fatalf("%d documents, want %d", len(docs), want)
			}
			if tt.mode == ModeLatest && len(docs) != tt.streams {
				t.Fatalf("%d documents, want %d", len(docs), tt.streams)
			}
			for _, e := range events {
				if tt.mode == ModeEvents {
					wantDoc(t, srv, "cdc", e.ID, e.SeqID, envelopeOf(e))
				} else if d := docs[e.StreamID]; d.Version != int64(tt.versions) {
					t.Errorf("stream %s at version %d, want %d", e.StreamID, d.Version, tt.versions)
				}
			}
		})
	}
}

// TestItem429Exhausted keeps refusing one item: Write gives up after its
// rounds with a plain error, and a later Write succeeds.
func TestItem429Exhausted(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{})
	s.maxRounds = 3
	events := makeEvents(5, 1, 10, 1)
	stubborn := events[2].ID
	srv.RejectItemsWhere(func(_, id string) bool { return id == stubborn })
	err := s.Write(context.Background(), cdc.Batch{Events: events})
	var rej *cdc.RejectedError
	if err == nil || errors.As(err, &rej) || !strings.Contains(err.Error(), "429") {
		t.Fatalf("want a plain error about 429, got %v", err)
	}
	srv.RejectItemsWhere(nil)
	write(t, s, events)
	if n := len(srv.Docs("cdc")); n != len(events) {
		t.Fatalf("%d documents, want %d", n, len(events))
	}
}

// TestRequestRetries has whole bulk requests refused: the client retries a
// few times, then Write returns a plain error for the pipeline to retry.
func TestRequestRetries(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		status  int
		wantErr bool
	}{
		{"429 twice", 2, 429, false},
		{"503 three times", 3, 503, false},
		{"502 once", 1, 502, false},
		{"504 once", 1, 504, false},
		{"503 beyond the client's retries", 50, 503, true},
		{"500 is not retried", 1, 500, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			s := newSink(t, srv, Config{Workers: 1})
			events := makeEvents(10, 1, 10, 1)
			srv.RejectRequests(tt.n, tt.status)
			err := s.Write(context.Background(), cdc.Batch{Events: events})
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if got := srv.Stats().RequestsRejected; got != int64(tt.n) {
					t.Errorf("%d requests rejected, want %d", got, tt.n)
				}
				if n := len(srv.Docs("cdc")); n != len(events) {
					t.Fatalf("%d documents, want %d", n, len(events))
				}
				return
			}
			var rej *cdc.RejectedError
			if err == nil || errors.As(err, &rej) {
				t.Fatalf("want a plain error, got %v", err)
			}
			srv.RejectRequests(0, 0)
			write(t, s, events) // the pipeline's retry
			if n := len(srv.Docs("cdc")); n != len(events) {
				t.Fatalf("%d documents, want %d", n, len(events))
			}
		})
	}
}

// TestMappingConflict sends a document whose field conflicts with the
// index's mapping: the event is rejected once every event before it is
// written.
func TestMappingConflict(t *testing.T) {
	for _, mode := range []Mode{ModeEvents, ModeLatest} {
		t.Run(string(mode), func(t *testing.T) {
			srv := newServer(t)
			s := newSink(t, srv, Config{Mode: mode, FlushBytes: 4 << 10})
			// The first batch maps Priority as a number.
			write(t, s, []*cdc.Event{event("s0", 1, 1, "incident_logged", `{"Priority":1}`)})
			var events []*cdc.Event
			for i := range 40 {
				stream := "s" + string(rune('a'+i%20))
				events = append(events, event(stream, int64(1+i/20), int64(10+i), "incident_prioritised", `{"Priority":2}`))
			}
			const bad = 25
			events[bad].Data = json.RawMessage(`{"Priority":{"level":"high"}}`)
			err := s.Write(context.Background(), cdc.Batch{Events: events})
			rej := rejected(t, err)
			if rej.Index != bad {
				t.Fatalf("rejected event %d, want %d: %v", rej.Index, bad, err)
			}
			var ee *ESError
			if !errors.As(err, &ee) || ee.Status != 400 {
				t.Fatalf("want a 400 ESError, got %v", err)
			}
			for _, e := range events[:bad] {
				id, version := e.ID, e.SeqID
				if mode == ModeLatest {
					id, version = e.StreamID, e.Version
				}
				d, ok := srv.Doc("cdc", id)
				if !ok || d.Version < version {
					t.Errorf("event %d: document %s missing or at version %d", e.SeqID, id, d.Version)
				}
			}
			// The pipeline dead-letters the event and goes on.
			write(t, s, events[bad+1:])
		})
	}
}

// TestRejectedBeforeSending has events that cannot be routed: the events
// before them are written, nothing after them.
func TestRejectedBeforeSending(t *testing.T) {
	tests := []struct {
		name     string
		template string
		mode     Mode
		spoil    func(*cdc.Event)
		why      string
	}{
		{"uppercase index", "helpdesk-{{.Type}}", ModeEvents, func(e *cdc.Event) { e.Type = "IncidentLogged" }, "lowercase"},
		{"index with a space", "helpdesk-{{.Type}}", ModeEvents, func(e *cdc.Event) { e.Type = "incident logged" }, "spaces"},
		{"template failing", `helpdesk-{{slice .Type 0 12}}`, ModeEvents, func(e *cdc.Event) { e.Type = "short" }, "slice"},
		{"id too long", "cdc", ModeEvents, func(e *cdc.Event) { e.ID = strings.Repeat("x", 600) }, "512"},
		{"id with a control character", "cdc", ModeLatest, func(e *cdc.Event) { e.StreamID = "a\x00b" }, "control"},
		{"data not an object", "cdc", ModeLatest, func(e *cdc.Event) { e.Data = json.RawMessage(`[1,2]`) }, "not a JSON object"},
		{"invalid json with a line feed", "cdc", ModeEvents, func(e *cdc.Event) { e.Data = json.RawMessage("{\n") }, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			s := newSink(t, srv, Config{Index: route.MustParse(tt.template), Mode: tt.mode})
			events := makeEvents(10, 1, 10, 1)
			for _, e := range events {
				e.Type = "incident_logged_x"
			}
			const bad = 4
			tt.spoil(events[bad])
			err := s.Write(context.Background(), cdc.Batch{Events: events})
			rej := rejected(t, err)
			if rej.Index != bad || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("rejected %d: %v; want %d, %q", rej.Index, err, bad, tt.why)
			}
			total := 0
			for _, ix := range srv.Indices() {
				total += len(srv.Docs(ix))
			}
			if total != bad {
				t.Fatalf("%d documents written, want the %d before the rejected event", total, bad)
			}
		})
	}
}

// TestInvalidIndexFromElasticsearch has Elasticsearch itself refuse an
// index name, bypassing the sink's own checks (which refuse what it
// refuses): at creation with the settings, and in a bulk item.
func TestInvalidIndexFromElasticsearch(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{IndexSettings: json.RawMessage(`{}`)})
	ctx := context.Background()
	if err := s.ensureIndex(ctx, "Bad"); !errors.Is(err, errInvalidIndex) || !strings.Contains(err.Error(), "invalid_index_name_exception") {
		t.Fatalf("ensureIndex: %v", err)
	}
	w := &batch{events: makeEvents(3, 1, 10, 1), cutoff: 3}
	docs := []*doc{
		{index: "cdc", id: "a", version: 1, body: []byte(`{}`), first: 0},
		{index: "Bad", id: "b", version: 1, body: []byte(`{}`), first: 1},
		{index: "cdc", id: "c", version: 1, body: []byte(`{}`), first: 2},
	}
	if err := s.send(ctx, w, docs); err != nil {
		t.Fatal(err)
	}
	if w.rejected == nil || w.rejected.Index != 1 || !strings.Contains(w.rejected.Error(), "invalid_index_name_exception") {
		t.Fatalf("rejected: %v", w.rejected)
	}
	if _, ok := srv.Doc("cdc", "a"); !ok {
		t.Fatal("the document before the rejected one is missing")
	}
}

// TestRequestTooLarge has a bulk request refused with 413: a document alone
// in its request is rejected, a request of several is a plain error.
func TestRequestTooLarge(t *testing.T) {
	srv := newServer(t)
	events := makeEvents(3, 1, 1200, 1) // each over FlushBytes: one per request

	s := newSink(t, srv, Config{Workers: 1, FlushBytes: 1024})
	srv.RejectRequests(1, 413)
	err := s.Write(context.Background(), cdc.Batch{Events: events})
	if rej := rejected(t, err); rej.Index != 0 || !strings.Contains(err.Error(), "http.max_content_length") {
		t.Fatalf("rejected %d: %v", rej.Index, err)
	}

	s = newSink(t, srv, Config{Workers: 1})
	srv.RejectRequests(1, 413)
	err = s.Write(context.Background(), cdc.Batch{Events: events})
	var rej *cdc.RejectedError
	if err == nil || errors.As(err, &rej) || !strings.Contains(err.Error(), "lower flush_bytes") {
		t.Fatalf("want a plain error about flush_bytes, got %v", err)
	}
}

// TestContextCancelled writes with a context already cancelled.
func TestContextCancelled(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, cdc.Batch{Events: makeEvents(3, 1, 10, 1)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// TestClose checks that Close is idempotent and that Write fails after it.
func TestClose(t *testing.T) {
	srv := newServer(t)
	s := newSink(t, srv, Config{})
	write(t, s, makeEvents(3, 1, 10, 1))
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: makeEvents(1, 1, 10, 100)}); !errors.Is(err, errClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if lines := s.Check(context.Background()); len(lines) != 1 {
		t.Fatalf("Check after Close: %q", lines)
	}
	if err := s.Write(context.Background(), cdc.Batch{}); err != nil {
		t.Fatalf("empty Write: %v", err)
	}
}

// TestCloseWhileWriting closes the sink while a bulk request hangs: Close
// gives up when its context ends, the Write returns, and later Writes fail.
func TestCloseWhileWriting(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer ts.Close()
	s, err := New(Config{Addresses: []string{ts.URL}, Index: route.MustParse("cdc"), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.Write(context.Background(), cdc.Batch{Events: makeEvents(2, 1, 10, 1)}) }()
	<-arrived
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
	close(release)
	if err := <-done; err == nil {
		t.Fatal("Write succeeded")
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: makeEvents(1, 1, 10, 9)}); !errors.Is(err, errClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}
