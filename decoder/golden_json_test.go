package decoder

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cdc "github.com/martencdc/cdc"
)

// The expectations of TestGolden: testdata/<capture>.json next to each
// testdata/<capture>.hex, in the JSON form of this file. They are written by
//
//	go test ./decoder -run 'TestGolden$' -update
//
// from what the decoder gives, and read back by TestGolden, which converts
// what the decoder gives in the same way and compares field by field.

// goldenExpect is the content of testdata/<capture>.json: what the capture
// decodes to.
type goldenExpect struct {
	// Counts is how many messages of each Kind the capture decodes to, by
	// Kind name ("none", "begin", "event", "skip", "commit"), zero counts
	// included. Messages leaves the KindNone ones out.
	Counts map[string]int `json:"counts"`
	// Messages are the messages that are not KindNone, in order.
	Messages []msgJSON `json:"messages"`
}

// msgJSON is the JSON form of a Message. Fields that are zero are left out
// (and expected zero): which are set depends on the kind. LSNs are printed
// as PostgreSQL does ("0/222A540"), positions as "LSN#index", times as
// RFC 3339 with nanoseconds (see timeJSON), kinds and skip reasons by name.
type msgJSON struct {
	Kind       string     `json:"kind"`
	Position   string     `json:"position,omitempty"`
	Skip       string     `json:"skip,omitempty"`
	CommitLSN  string     `json:"commit_lsn,omitempty"`
	EndLSN     string     `json:"end_lsn,omitempty"`
	CommitTime string     `json:"commit_time,omitempty"`
	TxID       uint32     `json:"xid,omitempty"`
	Event      *eventJSON `json:"event,omitempty"`
}

// eventJSON is the JSON form of a cdc.Event, every field present. Data and
// Headers are the exact text the decoder gives (as a JSON string, so that
// spacing and key order are kept), null when nil; BData is hex, null when
// nil.
type eventJSON struct {
	ID            string  `json:"id"`
	SeqID         int64   `json:"seq_id"`
	StreamID      string  `json:"stream_id"`
	Version       int64   `json:"version"`
	Type          string  `json:"type"`
	DotnetType    string  `json:"dotnet_type"`
	TenantID      string  `json:"tenant_id"`
	Timestamp     string  `json:"timestamp"`
	Data          *string `json:"data"`
	CorrelationID string  `json:"correlation_id"`
	CausationID   string  `json:"causation_id"`
	Headers       *string `json:"headers"`
	UserName      string  `json:"user_name"`
	LSN           string  `json:"lsn"`
	Index         uint32  `json:"index"`
	CommitTime    string  `json:"commit_time"`
	TxID          uint32  `json:"xid"`
	BData         *string `json:"bdata"`
}

// expectOf is the expectation file content for a decoded capture: its
// messages that are not KindNone, and how many were.
func expectOf(msgs []Message, none int) goldenExpect {
	e := goldenExpect{Counts: map[string]int{}, Messages: []msgJSON{}}
	for k := KindNone; k <= KindCommit; k++ {
		e.Counts[k.String()] = 0
	}
	e.Counts[KindNone.String()] = none
	for _, m := range msgs {
		e.Counts[m.Kind.String()]++
		e.Messages = append(e.Messages, toJSON(m))
	}
	return e
}

// toJSON converts a message to its JSON form.
func toJSON(m Message) msgJSON {
	j := msgJSON{
		Kind:       m.Kind.String(),
		CommitLSN:  lsnJSON(m.CommitLSN),
		EndLSN:     lsnJSON(m.EndLSN),
		CommitTime: timeJSON(m.CommitTime),
		TxID:       m.TxID,
	}
	if m.Position != (cdc.Position{}) {
		j.Position = m.Position.String()
	}
	if m.Skip != SkipNone {
		j.Skip = m.Skip.String()
	}
	if e := m.Event; e != nil {
		j.Event = &eventJSON{
			ID: e.ID, SeqID: e.SeqID, StreamID: e.StreamID, Version: e.Version,
			Type: e.Type, DotnetType: e.DotnetType, TenantID: e.TenantID,
			Timestamp: timeJSON(e.Timestamp), Data: textJSON(e.Data),
			CorrelationID: e.CorrelationID, CausationID: e.CausationID,
			Headers: textJSON(e.Headers), UserName: e.UserName,
			LSN: e.LSN.String(), Index: e.Index, CommitTime: timeJSON(e.CommitTime), TxID: e.TxID,
		}
		if e.BData != nil {
			h := hex.EncodeToString(e.BData)
			j.Event.BData = &h
		}
	}
	return j
}

