package config

import (
	"errors"
	"slices"
	"strings"

	"github.com/martencdc/cdc/route"
)

// sinkKind describes one sink kind: the keys it accepts beyond
// commonSinkKeys and how to decode them into its options struct.
//
// To add a kind: write its options struct (with a Kind method) next to
// StdoutOptions, add an entry to sinkKinds whose decode reads the kind's keys
// with the mapping getters (str, strs, positiveInt, duration, size, oneOf,
// child, list), and remove it from plannedSinkKinds.
type sinkKind struct {
	name   string
	keys   []string
	decode func(m *mapping) SinkOptions
}

// sinkKinds are the kinds this version can run.
var sinkKinds = []sinkKind{
	{
		name:   "stdout",
		decode: func(*mapping) SinkOptions { return &StdoutOptions{} },
	},
	{
		name: "file",
		keys: []string{"path"},
		decode: func(m *mapping) SinkOptions {
			o := &FileOptions{}
			o.Path, o.Template, _ = m.template("path", true)
			return o
		},
	},
	kafkaKind,
	elasticKind,
	postgresKind,
	natsKind,
}

// FileOptions configures a "file" sink, which appends one JSON envelope per
// line to the file whose path Template renders for each event.
type FileOptions struct {
	// Path is the template of the file each event is appended to, e.g.
	// "out/{{.TenantID}}/{{.Type}}.jsonl" (see package route). A relative
	// path is relative to the working directory of cdc. Required.
	Path string
	// Template is Path parsed; Parse sets it.
	Template *route.Template
}

// Kind returns "file".
func (*FileOptions) Kind() string { return "file" }

// template returns the destination-name template at key (see package
// route), as written and parsed. ok is false when the key is absent
// (reported if req) or the template is invalid (reported).
func (m *mapping) template(key string, req bool) (text string, t *route.Template, ok bool) {
	text, ok = m.str(key, req, func(s string) string {
		var err error
		if t, err = route.Parse(s); err != nil {
			var pe *route.ParseError
			if errors.As(err, &pe) {
				return "invalid template: " + pe.Msg
			}
			return "invalid template: " + err.Error()
		}
		return ""
	})
	if !ok {
		return "", nil, false
	}
	return text, t, true
}

// plannedSinkKinds are specified (SPEC §4) but not built yet.
var plannedSinkKinds = []string{}

// commonSinkKeys are the keys every sink kind accepts.
var commonSinkKeys = []string{"name", "kind", "include", "exclude", "tenants", "batch", "on_error", "start", "marten_progress"}

// SinkKinds returns the names of the sink kinds this version can run.
func SinkKinds() []string {
	names := make([]string, len(sinkKinds))
	for i, k := range sinkKinds {
		names[i] = k.name
	}
	return names
}

// sinkKindNamed returns the kind called name, or the message of the problem.
func sinkKindNamed(name string) (*sinkKind, string) {
	for i := range sinkKinds {
		if sinkKinds[i].name == name {
			return &sinkKinds[i], ""
		}
	}
	available := "(available: " + strings.Join(SinkKinds(), ", ") + ")"
	if slices.Contains(plannedSinkKinds, name) {
		return nil, "kind " + quote(name) + " is not available in this version " + available
	}
	return nil, "unknown kind " + quote(name) + " " + available
}
