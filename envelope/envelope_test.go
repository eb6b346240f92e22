package envelope

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/martencdc/cdc"
)

func sampleEvent() *cdc.Event {
	return &cdc.Event{
		ID:            "018f0000-0000-7000-8000-000000000001",
		SeqID:         42,
		StreamID:      "a1b2c3d4-0000-4000-8000-000000000001",
		Version:       3,
		Type:          "incident_logged",
		DotnetType:    "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api",
		TenantID:      "*DEFAULT*",
		Timestamp:     time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC),
		Data:          json.RawMessage(`{"Description": "Printer on fire", "Priority": 1}`),
		CorrelationID: "corr-42",
		CausationID:   "cmd-1",
		Headers:       json.RawMessage(`{"source": "api"}`),
		UserName:      "",
		LSN:           0x16B3748,
		Index:         2,
		CommitTime:    time.Date(2026, 11, 22, 10, 0, 1, 0, time.FixedZone("x", 3600)),
		TxID:          733,
	}
}

func TestAppendExact(t *testing.T) {
	got := string(Append(nil, sampleEvent()))
	want := `{"id":"018f0000-0000-7000-8000-000000000001","seq_id":42,"stream_id":"a1b2c3d4-0000-4000-8000-000000000001",` +
		`"version":3,"type":"incident_logged","dotnet_type":"Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api",` +
		`"tenant_id":"*DEFAULT*","timestamp":"2026-11-22T10:00:00.123456Z","data":{"Description": "Printer on fire", "Priority": 1},` +
		`"correlation_id":"corr-42","causation_id":"cmd-1","headers":{"source": "api"},"user_name":null,` +
		`"lsn":"0/16B3748","commit_time":"2026-11-22T09:00:01Z"}`
	if got != want {
		t.Fatalf("envelope:\n got %s\nwant %s", got, want)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *cdc.Event)
	}{
		{"plain", func(*cdc.Event) {}},
		{"escapes", func(e *cdc.Event) { e.StreamID = "quote\" back\\ nl\n tab\t ctl\x01 del\x7f é 日本 \u2028" }},
		{"invalid utf8", func(e *cdc.Event) { e.Type = "bad\xff\xfeutf8" }},
		{"nulls", func(e *cdc.Event) {
			e.DotnetType, e.CorrelationID, e.CausationID, e.Headers, e.TenantID = "", "", "", nil, ""
		}},
		{"extremes", func(e *cdc.Event) { e.SeqID, e.Version = math.MaxInt64, math.MinInt64 }},
		{"high lsn", func(e *cdc.Event) { e.LSN = 0xFFFFFFFF_0000000A }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEvent()
			tt.edit(e)
			b := Append([]byte("prefix"), e)
			if string(b[:6]) != "prefix" {
				t.Fatalf("prefix clobbered")
			}
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(b[6:]))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, b[6:])
			}
			if got := m["stream_id"]; got != e.StreamID {
				t.Errorf("stream_id = %q, want %q", got, e.StreamID)
			}
			if got := m["seq_id"].(json.Number).String(); got != appendIntString(e.SeqID) {
				t.Errorf("seq_id = %s, want %d", got, e.SeqID)
			}
			if got := m["lsn"]; got != e.LSN.String() {
				t.Errorf("lsn = %v, want %s", got, e.LSN)
			}
			if e.Headers == nil && m["headers"] != nil {
				t.Errorf("headers = %v, want null", m["headers"])
			}
			if e.DotnetType == "" && m["dotnet_type"] != nil {
				t.Errorf("dotnet_type = %v, want null", m["dotnet_type"])
			}
			if len(m) != 15 {
				t.Errorf("envelope has %d keys, want 15", len(m))
			}
		})
	}
}

func appendIntString(v int64) string { return string(appendInt(nil, v)) }

func FuzzAppendString(f *testing.F) {
	f.Add("plain")
	f.Add("q\"\\\n\x00\xff\u2029")
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("invalid JSON for %q: %s: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var w string
		_ = json.Unmarshal(want, &w)
		if got != w {
			t.Fatalf("round trip of %q: got %q want %q", s, got, w)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	e := sampleEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], e)
	}
	b.SetBytes(int64(len(buf)))
}
