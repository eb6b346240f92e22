package esfake

import (
	"fmt"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// A first document fixes the field types; a second one is accepted or
// refused with Elasticsearch's document_parsing_exception.
func TestDynamicMappingConflicts(t *testing.T) {
	tests := []struct {
		name, first, second string
		reason              string // "" when the second document is accepted
		cause               string // type of caused_by
	}{
		{"string into long", `{"Amount":12}`, `{"Amount":"abc"}`,
			"[1:11] failed to parse field [Amount] of type [long] in document with id '2'. Preview of field's value: 'abc'", "illegal_argument_exception"},
		{"numeric string into long", `{"Amount":12}`, `{"Amount":"13"}`, "", ""},
		{"decimal string into long", `{"Amount":12}`, `{"Amount":"13.7"}`, "", ""},
		{"fraction into long", `{"Amount":12}`, `{"Amount":13.7}`, "", ""},
		{"long out of range", `{"Amount":12}`, `{"Amount":9223372036854775808}`,
			"[1:11] failed to parse field [Amount] of type [long] in document with id '2'. Preview of field's value: '9223372036854775808'", "x_content_parse_exception"},
		{"boolean into long", `{"Amount":12}`, `{"Amount":true}`,
			"[1:11] failed to parse field [Amount] of type [long] in document with id '2'. Preview of field's value: 'true'", "x_content_parse_exception"},
		{"string into float", `{"Price":1.5}`, `{"Price":"cheap"}`,
			"[1:10] failed to parse field [Price] of type [float] in document with id '2'. Preview of field's value: 'cheap'", "number_format_exception"},
		{"integer into float", `{"Price":1.5}`, `{"Price":2}`, "", ""},
		{"number into text", `{"Name":"x"}`, `{"Name":42}`, "", ""},
		{"object into text", `{"Name":"x"}`, `{"Name":{"first":"a","last":"b"}}`,
			"[1:32] failed to parse field [Name] of type [text] in document with id '2'. Preview of field's value: '{last=b, first=a}'", "illegal_argument_exception"},
		{"scalar into object", `{"User":{"id":1}}`, `{"User":"bob"}`,
			"[1:9] object mapping for [User] tried to parse field [User] as object, but found a concrete value", ""},
		{"nested path", `{"a":{"b":{"c":1}}}`, `{"a":{"b":{"c":"x"}}}`,
			"[1:16] failed to parse field [a.b.c] of type [long] in document with id '2'. Preview of field's value: 'x'", "illegal_argument_exception"},
		{"dotted field name", `{"a":{"b":1}}`, `{"a.b":"x"}`,
			"[1:8] failed to parse field [a.b] of type [long] in document with id '2'. Preview of field's value: 'x'", "illegal_argument_exception"},
		{"array element", `{"tags":[1,2]}`, `{"tags":[3,"x"]}`,
			"[1:12] failed to parse field [tags] of type [long] in document with id '2'. Preview of field's value: 'x'", "illegal_argument_exception"},
		{"string into boolean", `{"ok":true}`, `{"ok":"yes"}`,
			"[1:7] failed to parse field [ok] of type [boolean] in document with id '2'. Preview of field's value: 'yes'", "illegal_argument_exception"},
		{"boolean string into boolean", `{"ok":true}`, `{"ok":"false"}`, "", ""},
		{"string into date", `{"at":"2024-05-01T10:00:00Z"}`, `{"at":"soon"}`,
			"[1:7] failed to parse field [at] of type [date] in document with id '2'. Preview of field's value: 'soon'", "illegal_argument_exception"},
		{"epoch millis into date", `{"at":"2024-05-01"}`, `{"at":1714557600000}`, "", ""},
		{"null is ignored", `{"n":null}`, `{"n":"x"}`, "", ""},
		{"null into long", `{"n":1}`, `{"n":null}`, "", ""},
		{"numeric string is text", `{"code":"123"}`, `{"code":"abc"}`, "", ""},
		{"metadata field", `{}`, `{"_id":"x"}`,
			"[1:8] failed to parse field [_id] of type [_id] in document with id '2'. Preview of field's value: 'x'", "document_parsing_exception"},
		{"not json", `{}`, `{"a":}`, "[1:6] failed to parse: Unexpected character ('}' (code 125)): expected a valid value (JSON String, Number, Array, Object or token 'null', 'true' or 'false')", "x_content_parse_exception"},
		{"not an object", `{}`, `[1]`, "[1:1] Malformed content, must start with an object", ""},
		{"duplicate field", `{}`, `{"a":1,"a":2}`, "[1:8] failed to parse: Duplicate field 'a'", "x_content_parse_exception"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			c := newClient(t, s)
			br := mustBulk(t, c, lines(`{"index":{"_index":"m","_id":"1"}}`, tt.first, `{"index":{"_index":"m","_id":"2"}}`, tt.second))
			if _, first := only(t, br.Items[0]); first.Status != 201 {
				t.Fatalf("first document refused: %+v", first.Error)
			}
			_, it := only(t, br.Items[1])
			if tt.reason == "" {
				if it.Status != 201 {
					t.Errorf("second document refused: %+v", it.Error)
				}
				return
			}
			if it.Status != 400 || it.Error == nil {
				t.Fatalf("second document: status %d, want 400", it.Status)
			}
			wantType := "document_parsing_exception"
			if it.Error.Type != wantType || it.Error.Reason != tt.reason {
				t.Errorf("error %s %q\nwant  %s %q", it.Error.Type, it.Error.Reason, wantType, tt.reason)
			}
			gotCause := ""
			if it.Error.CausedBy != nil {
				gotCause = it.Error.CausedBy.Type
			}
			if gotCause != tt.cause {
				t.Errorf("caused_by %q, want %q", gotCause, tt.cause)
			}
			if _, ok := s.Doc("m", "2"); ok {
				t.Error("the refused document was stored")
			}
		})
	}
}

