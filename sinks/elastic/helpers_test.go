package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// newServer starts a fake Elasticsearch, closed at the end of the test.
func newServer(t testing.TB, opts ...esfake.Option) *esfake.Server {
	t.Helper()
	srv := esfake.New(opts...)
	t.Cleanup(srv.Close)
	return srv
}

// newSink returns a sink over the server, closed at the end of the test.
// The index defaults to the constant "cdc"; items refused with 429 are
// sent again after 1 to 10 milliseconds.
func newSink(t testing.TB, srv *esfake.Server, cfg Config) *Sink {
	t.Helper()
	if cfg.Addresses == nil {
		cfg.Addresses = []string{srv.URL()}
	}
	if cfg.Index == nil {
		cfg.Index = route.MustParse("cdc")
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.itemBackoff = [2]time.Duration{time.Millisecond, 10 * time.Millisecond}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

var (
	eventTypes = sinktest.EventTypes
	tenants    = sinktest.Tenants
)

// makeEvents returns versions events of each of streams streams,
// interleaved (version 1 of every stream, then version 2, ...), with
// bodies of about pad bytes. Their SeqIDs start at firstSeq. The type of an
// event depends on its version (sinktest.TypeByVersion), the data of
// version v of stream s is {"Stream":s,"Step":v,"Filler":...,"V<v>":true}
// (sinktest.StepData), and no event has a causation id; see sinktest.Events
// for the other fields.
func makeEvents(streams, versions, pad int, firstSeq int64) []*cdc.Event {
	return sinktest.Events(sinktest.Spec{Streams: streams, Versions: versions, Pad: pad, FirstSeq: firstSeq,
		Type: sinktest.TypeByVersion, Data: sinktest.StepData, Causation: sinktest.NoID})
}

// event returns an event of stream with the given version, seq_id and
// data.
func event(stream string, version, seq int64, typ, data string) *cdc.Event {
	return &cdc.Event{
		ID:        fmt.Sprintf("0192f0c4-0000-7000-8000-%012x", seq),
		SeqID:     seq,
		StreamID:  stream,
		Version:   version,
		Type:      typ,
		TenantID:  "*DEFAULT*",
		Timestamp: time.Date(2026, 11, 22, 10, 0, int(seq), 0, time.UTC),
		Data:      json.RawMessage(data),
		LSN:       cdc.LSN(0x1000 + seq),
	}
}

// write writes the events and fails the test on error.
func write(t testing.TB, s *Sink, events []*cdc.Event) {
	t.Helper()
	if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
		t.Fatalf("write %d events: %v", len(events), err)
	}
}

// rejected returns the RejectedError of err, failing the test if it is
// not one.
func rejected(t testing.TB, err error) *cdc.RejectedError {
	t.Helper()
	var rej *cdc.RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("want a RejectedError, got %v", err)
	}
	return rej
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if err := da.Decode(&va); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := db.Decode(&vb); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// wantDoc checks the stored document: its version and source.
func wantDoc(t testing.TB, srv *esfake.Server, index, id string, version int64, source []byte) {
	t.Helper()
	d, ok := srv.Doc(index, id)
	if !ok {
		t.Fatalf("document %s/%s is missing", index, id)
	}
	if d.Version != version {
		t.Errorf("document %s/%s: version %d, want %d", index, id, d.Version, version)
	}
	if !jsonEqual(t, d.Source, source) {
		t.Errorf("document %s/%s:\n got %s\nwant %s", index, id, d.Source, source)
	}
}

// envelopeOf returns the envelope of e.
func envelopeOf(e *cdc.Event) []byte { return envelope.Append(nil, e) }

func cdcBatch(events []*cdc.Event) cdc.Batch { return cdc.Batch{Events: events} }
