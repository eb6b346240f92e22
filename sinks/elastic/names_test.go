package elastic

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func TestCheckIndex(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"helpdesk-incident_logged", true},
		{".hidden", true},
		{"logs-2026.11", true},
		{"événements", true},
		{"", false},
		{"Helpdesk", false},
		{"-a", false},
		{"_a", false},
		{"+a", false},
		{".", false},
		{"..", false},
		{"a b", false},
		{"a:b", false},
		{"a/b", false},
		{"a*", false},
		{"a#", false},
		{"a,b", false},
		{"a\x01", false},
		{"a\xff", false},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		if err := checkIndex(tt.name); (err == nil) != tt.ok {
			t.Errorf("checkIndex(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// TestQuotable checks that what quotable accepts, strconv.Quote (which the
// bulk indexer uses) turns into the JSON string of the same value, and
// that it refuses the rest.
func TestQuotable(t *testing.T) {
	tests := []struct {
		s  string
		ok bool
	}{
		{"acme:0192f0c4-5a7e-7d3b-9c2e-6f1a8b3d4e5f", true},
		{`with "quotes" and \backslash`, true},
		{"tenant é 世界 😀", true},
		{"soft\u00adhyphen zero\u200bwidth", true},
		{"del\x7f", false},
		{"tab\t", false},
		{"bad\xc3", false},
		{"tag\U000E0001", false},
	}
	for _, tt := range tests {
		err := quotable(tt.s)
		if (err == nil) != tt.ok {
			t.Errorf("quotable(%q) = %v, want ok %v", tt.s, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		var back string
		if err := json.Unmarshal([]byte(strconv.Quote(tt.s)), &back); err != nil || back != tt.s {
			t.Errorf("strconv.Quote(%q) is not the JSON string: %v, %q", tt.s, err, back)
		}
	}
}

func TestCheckID(t *testing.T) {
	if err := checkID(""); err == nil {
		t.Error("empty id accepted")
	}
	if err := checkID(strings.Repeat("x", 512)); err != nil {
		t.Errorf("512 bytes refused: %v", err)
	}
	if err := checkID(strings.Repeat("x", 513)); err == nil {
		t.Error("513 bytes accepted")
	}
}