// The reason, caused_by included, of the commonest refusal, exactly.
func TestMappingErrorBody(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	br := mustBulk(t, c, lines(`{"index":{"_index":"m","_id":"x"}}`, `{"Amount":1}`, `{"index":{"_index":"m","_id":"x"}}`, `{"Amount":"abc"}`))
	_, it := only(t, br.Items[1])
	if it.Error.CausedBy.Reason != `For input string: "abc"` || it.Error.Index != "" {
		t.Errorf("error %+v, caused by %+v", it.Error, it.Error.CausedBy)
	}
	if d, _ := s.Doc("m", "x"); d.Version != 1 || string(d.Source) != `{"Amount":1}` {
		t.Errorf("the refused write changed the document: %+v", d)
	}
}

// Dynamic mapping adds the types Elasticsearch picks, and a refused
// document adds none.
func TestDynamicMappingTypes(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	mustBulk(t, c, lines(`{"index":{"_index":"m","_id":"1"}}`,
		`{"s":"x","n":1,"f":1.5,"b":true,"d":"2024-05-01T10:00:00.123+02:00","d2":"2024/05/01","o":{"k":"v"},"e":[],"z":null,"num":"12"}`,
		`{"index":{"_index":"m","_id":"2"}}`, `{"s":"y","new":1,"n":"bad"}`))
	want := `{"properties":{"b":{"type":"boolean"},"d":{"type":"date"},"d2":{"type":"date","format":"yyyy/MM/dd HH:mm:ss||yyyy/MM/dd"},` +
		`"f":{"type":"float"},"n":{"type":"long"},"num":{"type":"text","fields":{"keyword":{"type":"keyword","ignore_above":256}}},` +
		`"o":{"properties":{"k":{"type":"text","fields":{"keyword":{"type":"keyword","ignore_above":256}}}}},` +
		`"s":{"type":"text","fields":{"keyword":{"type":"keyword","ignore_above":256}}}}}`
	if got := string(s.Mapping("m")); got != want {
		t.Errorf("mapping\n%s\nwant\n%s", got, want)
	}
}

// Explicit mappings given with PUT win over dynamic mapping.
func TestExplicitMapping(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	body := `{"mappings":{"dynamic":"strict","properties":{"id":{"type":"keyword"},"n":{"type":"integer"},` +
		`"at":{"type":"date","format":"yyyy-MM-dd"},"meta":{"type":"object","dynamic":true},"raw":{"type":"object","enabled":false},` +
		`"loose":{"type":"long","ignore_malformed":true}}}}`
	res, err := esapi.IndicesCreateRequest{Index: "x", Body: strings.NewReader(body)}.Do(t.Context(), c)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("create: %v %v", err, res)
	}
	res.Body.Close()
	tests := []struct {
		doc, reason string
	}{
		{`{"id":42}`, ""},
		{`{"n":"7"}`, ""},
		{`{"n":3000000000}`, "[1:6] failed to parse field [n] of type [integer] in document with id '1'. Preview of field's value: '3000000000'"},
		{`{"at":"2024-05-01"}`, ""},
		{`{"at":"2024-05-01T10:00:00Z"}`, "[1:7] failed to parse field [at] of type [date] in document with id '1'. Preview of field's value: '2024-05-01T10:00:00Z'"},
		{`{"other":1}`, "[1:10] mapping set to strict, dynamic introduction of [other] within [_doc] is not allowed"},
		{`{"meta":{"anything":{"goes":1}}}`, ""},
		{`{"raw":{"x":[1,"a",{"b":null}]}}`, ""},
		{`{"loose":"not a number"}`, ""},
	}
	for _, tt := range tests {
		br := mustBulk(t, c, lines(`{"index":{"_index":"x","_id":"1"}}`, tt.doc))
		_, it := only(t, br.Items[0])
		reason := ""
		if it.Error != nil {
			reason = it.Error.Reason
		}
		if reason != tt.reason {
			t.Errorf("%s: %q, want %q", tt.doc, reason, tt.reason)
		}
	}
	if got := string(s.Mapping("x")); !strings.Contains(got, `"meta":{"dynamic":"true","properties":{"anything":{"properties":{"goes":{"type":"long"}}}}}`) {
		t.Errorf("mapping %s", got)
	}
}