// lsnJSON prints an LSN, "" for 0.
func lsnJSON(l cdc.LSN) string {
	if l == 0 {
		return ""
	}
	return l.String()
}

// timeJSON prints a time in RFC 3339 with nanoseconds, "" for the zero
// time. A time whose location is not time.UTC gets " (<location>)"
// appended: the decoder gives every time in UTC, and a time elsewhere must
// not match an expectation even at the same instant.
func timeJSON(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	s := t.Format(time.RFC3339Nano)
	if t.Location() != time.UTC {
		s += " (" + t.Location().String() + ")"
	}
	return s
}

// textJSON is the text of a JSON column, nil when the column is nil.
func textJSON(j json.RawMessage) *string {
	if j == nil {
		return nil
	}
	s := string(j)
	return &s
}

// expectPath is the expectation file of a capture: testdata/<name>.json
// for <name>.hex.
func expectPath(capture string) string {
	return filepath.Join("testdata", strings.TrimSuffix(capture, ".hex")+".json")
}

// readExpect reads an expectation file. Unknown fields are an error, so a
// misspelt field name cannot silently expect a zero value.
func readExpect(t *testing.T, path string) goldenExpect {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./decoder -run 'TestGolden$' -update writes it)", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e goldenExpect
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON value", path)
	}
	return e
}

// writeExpect writes an expectation file: indented, keys of counts sorted,
// and '<', '>', '&' left as they are.
func writeExpect(t *testing.T, path string, e goldenExpect) {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// maxReported is how many differing messages compareExpect reports before
// it stops: past a missing or extra message, every later one differs.
const maxReported = 10

// compareExpect reports every count and every field of a message in which
// got differs from want, naming the file, the message index and the
// field: "marten8.json: message 3 (event at 0/222A540#1): event.seq_id =
// 3, want 2".
func compareExpect(t *testing.T, file string, got, want goldenExpect) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(mergeKeys(got.Counts, want.Counts))) {
		if g, w := got.Counts[k], want.Counts[k]; g != w {
			t.Errorf("%s: counts.%s = %d, want %d", file, k, g, w)
		}
	}
	reported := 0
	for i := range max(len(got.Messages), len(want.Messages)) {
		var what string
		var diffs []string
		switch {
		case i >= len(want.Messages):
			what, diffs = label(got.Messages[i]), []string{"not expected: " + jsonText(got.Messages[i])}
		case i >= len(got.Messages):
			what, diffs = label(want.Messages[i]), []string{"missing, want " + jsonText(want.Messages[i])}
		default:
			what, diffs = label(want.Messages[i]), msgDiffs(got.Messages[i], want.Messages[i])
		}
		if len(diffs) == 0 {
			continue
		}
		if reported++; reported > maxReported {
			t.Errorf("%s: more messages differ from message %d on", file, i)
			return
		}
		for _, d := range diffs {
			t.Errorf("%s: message %d (%s): %s", file, i, what, d)
		}
	}
}

// mergeKeys is the set of the keys of a and b.
func mergeKeys(a, b map[string]int) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

// label names a message in failures: "begin 0/222A540", "event at
// 0/222A540#0".
func label(m msgJSON) string {
	switch {
	case m.Position != "":
		return m.Kind + " at " + m.Position
	case m.CommitLSN != "":
		return m.Kind + " " + m.CommitLSN
	}
	return m.Kind
}

// msgDiffs lists the fields in which got differs from want, as "name =
// got, want want", with the names and values of the JSON file ("event.data
// = ..."). It compares every field of msgJSON and eventJSON.
func msgDiffs(got, want msgJSON) []string {
	return fieldDiffs("", reflect.ValueOf(got), reflect.ValueOf(want))
}

// fieldDiffs compares two structs of the same type field by field, and
// the structs their pointer fields point to when both are set.
func fieldDiffs(prefix string, got, want reflect.Value) []string {
	var diffs []string
	for i := range got.NumField() {
		f := got.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		g, w := got.Field(i), want.Field(i)
		if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct && !g.IsNil() && !w.IsNil() {
			diffs = append(diffs, fieldDiffs(prefix+name+".", g.Elem(), w.Elem())...)
			continue
		}
		if !reflect.DeepEqual(g.Interface(), w.Interface()) {
			diffs = append(diffs, fmt.Sprintf("%s%s = %s, want %s", prefix, name, jsonText(g.Interface()), jsonText(w.Interface())))
		}
	}
	return diffs
}

