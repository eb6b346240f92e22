package config

import (
	"slices"
	"strings"
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
}

// plannedSinkKinds are specified (SPEC §4) but not built yet.
var plannedSinkKinds = []string{"kafka", "elastic", "postgres"}

// commonSinkKeys are the keys every sink kind accepts.
var commonSinkKeys = []string{"name", "kind", "include", "exclude", "tenants", "batch", "on_error"}

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