func TestFieldLimits(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	res, err := esapi.IndicesCreateRequest{Index: "l", Body: strings.NewReader(`{"settings":{"index.mapping.total_fields.limit":3,"index":{"mapping":{"depth":{"limit":2}}}}}`)}.Do(t.Context(), c)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("create: %v %v", err, res)
	}
	res.Body.Close()
	br := mustBulk(t, c, lines(`{"index":{"_index":"l","_id":"1"}}`, `{"a":1,"b":2,"c":3,"d":4}`,
		`{"index":{"_index":"l","_id":"2"}}`, `{"o":{"p":{"q":{"r":1}}}}`))
	want := []string{
		"[1:24] failed to parse: Limit of total fields [3] has been exceeded while adding new fields [4]",
		"[1:16] failed to parse: Limit of mapping depth [2] has been exceeded due to object field [o.p.q]",
	}
	for i, w := range want {
		if _, it := only(t, br.Items[i]); it.Error == nil || it.Error.Reason != w {
			t.Errorf("item %d: %+v, want %q", i, it.Error, w)
		}
	}
}

func TestDateFormats(t *testing.T) {
	tests := []struct {
		format, value string
		ok            bool
	}{
		{"strict_date_optional_time", "2024-02-29", true},
		{"strict_date_optional_time", "2023-02-29", false},
		{"strict_date_optional_time", "2024-1-01", false},
		{"strict_date_optional_time", "2024-01-01T10:20:30.123456789+05:30", true},
		{"strict_date_optional_time", "2024-01-01T25:00", false},
		{"strict_date_optional_time", "2024-01-01 10:00", false},
		{"date_optional_time", "2024-1-1T1:2", true},
		{defaultDateFormat, "1714557600000", true},
		{defaultDateFormat, "-1.5", true},
		{"yyyy/MM/dd HH:mm:ss||yyyy/MM/dd", "2024/05/01", true},
		{"yyyy/MM/dd HH:mm:ss||yyyy/MM/dd", "2024/05/01 10:00:00", true},
		{"yyyy/MM/dd HH:mm:ss||yyyy/MM/dd", "2024-05-01", false},
		{"dd.MM.yyyy", "01.05.2024", true},
		{"dd MMM yyyy", "01 May 2024", true},
		{"epoch_second", "abc", false},
		{"week_date", "anything", true},
	}
	for _, tt := range tests {
		if got := parseDate(tt.format, tt.value); got != tt.ok {
			t.Errorf("parseDate(%q, %q) = %v", tt.format, tt.value, got)
		}
	}
}

func TestInvalidMappings(t *testing.T) {
	s := newServer(t)
	tests := []struct{ body, reason string }{
		{`{"mappings":{"properties":{"a":{"type":"strnig"}}}}`, "Failed to parse mapping: No handler for type [strnig] declared on field [a]"},
		{`{"mappings":{"_doc":{"properties":{}}}}`, "Failed to parse mapping: Root mapping definition has unsupported parameters:  [_doc : {properties={}}]"},
		{`{"mapping":{}}`, "unknown key [mapping] for create index"},
	}
	for i, tt := range tests {
		r := raw(t, s, "PUT", fmt.Sprintf("/bad%d", i), []byte(tt.body))
		var eb errorBody
		decode(t, r.body, &eb)
		if r.status != 400 || eb.Error.Reason != tt.reason {
			t.Errorf("%s: %d %s", tt.body, r.status, r.body)
		}
	}
	if len(s.Indices()) != 0 {
		t.Errorf("indices %v", s.Indices())
	}
}
