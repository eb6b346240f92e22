package esfake

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestParseJSONErrors(t *testing.T) {
	tests := []struct {
		in, msg string
		line    int
		col     int
	}{
		{`{"a":1,}`, "Unexpected character ('}' (code 125)): was expecting double-quote to start field name", 1, 8},
		{`{"a" 1}`, "Unexpected character ('1' (code 49)): was expecting a colon to separate field name and value", 1, 6},
		{"{\n  \"a\": tru\n}", "Unrecognized token 'tru': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')", 2, 8},
		{`{"a":01}`, "Invalid numeric value: Leading zeroes not allowed", 1, 6},
		{`{"a":1 "b":2}`, "Unexpected character ('\"' (code 34)): was expecting comma to separate Object entries", 1, 8},
		{`[1,]`, "Unexpected character (']' (code 93)): expected a valid value (JSON String, Number, Array, Object or token 'null', 'true' or 'false')", 1, 4},
		{`{"a":"x` + "\n" + `"}`, "Illegal unquoted character ((CTRL-CHAR, code 10)): has to be escaped using backslash to be included in string value", 1, 8},
		{`{"a":1}{}`, "Unexpected character ('{' (code 123)): expected end of input", 1, 8},
		{`{"a":{"b":1}`, "Unexpected end-of-input: expected close marker for Object", 1, 13},
		{`{"é":1,"é":2}`, "Duplicate field 'é'", 1, 9},
	}
	for _, tt := range tests {
		_, err := parseJSON([]byte(tt.in))
		se, ok := err.(*jsonSyntaxError)
		if !ok {
			t.Errorf("%q: err %v", tt.in, err)
			continue
		}
		l, c := location([]byte(tt.in), se.off)
		if se.msg != tt.msg || l != tt.line || c != tt.col {
			t.Errorf("%q: [%d:%d] %s\nwant  [%d:%d] %s", tt.in, l, c, se.msg, tt.line, tt.col, tt.msg)
		}
	}
	for _, ok := range []string{`{"a":/* comment */1} // trailing`, `{"a":"\u00e9\ud83d\ude00"}`, ` [1, -0.5e+3, true, null] `} {
		if _, err := parseJSON([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	v, _ := parseJSON([]byte(`{"a":"\u00e9\ud83d\ude00"}`))
	if v.member("a").s != "é😀" {
		t.Errorf("unicode escapes: %q", v.member("a").s)
	}
}

func TestJavaFormatting(t *testing.T) {
	doubles := map[float64]string{1: "1.0", 1.5: "1.5", 1e7: "1.0E7", 1.234e-5: "1.234E-5", 0.001: "0.001", 123456.789: "123456.789",
		math.Inf(1): "Infinity", math.NaN(): "NaN", 1e20: "1.0E20", -2.5e-4: "-2.5E-4"}
	for f, want := range doubles {
		if got := javaDouble(f); got != want {
			t.Errorf("javaDouble(%v) = %s, want %s", f, got, want)
		}
	}
	numbers := map[string]string{"12": "12", "-0": "0", "1.50": "1.5", "1e3": "1000.0", "99999999999999999999": "99999999999999999999", "1e400": "Infinity"}
	for lit, want := range numbers {
		if got := javaNumber(lit); got != want {
			t.Errorf("javaNumber(%s) = %s, want %s", lit, got, want)
		}
	}
	// HashMap order: "zip" hashes to bucket 0 and "src" to bucket 5, as in
	// Elasticsearch's own "{zip=https://x/a.zip, src=https://x}" preview.
	previews := map[string]string{
		`{"src":"https://x","zip":"https://x/a.zip"}`: "{zip=https://x/a.zip, src=https://x}",
		`{"b":[1,2.0,"x",null],"a":{}}`:               "{a={}, b=[1, 2.0, x, null]}",
	}
	for in, want := range previews {
		v, _ := parseJSON([]byte(in))
		if got := javaString(v); got != want {
			t.Errorf("javaString(%s) = %s, want %s", in, got, want)
		}
	}
	if got := javaFloatString(math.Inf(1), 32); got != "Infinity" {
		t.Errorf("float overflow: %s", got)
	}
	if got := javaFloatString(float64(float32(0.1)), 32); got != "0.1" {
		t.Errorf("float 0.1: %s", got)
	}
}

func TestJavaNumberParsing(t *testing.T) {
	for s, ok := range map[string]bool{"1": true, " 1.5 ": true, "1e3": true, "1.5f": true, "-Infinity": true, "NaN": true,
		"0x1.8p1": true, "abc": false, "inf": false, "1_000": false, "": false, ".5": true, "5.": true} {
		if got := javaParseDoubleOK(s); got != ok {
			t.Errorf("javaParseDouble(%q) ok = %v", s, got)
		}
	}
	longs := []struct {
		in     string
		want   int64
		reason string
	}{
		{"42", 42, ""}, {"-7", -7, ""}, {"12.9", 12, ""}, {"-12.9", -12, ""}, {"1e3", 1000, ""},
		{"abc", 0, `For input string: "abc"`}, {" 1", 0, `For input string: " 1"`},
		{"9223372036854775808", 0, "Value [9223372036854775808] is out of range for a long"},
	}
	for _, tt := range longs {
		n, e := stringToLong(tt.in)
		reason := ""
		if e != nil {
			reason = e.reason
		}
		if n != tt.want || reason != tt.reason {
			t.Errorf("stringToLong(%q) = %d, %q", tt.in, n, reason)
		}
	}
}

func TestFilterPathRules(t *testing.T) {
	doc := `{"took":3,"errors":true,"items":[{"index":{"_id":"1","status":201}},{"index":{"_id":"2","status":400,"error":{"type":"x","caused_by":{"type":"y"}}}}],"nested":{"a":{"b":{"c":1,"d":2}}}}`
	tests := []struct{ filter, want string }{
		{"took", `{"took":3}`},
		{"items.*.error", `{"items":[{"index":{"error":{"type":"x","caused_by":{"type":"y"}}}}]}`},
		{"items.*._id,errors", `{"errors":true,"items":[{"index":{"_id":"1"}},{"index":{"_id":"2"}}]}`},
		{"**.c", `{"nested":{"a":{"b":{"c":1}}}}`},
		{"**.type", `{"items":[{"index":{"error":{"type":"x","caused_by":{"type":"y"}}}}]}`},
		{"nested.*.b.d", `{"nested":{"a":{"b":{"d":2}}}}`},
		{"-items,-nested", `{"took":3,"errors":true}`},
		{"nested,-nested.a.b.c", `{"nested":{"a":{"b":{"d":2}}}}`},
		{"nomatch", `{}`},
		{"ite*", `{"items":[{"index":{"_id":"1","status":201}},{"index":{"_id":"2","status":400,"error":{"type":"x","caused_by":{"type":"y"}}}}]}`},
	}
	v, err := parseJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		got := string(encodeJSON(parseFilterPath(tt.filter).apply(v), false))
		if got != tt.want {
			t.Errorf("filter_path=%s\n got %s\nwant %s", tt.filter, got, tt.want)
		}
	}
}

func TestPrettyFormat(t *testing.T) {
	got := string(encodeJSON(obj{{"a", []any{1, obj{}}}, {"b", []any{}}, {"c", rawJSON(`{"x":"é\n"}`)}}, true))
	want := "{\n  \"a\" : [\n    1,\n    { }\n  ],\n  \"b\" : [ ],\n  \"c\" : {\n    \"x\" : \"é\\n\"\n  }\n}\n"
	if got != want {
		t.Errorf("pretty:\n%s\nwant\n%s", got, want)
	}
}

// FuzzParseJSON: whatever parses re-encodes to valid JSON, and valid JSON
// without comments parses unless it repeats a field.
func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":[1,2,{"b":null}]}`, `"x\u0041"`, `-1.5e3`, `{"a":1,"a":2}`, `[`, `{"a":/**/1}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseJSON(data)
		if err == nil {
			if out := encodeJSON(v, false); !json.Valid(out) {
				t.Fatalf("%q re-encodes to invalid %q", data, out)
			}
			return
		}
		if json.Valid(data) && !bytes.Contains(data, []byte("/")) && !strings.Contains(err.Error(), "Duplicate field") &&
			!strings.Contains(err.Error(), "nesting depth") {
			t.Fatalf("valid JSON %q refused: %v", data, err)
		}
	})
}
