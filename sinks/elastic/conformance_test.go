package elastic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// TestConformance runs the sink conformance suite in both modes against a
// fresh fake Elasticsearch per subtest, with an index per tenant; both
// modes are idempotent (external versions, 409s count as success).
//
// The indices are created with a mapping that makes the data's Poison a
// long, so the poison event, whose Poison is an object, is refused with a
// 400 (document_parsing_exception) whichever document reaches the index
// first. No event of sinktest.StepData sets Poison. (In latest mode, a
// field of the poison that a later event of the batch overwrites, Step say,
// would be merged away: the document written would be accepted, and
// rightly so.)
//
// The target hangs by holding every bulk request unanswered: a node whose
// writes are stuck. The sink's other requests (_mget, index creation) are
// answered.
//
// In events mode each index is an ordering unit read by _id: documents are
// independent, and the sink promises no order among them (its workers send
// in parallel), so StreamOrder checks presence and uniqueness there. In
// latest mode each stream's document is a unit: the events' data are
// sinktest.StepData, so the merged document holds a key V<v> per version
// applied, in the order they were applied, which Read returns as the
// records of the stream.
func TestConformance(t *testing.T) {
	tests := []struct {
		mode     Mode
		settings string
		read     func(t testing.TB, srv *esfake.Server) []sinktest.Unit
	}{
		{ModeEvents, `{"mappings":{"properties":{"data":{"properties":{"Poison":{"type":"long"}}}}}}`, readEventDocs},
		{ModeLatest, `{"mappings":{"properties":{"Poison":{"type":"long"}}}}`, readStreamDocs},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			sinktest.Run(t, sinktest.Harness{
				Redelivery: sinktest.Idempotent,
				New: func(t *testing.T) (cdc.Sink, sinktest.Target) {
					srv := newServer(t)
					g := newGate(t, srv)
					cfg := Config{
						Addresses:     []string{g.url},
						Index:         route.MustParse("conformance-{{.TenantID}}"),
						Mode:          tt.mode,
						IndexSettings: json.RawMessage(tt.settings),
					}
					return newSink(t, srv, cfg), sinktest.Target{
						Read:   func(t testing.TB) []sinktest.Unit { return tt.read(t, srv) },
						Block:  g.block,
						Reopen: func(t *testing.T) cdc.Sink { return newSink(t, srv, cfg) },
					}
				},
				Spec:   sinktest.Spec{Type: sinktest.TypeByVersion, Data: sinktest.StepData},
				Poison: func(e *cdc.Event) { e.Data = json.RawMessage(`{"Poison":{"level":"high"}}`) },
			})
		})
	}
}

// readEventDocs reads the documents of events mode: one unit per index,
// the envelopes by _id.
func readEventDocs(t testing.TB, srv *esfake.Server) []sinktest.Unit {
	t.Helper()
	var units []sinktest.Unit
	for _, index := range srv.Indices() {
		docs := srv.Docs(index)
		ids := slices.Sorted(func(yield func(string) bool) {
			for id := range docs {
				if !yield(id) {
					return
				}
			}
		})
		u := sinktest.Unit{Name: index}
		for _, id := range ids {
			r, err := sinktest.ParseEnvelope(docs[id].Source)
			if err != nil {
				t.Fatalf("document %s/%s: %v", index, id, err)
			}
			if r.ID != id {
				t.Fatalf("document %s/%s holds the envelope of event %s", index, id, r.ID)
			}
			u.Records = append(u.Records, r)
		}
		units = append(units, u)
	}
	return units
}

// versionKey matches the keys of sinktest.StepData that name a version.
var versionKey = regexp.MustCompile(`^V([0-9]+)$`)

// readStreamDocs reads the documents of latest mode: one unit per
// document, the versions merged into it in the order of their V<v> keys,
// known by stream and version (the document keeps no event id).
func readStreamDocs(t testing.TB, srv *esfake.Server) []sinktest.Unit {
	t.Helper()
	var units []sinktest.Unit
	for _, index := range srv.Indices() {
		for id, d := range srv.Docs(index) {
			stream, versions, err := mergedVersions(d.Source)
			if err != nil {
				t.Fatalf("document %s/%s: %v", index, id, err)
			}
			if stream != id {
				t.Fatalf("document %s/%s has @stream_id %q", index, id, stream)
			}
			if n := len(versions); n > 0 && versions[n-1] != d.Version {
				t.Fatalf("document %s/%s is at version %d, its last version merged is %d", index, id, d.Version, versions[n-1])
			}
			u := sinktest.Unit{Name: index + "/" + id}
			for _, v := range versions {
				u.Records = append(u.Records, sinktest.Record{StreamID: stream, Version: v})
			}
			units = append(units, u)
		}
	}
	return units
}

// mergedVersions returns the @stream_id of a latest-mode document and the
// versions of its V<v> keys, in the order of the keys.
func mergedVersions(source []byte) (string, []int64, error) {
	dec := json.NewDecoder(bytes.NewReader(source))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", nil, fmt.Errorf("not a JSON object: %s", source)
	}
	var stream string
	var versions []int64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", nil, err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return "", nil, err
		}
		switch m := versionKey.FindStringSubmatch(key); {
		case key == "@stream_id":
			if err := json.Unmarshal(val, &stream); err != nil {
				return "", nil, fmt.Errorf("@stream_id: %w", err)
			}
		case m != nil:
			v, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return "", nil, err
			}
			versions = append(versions, v)
		}
	}
	return stream, versions, nil
}

// gate serves a fake Elasticsearch through an HTTP server that can hold
// bulk requests: a node whose writes are stuck.
type gate struct {
	srv *esfake.Server
	url string

	mu      sync.Mutex
	release chan struct{} // non-nil while blocked: closed by unblock
	hung    chan struct{} // closed when a request is held
}

// newGate starts a gate in front of srv, closed at the end of the test.
func newGate(t testing.TB, srv *esfake.Server) *gate {
	g := &gate{srv: srv}
	ts := httptest.NewServer(g)
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	g.url = ts.URL
	return g
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/_bulk") {
		g.srv.ServeHTTP(w, r)
		return
	}
	g.mu.Lock()
	release, hung := g.release, g.hung
	if release != nil {
		select {
		case <-hung:
		default:
			close(hung)
		}
	}
	g.mu.Unlock()
	if release != nil {
		select {
		case <-release:
		case <-r.Context().Done():
			panic(http.ErrAbortHandler) // the client gave up: drop the connection
		}
	}
	g.srv.ServeHTTP(w, r)
}

// block holds every bulk request from now on until unblock is called.
func (g *gate) block(testing.TB) (<-chan struct{}, func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	release, hung := make(chan struct{}), make(chan struct{})
	g.release, g.hung = release, hung
	var once sync.Once
	return hung, func() {
		once.Do(func() {
			g.mu.Lock()
			g.release = nil
			g.mu.Unlock()
			close(release)
		})
	}
}
