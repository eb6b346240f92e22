package config

import (
	"fmt"
	"strings"
)

// expand replaces ${VAR} and ${VAR:-default} in s with values from lookup,
// and $$ with $. It returns the messages of the problems found: an unset
// variable without a default, an unterminated "${", an invalid name. The
// messages name variables but never show values or the text around them.
func expand(s string, lookup func(string) (string, bool)) (string, []string) {
	return expandEscaped(s, lookup, nil)
}

// escaper returns how to escape the value of the ${VAR} at byte offset at
// of a string, or nil to leave it as it is.
type escaper func(at int) func(string) string

// expandEscaped is expand with the value of each ${VAR} escaped by
// escape(offset of its "$" in s), when escape is not nil and returns a
// function (defaults are text of the file: they are not escaped).
func expandEscaped(s string, lookup func(string) (string, bool), escape escaper) (string, []string) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	var problems []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c != '$':
			b.WriteByte(c)
			i++
			continue
		case strings.HasPrefix(s[i:], "$$"):
			b.WriteByte('$')
			i += 2
			continue
		case !strings.HasPrefix(s[i:], "${"):
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			problems = append(problems, `unterminated "${" (write "$$" for a literal "$")`)
			break
		}
		body := s[i+2 : i+2+end]
		at := i
		i += 2 + end + 1
		name, def, hasDef := strings.Cut(body, ":-")
		if !validVarName(name) {
			problems = append(problems, `invalid variable name in "${...}": want ${NAME} or ${NAME:-default} (write "$$" for a literal "$")`)
			continue
		}
		if hasDef && strings.Contains(def, "${") {
			problems = append(problems, fmt.Sprintf("${%s:-...}: a default cannot contain \"${\"", name))
			continue
		}
		v, set := lookup(name)
		switch {
		case set && (v != "" || !hasDef):
			if escape != nil {
				if esc := escape(at); esc != nil {
					v = esc(v)
				}
			}
			b.WriteString(v)
		case hasDef:
			d, _ := expand(def, lookup) // only $$ and lone $ remain
			b.WriteString(d)
		default:
			problems = append(problems, fmt.Sprintf("environment variable %s is not set and ${%s} has no default", name, name))
		}
	}
	if len(problems) > 0 {
		return "", problems
	}
	return b.String(), nil
}

// validVarName reports whether s is a valid environment variable name:
// a letter or _, then letters, digits or _.
func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
