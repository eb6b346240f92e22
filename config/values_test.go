package config

import (
	"math"
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int
		err  string
	}{
		{"1000", 1000, ""},
		{"1000B", 1000, ""},
		{"4MiB", 4 << 20, ""},
		{"4 MiB", 4 << 20, ""},
		{"512KiB", 512 << 10, ""},
		{"1GiB", 1 << 30, ""},
		{"1MB", 1000000, ""},
		{"2kB", 2000, ""},
		{"2KB", 2000, ""},
		{"3GB", 3000000000, ""},
		{"0", 0, "size must be greater than 0"},
		{"", 0, errSize.Error()},
		{"MiB", 0, errSize.Error()},
		{"-1MiB", 0, errSize.Error()},
		{"+1", 0, errSize.Error()},
		{"1.5MiB", 0, errSize.Error()},
		{"4M", 0, errSize.Error()},
		{"4mib", 0, errSize.Error()},
		{"4  MiB", 0, errSize.Error()},
		{strconv.Itoa(math.MaxInt), math.MaxInt, ""},
		{"99999999999999999999", 0, "size too large"},
		{"9999999999GiB", 0, "size too large"},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		var msg string
		if err != nil {
			msg = err.Error()
		}
		if got != tt.want || msg != tt.err {
			t.Errorf("parseSize(%q) = %d, %q; want %d, %q", tt.in, got, msg, tt.want, tt.err)
		}
	}
}

func TestChecks(t *testing.T) {
	tests := []struct {
		check func(string) string
		in    string
		ok    bool
	}{
		{checkPipelineName, "helpdesk", true},
		{checkPipelineName, "a1_b", true},
		{checkPipelineName, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true}, // 40
		{checkPipelineName, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{checkPipelineName, "1a", false},
		{checkPipelineName, "_a", false},
		{checkPipelineName, "a-b", false},
		{checkPipelineName, "Help", false},
		{checkSinkName, "read-model_2", true},
		{checkSinkName, "-a", false},
		{checkSinkName, "a.b", false},
		{checkSlotName("slot"), "0_cdc", true},
		{checkSlotName("slot"), "cdc-x", false},
		{checkSlotName("slot"), "", false},
		{checkIdentifier, "_private", true},
		{checkIdentifier, "helpdesk2", true},
		{checkIdentifier, "Helpdesk", false},
		{checkIdentifier, "a b", false},
		{checkGlob, "incident_*", true},
		{checkGlob, "[a-c]?x", true},
		{checkGlob, `\*`, true},
		{checkGlob, "", false},
		{checkGlob, "[", false},
		{checkGlob, "a[", false},
		{checkGlob, `a\`, false},
		{checkTenant, "*DEFAULT*", true},
		{checkTenant, "", false},
	}
	for _, tt := range tests {
		if msg := tt.check(tt.in); (msg == "") != tt.ok {
			t.Errorf("check(%q) = %q, want ok=%v", tt.in, msg, tt.ok)
		}
	}
}
