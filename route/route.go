package route

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/martencdc/cdc"
)

// MaxCached is the number of rendered names a [Template] keeps for the
// combinations of Type, TenantID and DotnetType it has seen. When the cache
// is full it is emptied and fills again with the names in use.
const MaxCached = 4096

// MaxLen is the longest name Render returns, in bytes: longer than any
// Kafka topic, Elasticsearch index or file path can be.
const MaxLen = 4096

// name is the text/template name of every template; errors are stripped of it.
const name = "route"

// fieldNames are the event fields a template may reference, in the order of
// cdc.Event.
var fieldNames = []string{
	"ID", "SeqID", "StreamID", "Version", "Type", "DotnetType", "TenantID", "Timestamp", "Data",
	"CorrelationID", "CausationID", "Headers", "UserName", "LSN", "CommitTime", "TxID",
}

// Bits of the low-cardinality fields, whose values key the cache.
const (
	keyType = 1 << iota
	keyTenantID
	keyDotnetType
)

// lowCardinality maps the fields whose rendered names are cached to their bit.
var lowCardinality = map[string]uint8{"Type": keyType, "TenantID": keyTenantID, "DotnetType": keyDotnetType}

// funcs are the functions templates may call besides text/template's built-ins.
var funcs = template.FuncMap{
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// Template is a parsed destination-name template. It is immutable apart
// from its cache and safe for concurrent use.
type Template struct {
	text     string
	tmpl     *template.Template
	fields   []string // referenced event fields, in fieldNames order
	constant string   // the name, when isConst
	isConst  bool
	prefix   string // literal text every name starts with
	keyed    uint8  // keyType... bits of the cache key; 0: no cache

	mu    sync.RWMutex
	cache map[cacheKey]string
}

// cacheKey holds the values of the low-cardinality fields a template
// references; the others are left empty.
type cacheKey struct {
	typ, tenantID, dotnetType string
}

// ParseError is the error of [Parse]: what is wrong with a template.
type ParseError struct {
	Text string // the template
	Msg  string // the problem, e.g. "unknown field .Typ (did you mean .Type?); ..."
}

// Error returns "template <quoted text>: <Msg>".
func (e *ParseError) Error() string {
	return "template " + strconv.Quote(e.Text) + ": " + e.Msg
}

// Parse parses text as a template over the fields of [cdc.Event] (see the
// package documentation for the syntax). The error is a [*ParseError] when
// text is empty, is not valid text/template syntax, references anything but
// an event field, or fails to render for a sample event. A template that
// references no event field must render a non-empty name.
func Parse(text string) (*Template, error) {
	if text == "" {
		return nil, &ParseError{Text: text, Msg: "empty template"}
	}
	tm, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, &ParseError{Text: text, Msg: errMsg(err)}
	}
	if len(tm.Templates()) > 1 {
		return nil, &ParseError{Text: text, Msg: "{{define}} and {{block}} are not supported"}
	}
	var c checker
	if tm.Tree != nil && tm.Tree.Root != nil {
		c.list(tm.Tree.Root, true)
	}
	if c.problem != "" {
		return nil, &ParseError{Text: text, Msg: c.problem}
	}
	t := &Template{text: text, tmpl: tm}
	if tm.Tree != nil && tm.Tree.Root != nil && len(tm.Tree.Root.Nodes) > 0 {
		if n, ok := tm.Tree.Root.Nodes[0].(*parse.TextNode); ok {
			t.prefix = string(n.Text)
		}
	}
	for i, f := range fieldNames {
		if c.used&(1<<i) != 0 {
			t.fields = append(t.fields, f)
			t.keyed |= lowCardinality[f]
		}
	}
	s, err := t.run(&sample)
	if err != nil && (len(t.fields) == 0 || !dataDependent(err)) {
		return nil, &ParseError{Text: text, Msg: errMsg(err)}
	}
	switch {
	case len(t.fields) == 0:
		if s == "" {
			return nil, &ParseError{Text: text, Msg: "renders an empty name"}
		}
		t.constant, t.isConst, t.tmpl, t.prefix = s, true, nil, s
	case slices.ContainsFunc(t.fields, func(f string) bool { return lowCardinality[f] == 0 }):
		t.keyed = 0
	default:
		t.cache = make(map[cacheKey]string)
	}
	return t, nil
}

