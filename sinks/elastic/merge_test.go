package elastic

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestMergeRFC7386 applies the examples of RFC 7386, appendix A, whose
// target and patch are objects, and checks the exact text.
func TestMergeRFC7386(t *testing.T) {
	tests := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// Not from the RFC.
		{`{"a":1,"b":2,"c":3}`, `{"b":null,"d":4,"b":5}`, `{"a":1,"c":3,"d":4,"b":5}`},
		{`{"n":12345678901234567890123,"f":1.50}`, `{"g":1e400}`, `{"n":12345678901234567890123,"f":1.50,"g":1e400}`},
		{`{"a":"x"}`, `{"a":{"b":null,"c":[1,{"d":null}]}}`, `{"a":{"c":[1,{"d":null}]}}`},
		{` { "a" : { "b" : 1 , "c" : "}\"{" } } `, `{"a":{"d":true}}`, `{"a":{"b":1,"c":"}\"{","d":true}}`},
		{`{"\u0061":1}`, `{"a":2}`, `{"\u0061":2}`},
		{`{"a":{"b":1}}`, `{"a":{}}`, `{"a":{"b":1}}`},
		{`{"a":{"b":1}}`, `{"a":{"b":null}}`, `{"a":{}}`},
	}
	for _, tt := range tests {
		o, err := parseObject([]byte(tt.target))
		if err != nil {
			t.Fatalf("parse %s: %v", tt.target, err)
		}
		if err := o.patch([]byte(tt.patch)); err != nil {
			t.Fatalf("%s + %s: %v", tt.target, tt.patch, err)
		}
		if got := string(o.appendTo(nil)); got != tt.want {
			t.Errorf("%s + %s = %s, want %s", tt.target, tt.patch, got, tt.want)
		}
		if o.size() < len(tt.want) {
			t.Errorf("%s + %s: size %d < %d", tt.target, tt.patch, o.size(), len(tt.want))
		}
	}
}

func TestParseObjectMalformed(t *testing.T) {
	for _, raw := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1`, `{"a":1,}`, `{a:1}`, `{"a":"b}`, `{"a":[1}`} {
		if _, err := parseObject([]byte(raw)); err == nil {
			t.Errorf("parseObject(%q) succeeded", raw)
		}
	}
}

// referenceMerge is RFC 7386's MergePatch over decoded values.
func referenceMerge(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = referenceMerge(t[k], v)
		}
	}
	return t
}

// FuzzMerge checks the merge against referenceMerge.
func FuzzMerge(f *testing.F) {
	f.Add(`{"a":{"b":1,"c":[1,2]},"d":"x"}`, `{"a":{"b":null,"e":{"f":null}},"d":{"g":1}}`)
	f.Add(`{}`, `{"a":null}`)
	f.Add(`{"a":"\"}"}`, `{"a\u00e9":1}`)
	f.Fuzz(func(t *testing.T, target, patch string) {
		var tv, pv any
		if json.Unmarshal([]byte(target), &tv) != nil || json.Unmarshal([]byte(patch), &pv) != nil {
			return
		}
		if _, ok := tv.(map[string]any); !ok {
			return
		}
		if _, ok := pv.(map[string]any); !ok {
			return
		}
		o, err := parseObject([]byte(target))
		if err != nil {
			t.Fatalf("parse %s: %v", target, err)
		}
		if err := o.patch([]byte(patch)); err != nil {
			t.Fatalf("patch %s: %v", patch, err)
		}
		out := o.appendTo(nil)
		var got any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("merged text %s: %v", out, err)
		}
		if want := referenceMerge(tv, pv); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s + %s = %s, want %v", target, patch, out, want)
		}
	})
}
