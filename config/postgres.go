package config

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/martencdc/cdc/sinks/postgres"
)

// PostgresOptions configures a "postgres" sink (SPEC §4): read models
// projected by SQL statements, or a copy of the events, in a target
// database, written together with the sink's checkpoint.
type PostgresOptions struct {
	// DSN is the target database; it may be the source. Required.
	DSN string
	// Mode is postgres.Modes(): projections (default) or events.
	Mode postgres.Mode
	// Table is where mode events copies the events; default cdc_events.
	Table string
	// Projections are the SQL projections of mode projections.
	Projections []ProjectionOptions
}

// Kind returns "postgres".
func (*PostgresOptions) Kind() string { return "postgres" }

// ProjectionOptions is one SQL projection: statements run for each event
// whose type matches one of the globs, with $field placeholders bound to
// the event's fields.
type ProjectionOptions struct {
	Name string   // names the projection in errors; default "projections[i]"
	On   []string // event-type globs (path.Match syntax)
	SQL  []string // statements, in order
	Line int      // where the projection is in the file
}

// postgresKind decodes the keys of a postgres sink.
var postgresKind = sinkKind{
	name: "postgres",
	keys: []string{"dsn", "mode", "table", "projections"},
	decode: func(m *mapping) SinkOptions {
		o := &PostgresOptions{Mode: postgres.Modes()[0]}
		o.DSN, _ = m.dsn("dsn", true)
		if v, ok := oneOf(m, "mode", postgres.Modes()...); ok {
			o.Mode = v
		}
		o.Table, _ = m.str("table", false, nil)
		items, line, ok := m.list("projections")
		switch {
		case ok && o.Mode == postgres.ModeEvents:
			m.d.addf(line, join(m.path, "projections"), "not used with mode: events (it copies the events into table)")
		case !ok && o.Mode == postgres.ModeProjections:
			if _, present := m.get("projections"); !present {
				m.d.addf(m.line, join(m.path, "projections"), "required with mode: projections (or set mode: events)")
			}
		case ok && len(items) == 0:
			m.d.addf(line, join(m.path, "projections"), "must list at least one projection")
		}
		for i, n := range items {
			path := fmt.Sprintf("%s[%d]", join(m.path, "projections"), i)
			if p, ok := decodeProjection(m.d.mapping(n, path, n.Line), i); ok {
				o.Projections = append(o.Projections, p)
			}
		}
		if o.Table != "" && o.Mode != postgres.ModeEvents {
			m.d.addf(m.valueLine("table"), join(m.path, "table"), "only used with mode: events")
		}
		return o
	},
}

// decodeProjection reads one projection: on (globs) and sql (a statement
// or a list of them).
func decodeProjection(m *mapping, i int) (ProjectionOptions, bool) {
	p := ProjectionOptions{Name: fmt.Sprintf("projections[%d]", i), Line: m.line}
	if m == nil {
		return p, false
	}
	m.only("name", "on", "sql")
	if name, ok := m.str("name", false, nil); ok && name != "" {
		p.Name = name
	}
	p.On = m.requiredStrs("on", checkGlob, "event-type glob")
	f, present := m.get("sql")
	switch {
	case !present:
		m.required("sql")
	case f.value.Kind == yaml.SequenceNode:
		p.SQL, _ = m.strs("sql", nonEmpty)
		if len(f.value.Content) == 0 {
			m.d.addf(f.value.Line, join(m.path, "sql"), "must hold at least one statement")
		}
	default:
		if s, ok := m.str("sql", true, nil); ok {
			p.SQL = []string{s}
		}
	}
	return p, len(p.On) > 0 && len(p.SQL) > 0
}

func nonEmpty(s string) string {
	if s == "" {
		return "empty statement"
	}
	return ""
}