// MustParse is like [Parse] but panics on error. It is for templates written
// in Go source and tests.
func MustParse(text string) *Template {
	t, err := Parse(text)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template's text as given to [Parse].
func (t *Template) String() string { return t.text }

// Prefix returns the text every name the template renders starts with: its
// text up to the first action ("out/" for "out/{{.Type}}.jsonl"), or the
// whole name of a constant. A sink can check that what an event adds after
// it stays where the configuration meant it to (a directory, a topic prefix).
func (t *Template) Prefix() string { return t.prefix }

// Fields returns the names of the event fields the template references, in
// the order of [cdc.Event]'s fields; none for a constant.
func (t *Template) Fields() []string { return slices.Clone(t.fields) }

// Constant returns the name when the template references no event field,
// and false otherwise.
func (t *Template) Constant() (string, bool) { return t.constant, t.isConst }

// Render returns the name for event e. The error says which event and
// template when the name is empty or longer than MaxLen, or the template
// fails for e; any of these is permanent for that event. Render does not modify e.
func (t *Template) Render(e *cdc.Event) (string, error) {
	if t.isConst {
		return t.constant, nil
	}
	if t.keyed == 0 {
		return t.execute(e)
	}
	k := t.key(e)
	t.mu.RLock()
	s, ok := t.cache[k]
	t.mu.RUnlock()
	if ok {
		return s, nil
	}
	s, err := t.execute(e)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	if len(t.cache) >= MaxCached {
		clear(t.cache)
	}
	t.cache[k] = s
	t.mu.Unlock()
	return s, nil
}

// key returns the cache key of e: the values of the low-cardinality fields
// the template references.
func (t *Template) key(e *cdc.Event) cacheKey {
	var k cacheKey
	if t.keyed&keyType != 0 {
		k.typ = e.Type
	}
	if t.keyed&keyTenantID != 0 {
		k.tenantID = e.TenantID
	}
	if t.keyed&keyDotnetType != 0 {
		k.dotnetType = e.DotnetType
	}
	return k
}

// execute renders e, refusing an empty name.
func (t *Template) execute(e *cdc.Event) (string, error) {
	s, err := t.run(e)
	if err != nil {
		return "", fmt.Errorf("template %q, event %s: %s", t.text, e.ID, errMsg(err))
	}
	if s == "" {
		return "", fmt.Errorf("template %q rendered an empty name for event %s", t.text, e.ID)
	}
	return s, nil
}

// run executes the template for e.
func (t *Template) run(e *cdc.Event) (string, error) {
	var b builder
	b.Grow(len(t.text) + 32)
	if err := t.tmpl.Execute(&b, view{e}); err != nil {
		return "", err
	}
	return b.String(), nil
}

// errTooLong is the error of a rendering longer than MaxLen.
var errTooLong = fmt.Errorf("name longer than %d bytes", MaxLen)

// builder is a strings.Builder that refuses to grow beyond MaxLen.
type builder struct{ strings.Builder }

func (b *builder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxLen {
		return 0, errTooLong
	}
	return b.Builder.Write(p)
}

// dataDependent reports whether an error of the sample's rendering may not
// happen with other events: an index out of range of slice or index, a name
// too long.
func dataDependent(err error) bool {
	if errors.Is(err, errTooLong) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "error calling slice: ") || strings.Contains(msg, "error calling index: ")
}

// errMsg returns the message of a text/template error without the
// "template: route:1:5: executing "route" " prefix.
func errMsg(err error) string {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+name+":")
	if !ok {
		return msg
	}
	// Skip "LINE:" or "LINE:COL:".
	rest = strings.TrimLeft(rest, "0123456789:")
	rest = strings.TrimSpace(rest)
	rest = strings.TrimPrefix(rest, `executing "`+name+`" `)
	return rest
}

// view is what templates see: the event, with the fields that do not print
// well as they are replaced by methods of the same name.
type view struct{ *cdc.Event }

// Data returns the event body as JSON text.
func (v view) Data() string { return string(v.Event.Data) }

// Headers returns the headers as JSON text, "" when NULL or absent.
func (v view) Headers() string { return string(v.Event.Headers) }

// Timestamp returns the event's timestamp in UTC.
func (v view) Timestamp() utcTime { return utcTime{v.Event.Timestamp.UTC()} }

// CommitTime returns the transaction's commit time in UTC.
func (v view) CommitTime() utcTime { return utcTime{v.Event.CommitTime.UTC()} }

// utcTime is a time in UTC that prints in RFC 3339 and has the methods of
// time.Time ({{.Timestamp.Format "2006-01-02"}}).
type utcTime struct{ time.Time }

// String formats the time in RFC 3339 with as many fractional digits as needed.
func (t utcTime) String() string { return t.Format(time.RFC3339Nano) }

// sample is the event Parse renders to find errors that only show at
// execution; its values are typical of Marten's.
var sample = cdc.Event{
	ID:            "0192f0c4-5a7e-7d3b-9c2e-6f1a8b3d4e5f",
	SeqID:         1234,
	StreamID:      "0192f0c4-5a7e-7d3b-9c2e-6f1a8b3d4e60",
	Version:       3,
	Type:          "incident_logged",
	DotnetType:    "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api",
	TenantID:      "*DEFAULT*",
	Timestamp:     time.Date(2025, 1, 2, 3, 4, 5, 600000000, time.UTC),
	Data:          []byte(`{"CustomerId":"0192f0c4-5a7e-7d3b-9c2e-6f1a8b3d4e61"}`),
	CorrelationID: "0192f0c4-5a7e-7d3b-9c2e-6f1a8b3d4e62",
	CausationID:   "0192f0c4-5a7e-7d3b-9c2e-6f1a8b3d4e63",
	Headers:       []byte(`{"source":"api"}`),
	UserName:      "helpdesk-api",
	LSN:           0x16B3748,
	CommitTime:    time.Date(2025, 1, 2, 3, 4, 5, 700000000, time.UTC),
	TxID:          7654,
}
