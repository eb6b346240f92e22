package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// This file walks yaml.Node trees: it keeps the line of every key and value,
// so each problem can name its file, line and key path.

// decoder collects the problems of one file.
type decoder struct {
	file     string
	env      func(string) (string, bool)
	problems []Problem
}

func (d *decoder) addf(line int, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// field is one key: value pair of a mapping, aliases resolved.
type field struct {
	key, value *yaml.Node
}

// mapping is a YAML mapping being decoded.
type mapping struct {
	d      *decoder
	path   string // key path of the mapping itself
	line   int    // where a missing key is reported
	keys   []string
	fields map[string]field
}

// mapping returns the mapping n at path. A null or absent n is an empty
// mapping; line is where its missing keys are reported (the line of the key
// that introduced it). It reports duplicate keys, and returns nil after
// reporting when n is not a mapping. Merge keys (<<: *anchor) are applied.
func (d *decoder) mapping(n *yaml.Node, path string, line int) *mapping {
	m := &mapping{d: d, path: path, line: line, fields: map[string]field{}}
	n = resolve(n)
	if isNull(n) {
		return m
	}
	if n.Kind != yaml.MappingNode {
		d.addf(n.Line, path, "want a mapping, got %s", describe(n))
		return nil
	}
	m.collect(n, true, map[*yaml.Node]bool{n: true})
	return m
}

// collect adds the pairs of n to m. Explicit pairs come first and a repeated
// key is an error; pairs from merge keys fill in keys not already set.
func (m *mapping) collect(n *yaml.Node, explicit bool, seen map[*yaml.Node]bool) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			m.d.addf(k.Line, m.path, "want a string key, got %s", describe(k))
			continue
		}
		if prev, dup := m.fields[k.Value]; dup {
			if explicit {
				m.d.addf(k.Line, join(m.path, k.Value), "duplicate key (first at line %d)", prev.key.Line)
			}
			continue
		}
		m.fields[k.Value] = field{key: k, value: v}
		m.keys = append(m.keys, k.Value)
	}
	for _, v := range merges {
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = sources[:0]
			for _, s := range v.Content {
				sources = append(sources, resolve(s))
			}
		}
		for _, s := range sources {
			if s.Kind != yaml.MappingNode {
				m.d.addf(s.Line, join(m.path, "<<"), "want a mapping or a list of mappings to merge, got %s", describe(s))
				continue
			}
			if !seen[s] {
				seen[s] = true
				m.collect(s, false, seen)
			}
		}
	}
}

// only reports every key of m not in known.
func (m *mapping) only(known ...string) {
	for _, k := range m.keys {
		if !slices.Contains(known, k) {
			m.d.addf(m.fields[k].key.Line, join(m.path, k), "unknown key (known: %s)", strings.Join(known, ", "))
		}
	}
}

// get returns the field at key when it is present and not null.
func (m *mapping) get(key string) (field, bool) {
	f, ok := m.fields[key]
	if !ok || isNull(f.value) {
		return field{}, false
	}
	return f, true
}

// required reports key as missing.
func (m *mapping) required(key string) {
	m.d.addf(m.line, join(m.path, key), "required")
}

// child returns the mapping at key (empty when absent), or nil after
// reporting when it is not a mapping.
func (m *mapping) child(key string) *mapping {
	f, ok := m.fields[key]
	if !ok {
		return &mapping{d: m.d, path: join(m.path, key), line: m.line, fields: map[string]field{}}
	}
	return m.d.mapping(f.value, join(m.path, key), f.key.Line)
}

// list returns the items of the sequence at key, aliases resolved, with the
// line of the key; ok is false when the key is absent or null, or (after
// reporting) not a sequence.
func (m *mapping) list(key string) (items []*yaml.Node, line int, ok bool) {
	f, ok := m.get(key)
	if !ok {
		return nil, 0, false
	}
	if f.value.Kind != yaml.SequenceNode {
		m.d.addf(f.value.Line, join(m.path, key), "want a list, got %s", describe(f.value))
		return nil, 0, false
	}
	for _, n := range f.value.Content {
		items = append(items, resolve(n))
	}
	return items, f.key.Line, true
}

// text returns the expanded text of scalar n, reporting a non-scalar or a
// failed expansion. escapeIn, if not nil, gives the escaping of ${VAR}
// values for the scalar's text (see dsnEscaper).
func (d *decoder) text(n *yaml.Node, path, want string, escapeIn func(template string) escaper) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.addf(n.Line, path, "want %s, got %s", want, describe(n))
		return "", false
	}
	var esc escaper
	if escapeIn != nil {
		esc = escapeIn(n.Value)
	}
	s, errs := expandEscaped(n.Value, d.env, esc)
	for _, e := range errs {
		d.addf(n.Line, path, "%s", e)
	}
	return s, len(errs) == 0
}

