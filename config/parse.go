package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Parse parses a configuration file's contents. name is the file name used
// in error messages; lookupEnv resolves ${VAR} and ${VAR:-default} (pass
// os.LookupEnv; nil means no variable is set).
//
// On success every default is filled in. On failure the error is an
// [*Error] listing every problem found, one per line.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	d := &decoder{file: name, env: lookupEnv}
	if d.env == nil {
		d.env = func(string) (string, bool) { return "", false }
	}
	var cfg *Config
	if root, ok := d.parseYAML(data); ok {
		cfg = d.config(root)
	}
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &Error{Problems: d.problems}
	}
	return cfg, nil
}

// parseYAML parses data, which must hold at most one YAML document, and
// returns its root node (nil for an empty document).
func (d *decoder) parseYAML(data []byte) (root *yaml.Node, ok bool) {
	defer func() {
		// yaml.v3 has panicked on malformed input before: report, don't crash.
		if r := recover(); r != nil {
			d.addf(0, "", "invalid YAML: %v", r)
			root, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		d.yamlError(data, err)
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.yamlError(data, err)
		return nil, false
	default:
		d.addf(next.Line, "", "only one YAML document is allowed")
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserErrors are the messages of yaml.v3's parser, as opposed to its
// scanner (parserc.go).
var yamlParserErrors = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlError reports a syntax error of the YAML parser, with its line.
func (d *decoder) yamlError(data []byte, err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if slices.Contains(yamlParserErrors, m[2]) {
			// yaml.v3 gives parser (not scanner) errors 0-based lines.
			line++
		}
		d.addf(line, "", "invalid YAML: %s", m[2])
		return
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	// yaml.v3 leaves the line out of errors on the first line and of a few
	// errors without a position; find those ourselves.
	line := 1
	switch {
	case strings.HasPrefix(msg, "unknown anchor '"):
		name, _, _ := strings.Cut(strings.TrimPrefix(msg, "unknown anchor '"), "'")
		line = lineOf(data, func(l []byte) bool { return bytes.Contains(l, []byte("*"+name)) })
	case strings.Contains(msg, "control characters"):
		line = lineOf(data, func(l []byte) bool {
			return bytes.ContainsFunc(l, func(r rune) bool { return r < ' ' && r != '\t' && r != '\r' || r == 0x7f })
		})
	case strings.Contains(msg, "UTF-8"):
		line = lineOf(data, func(l []byte) bool { return !utf8.Valid(l) })
	}
	d.addf(line, "", "invalid YAML: %s", msg)
}

// lineOf returns the 1-based number of the first line of data matching f,
// or 0.
func lineOf(data []byte, f func([]byte) bool) int {
	for i, l := range bytes.Split(data, []byte("\n")) {
		if f(l) {
			return i + 1
		}
	}
	return 0
}

// config decodes the root mapping.
func (d *decoder) config(root *yaml.Node) *Config {
	line := 1
	if root != nil && root.Line > 0 {
		line = root.Line
	}
	m := d.mapping(root, "", line)
	if m == nil {
		return nil
	}
	m.only("pipelines")
	items, keyLine, ok := m.list("pipelines")
	if !ok {
		if _, present := m.get("pipelines"); !present {
			m.required("pipelines")
		}
		return nil
	}
	if len(items) == 0 {
		d.addf(keyLine, "pipelines", "must not be empty")
		return nil
	}
	cfg := &Config{}
	type seen struct {
		path string
		line int
	}
	names := map[string]seen{}
	slots := map[[3]string]seen{} // {kind, dsn, name} of slots and publications
	for i, n := range items {
		path := fmt.Sprintf("pipelines[%d]", i)
		p, lines := d.pipeline(n, path)
		if p == nil {
			continue
		}
		if p.Name != "" {
			if first, dup := names[p.Name]; dup {
				d.addf(lines.name, path+".name", "duplicate pipeline name %s (first at %s, line %d)", quote(p.Name), first.path, first.line)
			} else {
				names[p.Name] = seen{path, lines.name}
			}
		}
		if p.Source.DSN != "" {
			for _, s := range []struct {
				kind, name string
				line       int
			}{{"slot", p.Source.Slot, lines.slot}, {"publication", p.Source.Publication, lines.publication}} {
				if s.name == "" {
					continue
				}
				k := [3]string{s.kind, p.Source.DSN, s.name}
				if first, dup := slots[k]; dup {
					d.addf(s.line, path+".source."+s.kind, "%s %s is also used by %s, on the same dsn", s.kind, quote(s.name), first.path)
				} else {
					slots[k] = seen{path, s.line}
				}
			}
		}
		cfg.Pipelines = append(cfg.Pipelines, *p)
	}
	return cfg
}

// pipelineLines are where a pipeline's cross-checked values are written.
type pipelineLines struct {
	name, slot, publication int
}

func (d *decoder) pipeline(n *yaml.Node, path string) (*Pipeline, pipelineLines) {
	var lines pipelineLines
	m := d.mapping(n, path, n.Line)
	if m == nil {
		return nil, lines
	}
	m.only("name", "source", "checkpoints", "sinks", "standby_retry", "status_interval", "shutdown_timeout", "failure_grace", "backfill")
	p := &Pipeline{StandbyRetry: DefaultStandbyRetry, StatusInterval: DefaultStatusInterval,
		ShutdownTimeout: DefaultShutdown, FailureGrace: DefaultFailureGrace}
	p.Name, _ = m.str("name", true, checkPipelineName)
	lines.name = m.valueLine("name")
	if v, ok := m.duration("standby_retry"); ok {
		p.StandbyRetry = v
	}
	if v, ok := m.duration("status_interval"); ok {
		p.StatusInterval = v
	}
	if v, ok := m.duration("shutdown_timeout"); ok {
		p.ShutdownTimeout = v
	}
	if v, ok := m.duration("failure_grace"); ok {
		p.FailureGrace = v
	}
	if b := m.child("backfill"); b != nil {
		b.only("page_size", "pages_in_flight")
		p.Backfill.PageSize, _ = b.positiveInt("page_size")
		p.Backfill.PagesInFlight, _ = b.positiveInt("pages_in_flight")
	}

	src := m.child("source")
	if src != nil {
		p.Source = d.source(src, p.Name)
		lines.slot = src.valueLine("slot")
		lines.publication = src.valueLine("publication")
		if lines.slot == 0 {
			lines.slot = src.line
		}
		if lines.publication == 0 {
			lines.publication = src.line
		}
	}
	if cp := m.child("checkpoints"); cp != nil {
		cp.only("dsn", "schema")
		p.Checkpoints.DSN, _ = cp.dsn("dsn", false)
		p.Checkpoints.Schema, _ = cp.str("schema", false, checkIdentifier)
	}
	if p.Checkpoints.DSN == "" {
		p.Checkpoints.DSN = p.Source.DSN
	}
	if p.Checkpoints.Schema == "" {
		p.Checkpoints.Schema = p.Source.Schema
	}

	items, keyLine, ok := m.list("sinks")
	switch {
	case !ok:
		if _, present := m.get("sinks"); !present {
			m.required("sinks")
		}
	case len(items) == 0:
		d.addf(keyLine, path+".sinks", "must not be empty")
	}
	type seen struct {
		path string
		line int
	}
	names := map[string]seen{}
	for i, n := range items {
		spath := fmt.Sprintf("%s.sinks[%d]", path, i)
		s, nameLine := d.sink(n, spath)
		if s == nil {
			continue
		}
		if s.Name != "" {
			if first, dup := names[s.Name]; dup {
				d.addf(nameLine, spath+".name", "duplicate sink name %s (first at %s, line %d)", quote(s.Name), first.path, first.line)
			} else {
				names[s.Name] = seen{spath, nameLine}
			}
		}
		p.Sinks = append(p.Sinks, *s)
	}
	return p, lines
}

// source decodes a pipeline's source; pipeline is the pipeline's name, for
// the defaults ("" if invalid).
func (d *decoder) source(m *mapping, pipeline string) Source {
	m.only("dsn", "schema", "slot", "publication", "filter", "start", "timeout")
	s := Source{Schema: DefaultSchema, Start: DefaultStart, Timeout: DefaultTimeout}
	s.DSN, _ = m.dsn("dsn", true)
	if v, ok := m.str("schema", false, checkIdentifier); ok {
		s.Schema = v
	}
	if pipeline != "" {
		s.Slot = DefaultSlotPrefix + pipeline
		s.Publication = DefaultSlotPrefix + pipeline
	}
	if v, ok := m.str("slot", false, checkSlotName("slot")); ok {
		s.Slot = v
	}
	if v, ok := m.str("publication", false, checkSlotName("publication")); ok {
		s.Publication = v
	}
	s.Filter, _ = m.str("filter", false, nil)
	if v, ok := oneOf(m, "start", StartNow, StartBeginning); ok {
		s.Start = v
	}
	if v, ok := m.duration("timeout"); ok {
		if v < time.Second {
			m.d.addf(m.valueLine("timeout"), join(m.path, "timeout"), "want at least 1s, got %s", v)
		} else {
			s.Timeout = v
		}
	}
	return s
}

// sink decodes one sink; it returns the line of its name, for duplicates.
func (d *decoder) sink(n *yaml.Node, path string) (*Sink, int) {
	m := d.mapping(n, path, n.Line)
	if m == nil {
		return nil, 0
	}
	s := &Sink{OnError: DefaultOnError, Start: StartNow}
	s.Name, _ = m.str("name", true, checkSinkName)
	kindName, ok := m.str("kind", true, nil)
	var kind *sinkKind
	if ok {
		var msg string
		if kind, msg = sinkKindNamed(kindName); kind == nil {
			d.addf(m.valueLine("kind"), path+".kind", "%s", msg)
		}
	}
	if kind != nil {
		// The keys of a kind that is unknown or missing cannot be checked.
		m.only(append(slices.Clip(commonSinkKeys), kind.keys...)...)
		s.Kind = kind.name
	}
	s.Include, _ = m.strs("include", checkGlob)
	s.Exclude, _ = m.strs("exclude", checkGlob)
	s.Tenants, _ = m.strs("tenants", checkTenant)
	if v, ok := oneOf(m, "on_error", OnErrorStop, OnErrorDeadLetter); ok {
		s.OnError = v
	}
	if v, ok := oneOf(m, "start", StartNow, StartBeginning); ok {
		s.Start = v
	}
	s.MartenProgress, _ = m.boolean("marten_progress")
	if b := m.child("batch"); b != nil {
		b.only("max_events", "max_bytes", "max_wait")
		s.Batch.MaxEvents, _ = b.positiveInt("max_events")
		s.Batch.MaxBytes, _ = b.size("max_bytes")
		s.Batch.MaxWait, _ = b.duration("max_wait")
	}
	s.Batch = s.Batch.WithDefaults()
	if kind != nil {
		s.Options = kind.decode(m)
	}
	return s, m.valueLine("name")
}

// valueLine returns the line of the value at key, or 0 if absent.
func (m *mapping) valueLine(key string) int {
	if f, ok := m.fields[key]; ok {
		return f.value.Line
	}
	return 0
}