// jsonText prints a value as the expectation file would.
func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// TestGoldenJSONSeesEveryField changes each field of decoded messages, one
// at a time, and checks that the JSON form and msgDiffs see the change: no
// field of Message or cdc.Event escapes TestGolden, including fields added
// later (a field of a type mutations cannot change fails here).
func TestGoldenJSONSeesEveryField(t *testing.T) {
	archived, _ := decodeGolden(t, "archived.hex", Config{})
	marten8, _ := decodeGolden(t, "marten8.hex", Config{})
	samples := map[string]Message{}
	for _, m := range append(archived, marten8...) {
		name := m.Kind.String()
		if m.Kind == KindSkip {
			name += " " + m.Skip.String()
		}
		if _, ok := samples[name]; !ok {
			samples[name] = m
		}
	}
	for _, name := range []string{"begin", "event", "skip tombstone", "skip archived", "commit"} {
		m, ok := samples[name]
		if !ok {
			t.Fatalf("no %s message in archived.hex or marten8.hex", name)
		}
		want := toJSON(m)
		for path, changed := range mutations(t, m) {
			if len(msgDiffs(toJSON(changed), want)) == 0 {
				t.Errorf("%s message: changing %s is not seen", name, path)
			}
		}
	}
}

// mutations returns copies of m that each differ from it in one field
// (for a time: in its instant, or in its location), by the field's path.
// A pointer or byte slice is also made nil, or not nil.
func mutations(t *testing.T, m Message) map[string]Message {
	t.Helper()
	out := map[string]Message{}
	// change adds a copy of m whose field (found by field in the copy) is
	// changed by set.
	change := func(path string, field func(*Message) reflect.Value, set func(reflect.Value)) {
		c := m
		if m.Event != nil {
			e := *m.Event
			c.Event = &e
		}
		set(field(&c))
		out[path] = c
	}
	var walk func(path string, field func(*Message) reflect.Value)
	walk = func(path string, field func(*Message) reflect.Value) {
		v := field(&m)
		typ := v.Type()
		switch {
		case typ == reflect.TypeFor[time.Time]():
			change(path+" +1ns", field, func(f reflect.Value) {
				f.Set(reflect.ValueOf(f.Interface().(time.Time).Add(time.Nanosecond)))
			})
			if !v.Interface().(time.Time).IsZero() {
				change(path+" location", field, func(f reflect.Value) {
					f.Set(reflect.ValueOf(f.Interface().(time.Time).In(time.FixedZone("UTC", 0))))
				})
			}
		case typ.Kind() == reflect.Struct:
			for i := range typ.NumField() {
				walk(path+"."+typ.Field(i).Name, func(m *Message) reflect.Value { return field(m).Field(i) })
			}
		case typ.Kind() == reflect.Pointer:
			change(path+" nil or not", field, func(f reflect.Value) {
				if f.IsNil() {
					f.Set(reflect.New(typ.Elem()))
				} else {
					f.SetZero()
				}
			})
			if !v.IsNil() {
				walk(path, func(m *Message) reflect.Value { return field(m).Elem() })
			}
		case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Uint8:
			change(path+" nil or not", field, func(f reflect.Value) {
				if f.IsNil() {
					f.Set(reflect.MakeSlice(typ, 0, 0))
				} else {
					f.SetZero()
				}
			})
			change(path+" longer", field, func(f reflect.Value) { f.SetBytes(append(slices.Clip(f.Bytes()), 'x')) })
		case typ.Kind() == reflect.String:
			change(path, field, func(f reflect.Value) { f.SetString(f.String() + "x") })
		case v.CanInt():
			change(path, field, func(f reflect.Value) { f.SetInt(f.Int() + 1) })
		case v.CanUint():
			change(path, field, func(f reflect.Value) { f.SetUint(f.Uint() + 1) })
		default:
			t.Fatalf("%s: mutations cannot change a %v", path, typ)
		}
	}
	walk("Message", func(m *Message) reflect.Value { return reflect.ValueOf(m).Elem() })
	return out
}
