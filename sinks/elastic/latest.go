package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
)

// mgetChunk is the most documents read by one _mget request.
const mgetChunk = 1000

// stream is the document of one stream in one index, in ModeLatest.
type stream struct {
	index, id string
	events    []int // batch indices of its events, in batch order
	applied   []int // those newer than what is stored (see newer)

	// What is stored, from _mget.
	found   bool
	version int64
	source  json.RawMessage
}

// planLatest makes the documents of ModeLatest: one per (index, stream) of
// the events before the cutoff, merged from the stored document and the
// events newer than it.
func (s *Sink) planLatest(ctx context.Context, w *batch) ([]*doc, error) {
	type key struct{ index, id string }
	byKey := map[key]*stream{}
	var streams []*stream
	for i := 0; i < w.cutoff; i++ {
		k := key{w.indices[i], w.ids[i]}
		st := byKey[k]
		if st == nil {
			st = &stream{index: k.index, id: k.id}
			byKey[k] = st
			streams = append(streams, st)
		}
		st.events = append(st.events, i)
	}
	for lo := 0; lo < len(streams); lo += mgetChunk {
		if err := s.mget(ctx, streams[lo:min(lo+mgetChunk, len(streams))]); err != nil {
			return nil, err
		}
	}
	docs := make([]*doc, 0, len(streams))
	for _, st := range streams {
		st.newer(w.events)
		if len(st.applied) == 0 {
			continue // what is stored is as new or newer
		}
		d, err := st.build(w.events, len(st.applied))
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// mgetDoc is one document asked of _mget.
type mgetDoc struct {
	Index string `json:"_index"`
	ID    string `json:"_id"`
}

// mgetResult is one document of an _mget response.
type mgetResult struct {
	Index   string          `json:"_index"`
	ID      string          `json:"_id"`
	Version int64           `json:"_version"`
	Found   bool            `json:"found"`
	Source  json.RawMessage `json:"_source"`
	Error   *errorCause     `json:"error"`
}

// mget reads the stored documents of the streams with one _mget request
// (realtime: it sees what was indexed and not yet refreshed).
func (s *Sink) mget(ctx context.Context, streams []*stream) error {
	req := struct {
		Docs []mgetDoc `json:"docs"`
	}{Docs: make([]mgetDoc, len(streams))}
	for i, st := range streams {
		req.Docs[i] = mgetDoc{Index: st.index, ID: st.id}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode _mget request: %w", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := esapi.MgetRequest{Body: bytes.NewReader(body)}.Do(ctx, s.es)
	if err != nil {
		return s.connError(err)
	}
	defer res.Body.Close()
	if res.IsError() {
		return s.statusError("read the stored documents (_mget)", responseError(res))
	}
	var out struct {
		Docs []mgetResult `json:"docs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return fmt.Errorf("elasticsearch %s: read the _mget response: %w", s.addrs, err)
	}
	if len(out.Docs) != len(streams) {
		return fmt.Errorf("elasticsearch %s: _mget answered %d documents for %d asked", s.addrs, len(out.Docs), len(streams))
	}
	for i, r := range out.Docs {
		st := streams[i]
		switch {
		case r.Error != nil && r.Error.Type == "index_not_found_exception":
		case r.Error != nil:
			return fmt.Errorf("elasticsearch %s: read document %s in index %s: %w", s.addrs, quote(st.id), quote(st.index),
				&ESError{Status: http.StatusOK, Type: r.Error.Type, Reason: r.Error.reason()})
		case r.Found && !isObject(r.Source):
			return fmt.Errorf("elasticsearch %s: document %s in index %s has no _source: latest mode needs the index's _source to be stored", s.addrs, quote(st.id), quote(st.index))
		case r.Found:
			st.found, st.version, st.source = true, r.Version, r.Source
		}
	}
	return nil
}

// newer sets st.applied: the events of the stream whose version is greater
// than the stored version and than the version of the event before them,
// in order.
func (st *stream) newer(events []*cdc.Event) {
	current := int64(math.MinInt64)
	if st.found {
		current = st.version
	}
	st.applied = st.applied[:0]
	for _, i := range st.events {
		if v := events[i].Version; v > current {
			st.applied = append(st.applied, i)
			current = v
		}
	}
}

// build makes the stream's document with the first n events of
// st.applied (n > 0) merged into the stored source, in order, and the
// version of the last of them.
func (st *stream) build(events []*cdc.Event, n int) (*doc, error) {
	state, err := st.stored()
	if err != nil {
		return nil, err
	}
	for _, i := range st.applied[:n] {
		if err := state.patch(events[i].Data); err != nil {
			return nil, fmt.Errorf("merge the data of event %s: %w", events[i].ID, err)
		}
	}
	e := events[st.applied[n-1]]
	body := make([]byte, 0, 256+state.size())
	body = append(body, `{"@stream_id":`...)
	body = envelope.AppendString(body, e.StreamID)
	body = append(body, `,"@type":`...)
	body = envelope.AppendString(body, e.Type)
	body = append(body, `,"@version":`...)
	body = appendInt(body, e.Version)
	body = append(body, `,"@tenant_id":`...)
	if e.TenantID == "" {
		body = append(body, "null"...)
	} else {
		body = envelope.AppendString(body, e.TenantID)
	}
	body = append(body, `,"@timestamp":`...)
	if e.Timestamp.IsZero() {
		body = append(body, "null"...)
	} else {
		body = append(body, '"')
		body = e.Timestamp.UTC().AppendFormat(body, time.RFC3339Nano)
		body = append(body, '"')
	}
	body = state.appendMembers(body, true, isMeta)
	body = append(body, '}')
	if bytes.IndexByte(body, '\n') >= 0 {
		var c bytes.Buffer
		if err := json.Compact(&c, body); err != nil {
			return nil, fmt.Errorf("document %s in index %s: %w", quote(st.id), quote(st.index), err)
		}
		body = c.Bytes()
	}
	return &doc{index: st.index, id: st.id, version: e.Version, body: body, first: st.applied[0], stream: st}, nil
}

// stored returns the stored source as an object to merge into, empty when
// nothing is stored.
func (st *stream) stored() (*object, error) {
	if !st.found {
		return newObject(), nil
	}
	o, err := parseObject(st.source)
	if err != nil {
		return nil, fmt.Errorf("stored document %s in index %s: %w", quote(st.id), quote(st.index), err)
	}
	return o, nil
}

// The metadata fields of a ModeLatest document. They replace any member of
// the merged data of the same name.
var metaFields = map[string]bool{"@stream_id": true, "@type": true, "@version": true, "@tenant_id": true, "@timestamp": true}

func isMeta(key string) bool { return metaFields[key] }
