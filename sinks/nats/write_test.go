package nats

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/internal/natsserver"
	"github.com/martencdc/cdc/route"
)

// TestMessages checks each message: subject, payload (envelope or data)
// and headers; and the stream the sink creates.
func TestMessages(t *testing.T) {
	for _, value := range Values() {
		t.Run(string(value), func(t *testing.T) {
			srv := startServer(t, natsserver.Config{})
			s := newSink(t, srv.URL(), Config{Value: value, CreateStream: true, DuplicateWindow: 5 * time.Minute})
			if err := s.Prepare(context.Background()); err != nil {
				t.Fatal(err)
			}
			events := makeEvents(3, 2, 10, 1)
			if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
				t.Fatal(err)
			}
			nc, js := client(t, srv.URL())
			defer nc.Close()
			st, err := js.Stream(context.Background(), testStream)
			if err != nil {
				t.Fatal(err)
			}
			if c := st.CachedInfo().Config; c.Duplicates != 5*time.Minute || len(c.Subjects) != 1 || c.Subjects[0] != "events.>" {
				t.Errorf("created stream: duplicate window %s, subjects %v; want 5m0s, [events.>]", c.Duplicates, c.Subjects)
			}
			ms := readStream(t, srv.URL(), testStream)
			if len(ms) != len(events) {
				t.Fatalf("stream holds %d messages, want %d", len(ms), len(events))
			}
			byID := map[string]*cdc.Event{}
			for _, e := range events {
				byID[e.ID] = e
			}
			for _, m := range ms {
				e := byID[m.Header.Get(HeaderMsgID)]
				if e == nil {
					t.Fatalf("message %d: %s %q is no event's id", m.Sequence, HeaderMsgID, m.Header.Get(HeaderMsgID))
				}
				if want := "events." + e.TenantID + "." + e.Type; m.Subject != want {
					t.Errorf("event %s: subject %q, want %q", e.ID, m.Subject, want)
				}
				want := envelope.Append(nil, e)
				if value == ValueData {
					want = e.Data
				}
				if !bytes.Equal(m.Data, want) {
					t.Errorf("event %s: payload %s, want %s", e.ID, m.Data, want)
				}
				headers := map[string]string{
					HeaderMsgID: e.ID, HeaderExpectedStream: testStream, HeaderEventID: e.ID, HeaderEventType: e.Type,
					HeaderStreamID: e.StreamID, HeaderTenantID: e.TenantID, HeaderSeqID: strconv.FormatInt(e.SeqID, 10), HeaderLSN: e.LSN.String(),
					HeaderCorrelationID: e.CorrelationID, HeaderCausationID: e.CausationID,
				}
				for k, v := range headers {
					if got := m.Header.Get(k); got != v {
						t.Errorf("event %s: header %s = %q, want %q", e.ID, k, got, v)
					}
				}
				if e.CorrelationID == "" && m.Header.Values(HeaderCorrelationID) != nil {
					t.Errorf("event %s has no correlation id, but the header %s", e.ID, HeaderCorrelationID)
				}
			}
		})
	}
}

// TestRefused checks the events the server refuses for good: Write
// returns a *cdc.RejectedError for the first, once the events before it
// are stored, and the stream does not hold it. The subject is
// "<tenant>.<type>"; the test stream takes acme.> and globex.>.
func TestRefused(t *testing.T) {
	cases := []struct {
		name   string
		server natsserver.Config
		other  bool // stream OTHER takes other.>
		spoil  func(e *cdc.Event)
		want   string // in the error
	}{
		{name: "no stream takes the subject", spoil: func(e *cdc.Event) { e.TenantID = "nobody" },
			want: "no nats stream takes the subject"},
		{name: "another stream takes the subject", other: true, spoil: func(e *cdc.Event) { e.TenantID = "other" },
			want: "another stream"},
		{name: "larger than max_payload", server: natsserver.Config{MaxPayload: 4096},
			spoil: func(e *cdc.Event) { e.Data = []byte(`"` + strings.Repeat("x", 5000) + `"`) },
			want:  "maximum payload"},
		{name: "invalid subject", spoil: func(e *cdc.Event) { e.Type = "a b" }, want: "blanks"},
		{name: "wildcard subject", spoil: func(e *cdc.Event) { e.Type = ">" }, want: "wildcard"},
		{name: "reserved subject", spoil: func(e *cdc.Event) { e.TenantID = "$JS" }, want: "reserved"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startServer(t, c.server)
			createStream(t, srv.URL(), jetstream.StreamConfig{Name: testStream, Subjects: []string{"acme.>", "globex.>"}})
			if c.other {
				createStream(t, srv.URL(), jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
			}
			events := makeEvents(4, 3, 0, 1)
			const bad = 6
			c.spoil(events[bad])
			s := newSink(t, srv.URL(), Config{Subject: route.MustParse("{{.TenantID}}.{{.Type}}")})
			err := s.Write(context.Background(), cdc.Batch{Events: events})
			rej, ok := errors.AsType[*cdc.RejectedError](err)
			if !ok || rej.Index != bad || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Write = %v, want a RejectedError of event %d saying %q", err, bad, c.want)
			}
			t.Logf("Write: %v", err)
			got := map[string]bool{}
			for _, m := range readStream(t, srv.URL(), testStream) {
				got[m.Header.Get(HeaderMsgID)] = true
			}
			for i, e := range events[:bad] {
				if !got[e.ID] {
					t.Errorf("event %d (before the refused one) is not in the stream", i)
				}
			}
			if got[events[bad].ID] {
				t.Errorf("the refused event is in the stream")
			}
		})
	}
}