// dsn returns the connection string at key, with each ${VAR}'s value
// escaped for where it lands (see dsnEscaper). ok is false when the key is
// absent (reported if req) or invalid (reported).
func (m *mapping) dsn(key string, req bool) (string, bool) {
	return m.scalar(key, req, "a connection string", dsnEscaper, nil)
}

// str returns the expanded string at key. ok is false when the key is
// absent (reported if req) or invalid (reported). check, if not nil,
// validates the value and returns the problem's message, or "".
func (m *mapping) str(key string, req bool, check func(string) string) (string, bool) {
	return m.scalar(key, req, "a string", nil, check)
}

// scalar is str and dsn: the expanded text at key, described as want in
// errors, with ${VAR} values escaped by escapeIn (nil: as they are).
func (m *mapping) scalar(key string, req bool, want string, escapeIn func(string) escaper, check func(string) string) (string, bool) {
	f, ok := m.get(key)
	if !ok {
		if req {
			m.required(key)
		}
		return "", false
	}
	path := join(m.path, key)
	s, ok := m.d.text(f.value, path, want, escapeIn)
	if !ok {
		return "", false
	}
	if req && s == "" {
		m.d.addf(f.value.Line, path, "must not be empty")
		return "", false
	}
	if check != nil {
		if msg := check(s); msg != "" {
			m.d.addf(f.value.Line, path, "%s", msg)
			return "", false
		}
	}
	return s, true
}

// strs returns the list of strings at key, each checked by check (if not
// nil) as in str. ok is false when the key is absent or anything is invalid.
func (m *mapping) strs(key string, check func(string) string) ([]string, bool) {
	items, _, ok := m.list(key)
	if !ok {
		return nil, false
	}
	var out []string // nil for an empty list
	for i, n := range items {
		path := fmt.Sprintf("%s[%d]", join(m.path, key), i)
		s, good := m.d.text(n, path, "a string", nil)
		if good && check != nil {
			if msg := check(s); msg != "" {
				m.d.addf(n.Line, path, "%s", msg)
				good = false
			}
		}
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

// parsed returns the value at key converted by parse, which returns the
// problem's message on failure. ok is false when the key is absent or the
// value invalid (reported).
func parsed[T any](m *mapping, key, want string, parse func(string) (T, string)) (T, bool) {
	var zero T
	f, ok := m.get(key)
	if !ok {
		return zero, false
	}
	path := join(m.path, key)
	s, ok := m.d.text(f.value, path, want, nil)
	if !ok {
		return zero, false
	}
	v, msg := parse(s)
	if msg != "" {
		m.d.addf(f.value.Line, path, "%s", msg)
		return zero, false
	}
	return v, true
}

// positiveInt returns the integer > 0 at key.
func (m *mapping) positiveInt(key string) (int, bool) {
	return parsed(m, key, "an integer", func(s string) (int, string) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, "want an integer, got " + quote(s)
		}
		if n <= 0 {
			return 0, "must be greater than 0, got " + s
		}
		return n, ""
	})
}

// duration returns the positive Go duration (like 10ms or 1s) at key.
func (m *mapping) duration(key string) (time.Duration, bool) {
	return parsed(m, key, "a duration", func(s string) (time.Duration, string) {
		v, err := time.ParseDuration(s)
		if err != nil {
			return 0, "want a duration like 10ms or 1s, got " + quote(s)
		}
		if v <= 0 {
			return 0, "must be greater than 0, got " + quote(s)
		}
		return v, ""
	})
}

// size returns the positive size in bytes (like 4MiB or 1000) at key.
func (m *mapping) size(key string) (int, bool) {
	return parsed(m, key, "a size", func(s string) (int, string) {
		v, err := parseSize(s)
		if err != nil {
			return 0, err.Error() + ", got " + quote(s)
		}
		return v, ""
	})
}

// oneOf returns the value at key, which must be one of choices.
func oneOf[T ~string](m *mapping, key string, choices ...T) (T, bool) {
	return parsed(m, key, "a string", func(s string) (T, string) {
		if slices.Contains(choices, T(s)) {
			return T(s), ""
		}
		names := make([]string, len(choices))
		for i, c := range choices {
			names[i] = string(c)
		}
		return "", "want one of " + strings.Join(names, ", ") + ", got " + quote(s)
	})
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what n is without showing its value (it may be a secret).
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "null"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	}
	return "a string"
}

// quote quotes a value for an error message: shortened, and redacted in case
// it is a connection string.
func quote(s string) string {
	s = Redact(s)
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return strconv.Quote(s)
}

// join appends key to path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
