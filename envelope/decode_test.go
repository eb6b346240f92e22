package envelope

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc"
)

// TestDecodeRoundTrip: envelope -> Event -> envelope is byte-equal for every
// kind of field (strings with escapes, optional strings null, integers at
// their limits, times with and without fractions, zero times, embedded
// JSON of every shape, null headers, high LSNs), and the event decoded
// equals the one encoded in every field the envelope carries.
func TestDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *cdc.Event)
	}{
		{"plain", func(*cdc.Event) {}},
		{"escapes", func(e *cdc.Event) {
			e.StreamID = "quote\" back\\ nl\n tab\t cr\r ctl\x01\x1f del\x7f é 日本 \u2028 \u2029 😀"
			e.ID = `</script>&<>`
		}},
		{"nulls", func(e *cdc.Event) {
			e.DotnetType, e.CorrelationID, e.CausationID, e.Headers, e.TenantID, e.UserName = "", "", "", nil, "", ""
		}},
		{"user name", func(e *cdc.Event) { e.UserName = "alice" }},
		{"extremes", func(e *cdc.Event) { e.SeqID, e.Version = math.MaxInt64, math.MinInt64 }},
		{"zero numbers", func(e *cdc.Event) { e.SeqID, e.Version = 0, 0 }},
		{"high lsn", func(e *cdc.Event) { e.LSN = 0xFFFFFFFF_0000000A }},
		{"zero lsn", func(e *cdc.Event) { e.LSN = 0 }},
		{"zero times", func(e *cdc.Event) { e.Timestamp, e.CommitTime = time.Time{}, time.Time{} }},
		{"nanoseconds", func(e *cdc.Event) { e.Timestamp = time.Date(2026, 1, 2, 3, 4, 5, 1, time.FixedZone("y", -7*3600)) }},
		{"data shapes", func(e *cdc.Event) {
			e.Data = json.RawMessage(`{"a":[1,2.5e10,-0.0,true,false,null,"s\u00e9\n"],"b":{"c":{}},"d":[]}`)
			e.Headers = json.RawMessage(`{ "x" : [ 1 , 2 ] }`)
		}},
		{"scalar data", func(e *cdc.Event) { e.Data, e.Headers = json.RawMessage(`"just a string"`), json.RawMessage(`42`) }},
		{"null data", func(e *cdc.Event) { e.Data = nil }},
		{"empty strings", func(e *cdc.Event) { e.ID, e.StreamID, e.Type = "", "", "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := sampleEvent()
			tt.edit(in)
			env := Append(nil, in)
			e, err := Decode(env)
			if err != nil {
				t.Fatalf("decode %s: %v", env, err)
			}
			if again := Append(nil, e); string(again) != string(env) {
				t.Fatalf("round trip:\n got %s\nwant %s", again, env)
			}
			want := *in
			want.Index, want.TxID = 0, 0 // not in the envelope
			want.Timestamp, want.CommitTime = utc(in.Timestamp), utc(in.CommitTime)
			if !reflect.DeepEqual(*e, want) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", *e, want)
			}
		})
	}
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// TestDecodeJSONB: the envelope as PostgreSQL's jsonb gives it back (keys
// sorted by length, a space after colons and commas, escapes of its own)
// decodes to the same event, which encodes to the canonical envelope.
func TestDecodeJSONB(t *testing.T) {
	in := sampleEvent()
	in.StreamID = "tab\t é \u2028"
	in.Data = json.RawMessage(`{"Priority": 1, "Description": "Printer on fire"}`)
	jsonb := `{"id": "018f0000-0000-7000-8000-000000000001", "lsn": "0/16B3748", "data": {"Priority": 1, "Description": "Printer on fire"}, ` +
		`"type": "incident_logged", "seq_id": 42, "headers": {"source": "api"}, "version": 3, "stream_id": "tab\t é ` + "\u2028" + `", ` +
		`"tenant_id": "*DEFAULT*", "timestamp": "2026-11-22T10:00:00.123456Z", "user_name": null, "commit_time": "2026-11-22T09:00:01Z", ` +
		`"causation_id": "cmd-1", "dotnet_type": "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", "correlation_id": "corr-42"}`
	e, err := Decode([]byte(jsonb))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(Append(nil, e)), string(Append(nil, in)); got != want {
		t.Fatalf("from jsonb:\n got %s\nwant %s", got, want)
	}
}

// TestDecodeInvalidUTF8: invalid UTF-8 comes back as U+FFFD, after which
// the round trip is stable.
func TestDecodeInvalidUTF8(t *testing.T) {
	in := sampleEvent()
	in.Type = "bad\xff"
	e, err := Decode(Append(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "bad\uFFFD" {
		t.Fatalf("type %q", e.Type)
	}
	env := Append(nil, e)
	e2, err := Decode(env)
	if err != nil || string(Append(nil, e2)) != string(env) {
		t.Fatalf("not stable: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not json", `{"id":`, "decode envelope"},
		{"not an object", `[1]`, "decode envelope"},
		{"missing fields", `{"seq_id":1}`, "[id stream_id type lsn]"},
		{"null id", `{"id":null,"stream_id":"s","type":"t","lsn":"0/1"}`, "[id]"},
		{"bad lsn", `{"id":"i","stream_id":"s","type":"t","lsn":"16B3748"}`, "lsn"},
		{"bad timestamp", `{"id":"i","stream_id":"s","type":"t","lsn":"0/1","timestamp":"yesterday"}`, "timestamp"},
		{"bad commit time", `{"id":"i","stream_id":"s","type":"t","lsn":"0/1","commit_time":1}`, "commit_time"},
		{"string seq_id", `{"id":"i","stream_id":"s","type":"t","lsn":"0/1","seq_id":"1"}`, "seq_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
