package config

import (
	"reflect"
	"testing"
)

func TestExpand(t *testing.T) {
	lookup := env(map[string]string{"A": "alpha", "EMPTY": "", "DOLLAR": "$x"})
	tests := []struct {
		in       string
		want     string
		problems []string
	}{
		{"plain", "plain", nil},
		{"", "", nil},
		{"${A}", "alpha", nil},
		{"x${A}y${A}", "xalphayalpha", nil},
		{"${A:-d}", "alpha", nil},
		{"${B:-d}", "d", nil},
		{"${EMPTY:-d}", "d", nil},
		{"${EMPTY}", "", nil},
		{"${B:-}", "", nil},
		{"${B:-a:-b}", "a:-b", nil},
		{"${DOLLAR}", "$x", nil}, // values are not expanded again
		{"$$", "$", nil},
		{"$$$$", "$$", nil},
		{"$$$", "$$", nil},
		{"$", "$", nil},
		{"a$b", "a$b", nil},
		{"$${A}", "${A}", nil},
		{"$$${A}", "$alpha", nil},
		{"${B}", "", []string{"environment variable B is not set and ${B} has no default"}},
		{"${B}${C}", "", []string{
			"environment variable B is not set and ${B} has no default",
			"environment variable C is not set and ${C} has no default",
		}},
		{"${A", "", []string{`unterminated "${" (write "$$" for a literal "$")`}},
		{"${", "", []string{`unterminated "${" (write "$$" for a literal "$")`}},
		{"${}", "", []string{`invalid variable name in "${...}": want ${NAME} or ${NAME:-default} (write "$$" for a literal "$")`}},
		{"${1A}", "", []string{`invalid variable name in "${...}": want ${NAME} or ${NAME:-default} (write "$$" for a literal "$")`}},
		{"${A-x}", "", []string{`invalid variable name in "${...}": want ${NAME} or ${NAME:-default} (write "$$" for a literal "$")`}},
		{"${B:-${A}}", "", []string{`${B:-...}: a default cannot contain "${"`}},
	}
	for _, tt := range tests {
		got, problems := expand(tt.in, lookup)
		if got != tt.want || !reflect.DeepEqual(problems, tt.problems) {
			t.Errorf("expand(%q) = %q, %q; want %q, %q", tt.in, got, problems, tt.want, tt.problems)
		}
	}
}
