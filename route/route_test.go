package route

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/martencdc/cdc"
)

// event returns a fully populated event.
func event() *cdc.Event {
	return &cdc.Event{
		ID:            "0192f0c4-0000-7000-8000-000000000001",
		SeqID:         42,
		StreamID:      "stream-7",
		Version:       3,
		Type:          "incident_logged",
		DotnetType:    "Helpdesk.IncidentLogged, Helpdesk",
		TenantID:      "acme",
		Timestamp:     time.Date(2026, 11, 22, 16, 4, 36, 478200000, time.FixedZone("CET", 3600)),
		Data:          []byte(`{"a":1}`),
		CorrelationID: "corr-1",
		CausationID:   "cause-1",
		Headers:       []byte(`{"h":"v"}`),
		UserName:      "alice",
		LSN:           0x16B3748,
		Index:         2,
		CommitTime:    time.Date(2026, 11, 22, 15, 4, 37, 0, time.UTC),
		TxID:          7654,
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		text string
		want string // the ParseError's Msg, or a prefix of it ending in "..."
	}{
		{"", "empty template"},
		{"topic.{{.Type", "unclosed action"},
		{"{{.Typ}}", "unknown field .Typ (did you mean .Type?); the event fields are ID, SeqID, StreamID, Version, Type, DotnetType, TenantID, Timestamp, Data, CorrelationID, CausationID, Headers, UserName, LSN, CommitTime, TxID"},
		{"{{.tenantid}}", "unknown field .tenantid (did you mean .TenantID?); ..."},
		{"{{.Position}}", "unknown field .Position; the event fields are ..."},
		{"{{.Index}}", "unknown field .Index; ..."},
		{"a-{{with .Type}}{{$.Nope}}{{end}}", "unknown field .Nope; ..."},
		{"{{if .Type}}{{.Tenant}}{{end}}", "unknown field .Tenant (did you mean .TenantID?); ..."},
		{"{{printf \"%s\" .StreamId}}", "unknown field .StreamId (did you mean .StreamID?); ..."},
		{"{{(.Typo).Foo}}", "unknown field .Typo (did you mean .Type?); ..."},
		{"{{.}}", "{{.}} is the whole event: name a field, e.g. {{.Type}}"},
		{"{{printf \"%v\" .}}", "{{.}} is the whole event: name a field, e.g. {{.Type}}"},
		{"{{$}}", "$ is the whole event: name a field, e.g. {{$.Type}}"},
		{`{{define "x"}}a{{end}}b`, "{{define}} and {{block}} are not supported"},
		{`{{block "x" .Type}}a{{end}}`, "{{define}} and {{block}} are not supported"},
		{`{{template "x"}}`, "{{template}} is not supported"},
		{"{{nope .Type}}", `function "nope" not defined`},
		{`{{.Timestamp.Formt "2006"}}`, "at <.Timestamp.Formt>: can't evaluate field Formt in type route.utcTime"},
		{"{{.Type.Name}}", "at <.Type.Name>: can't evaluate field Name in type string"},
		{"{{lower .SeqID}}", "at <.SeqID>: wrong type for value; expected string; got int64"},
		{"{{/* nothing */}}", "renders an empty name"},
		{`{{if false}}x{{end}}`, "renders an empty name"},
		{`{{range 5000}}x{{end}}`, "name longer than 4096 bytes"},
		{`{{slice "ab" 0 5}}`, "at <slice \"ab\" 0 5>: error calling slice: index out of range: 5"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			tm, err := Parse(tt.text)
			if err == nil {
				t.Fatalf("Parse = %q, want an error", tm.Fields())
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if pe.Text != tt.text {
				t.Errorf("Text = %q", pe.Text)
			}
			if prefix, ok := strings.CutSuffix(tt.want, "..."); ok {
				if !strings.HasPrefix(pe.Msg, prefix) {
					t.Errorf("Msg = %q, want %q...", pe.Msg, prefix)
				}
			} else if pe.Msg != tt.want {
				t.Errorf("Msg = %q, want %q", pe.Msg, tt.want)
			}
			if want := "template " + fmt.Sprintf("%q", tt.text) + ": " + pe.Msg; err.Error() != want {
				t.Errorf("Error() = %q, want %q", err, want)
			}
		})
	}
}

func TestRenderFields(t *testing.T) {
	tests := []struct {
		text   string
		want   string
		fields []string
	}{
		{"{{.ID}}", "0192f0c4-0000-7000-8000-000000000001", []string{"ID"}},
		{"{{.SeqID}}", "42", []string{"SeqID"}},
		{"{{.StreamID}}", "stream-7", []string{"StreamID"}},
		{"{{.Version}}", "3", []string{"Version"}},
		{"{{.Type}}", "incident_logged", []string{"Type"}},
		{"{{.DotnetType}}", "Helpdesk.IncidentLogged, Helpdesk", []string{"DotnetType"}},
		{"{{.TenantID}}", "acme", []string{"TenantID"}},
		{"{{.Timestamp}}", "2026-11-22T15:04:36.4782Z", []string{"Timestamp"}},
		{"{{.Data}}", `{"a":1}`, []string{"Data"}},
		{"{{.CorrelationID}}", "corr-1", []string{"CorrelationID"}},
		{"{{.CausationID}}", "cause-1", []string{"CausationID"}},
		{"{{.Headers}}", `{"h":"v"}`, []string{"Headers"}},
		{"{{.UserName}}", "alice", []string{"UserName"}},
		{"{{.LSN}}", "0/16B3748", []string{"LSN"}},
		{"{{.CommitTime}}", "2026-11-22T15:04:37Z", []string{"CommitTime"}},
		{"{{.TxID}}", "7654", []string{"TxID"}},
		// Combinations, functions, methods and control structures.
		{"helpdesk.{{.Type}}", "helpdesk.incident_logged", []string{"Type"}},
		{"out/{{.TenantID}}/{{.Type}}.jsonl", "out/acme/incident_logged.jsonl", []string{"Type", "TenantID"}},
		{"{{.TxID}}-{{.Type}}-{{.ID}}", "7654-incident_logged-0192f0c4-0000-7000-8000-000000000001", []string{"ID", "Type", "TxID"}},
		{`idx-{{.Timestamp.Format "2006.01.02"}}`, "idx-2026.11.22", []string{"Timestamp"}},
		{`{{.CommitTime.Year}}`, "2026", []string{"CommitTime"}},
		{`{{upper .TenantID}}.{{lower .DotnetType}}`, "ACME.helpdesk.incidentlogged, helpdesk", []string{"DotnetType", "TenantID"}},
		{`{{printf "%s-%05d" .StreamID .Version}}`, "stream-7-00003", []string{"StreamID", "Version"}},
		{`{{slice .StreamID 0 6}}`, "stream", []string{"StreamID"}},
		{`{{if eq .TenantID "acme"}}vip{{else}}{{.TenantID}}{{end}}`, "vip", []string{"TenantID"}},
		{`{{with .UserName}}u-{{.}}{{else}}anonymous{{end}}`, "u-alice", []string{"UserName"}},
		{`{{$t := .Type}}{{$t}}@{{$.TenantID}}`, "incident_logged@acme", []string{"Type", "TenantID"}},
		{`{{(.Timestamp).Month}}`, "November", []string{"Timestamp"}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			tm, err := Parse(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			e := event()
			before := *e
			got, err := tm.Render(e)
			if err != nil || got != tt.want {
				t.Errorf("Render = %q, %v, want %q", got, err, tt.want)
			}
			if !reflect.DeepEqual(tm.Fields(), tt.fields) {
				t.Errorf("Fields() = %q, want %q", tm.Fields(), tt.fields)
			}
			if tm.String() != tt.text {
				t.Errorf("String() = %q", tm.String())
			}
			if _, ok := tm.Constant(); ok {
				t.Error("Constant() reports a constant")
			}
			if !reflect.DeepEqual(*e, before) {
				t.Error("Render modified the event")
			}
		})
	}
}

func TestConstant(t *testing.T) {
	tests := []struct{ text, want string }{
		{"helpdesk-events", "helpdesk-events"},
		{"out/all.jsonl", "out/all.jsonl"},
		{`{{"spelled"}}-{{printf "%03d" 7}}`, "spelled-007"},
		{`{{with "x"}}{{.}}{{end}}`, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			tm := MustParse(tt.text)
			if s, ok := tm.Constant(); !ok || s != tt.want {
				t.Errorf("Constant() = %q, %v, want %q, true", s, ok, tt.want)
			}
			if f := tm.Fields(); len(f) != 0 {
				t.Errorf("Fields() = %q", f)
			}
			for _, e := range []*cdc.Event{event(), {}} {
				if got, err := tm.Render(e); err != nil || got != tt.want {
					t.Errorf("Render = %q, %v", got, err)
				}
			}
			e := event()
			if allocs := testing.AllocsPerRun(100, func() { _, _ = tm.Render(e) }); allocs != 0 {
				t.Errorf("Render of a constant allocates %v times", allocs)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct{ text, want string }{
		{"out/{{.TenantID}}/{{.Type}}.jsonl", "out/"},
		{"helpdesk.{{.Type}}", "helpdesk."},
		{"{{.Type}}.jsonl", ""},
		{"out/ {{- .Type}}", "out/"},
		{"/var/cdc/x-{{/* c */}}{{.Type}}", "/var/cdc/x-"},
		{"all.jsonl", "all.jsonl"},
		{`a{{"b"}}c`, "abc"},
	}
	for _, tt := range tests {
		if got := MustParse(tt.text).Prefix(); got != tt.want {
			t.Errorf("Prefix(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestRenderCache(t *testing.T) {
	tm := MustParse("t.{{.TenantID}}.{{.Type}}")
	if tm.cache == nil || tm.keyed != keyType|keyTenantID {
		t.Fatalf("cache %v, key bits %b: want a cache keyed by Type and TenantID", tm.cache != nil, tm.keyed)
	}
	render := func(typ, tenant, dotnet string) string {
		t.Helper()
		e := event()
		e.Type, e.TenantID, e.DotnetType = typ, tenant, dotnet
		s, err := tm.Render(e)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	steps := []struct{ typ, tenant, dotnet, want string }{
		{"a", "x", "A", "t.x.a"},
		{"b", "x", "A", "t.x.b"},
		{"a", "x", "A", "t.x.a"},
		{"a", "y", "A", "t.y.a"},
		{"a", "x", "B", "t.x.a"}, // DotnetType is not referenced: same key
		{"b", "y", "B", "t.y.b"},
	}
	for i, s := range steps {
		if got := render(s.typ, s.tenant, s.dotnet); got != s.want {
			t.Errorf("step %d: Render = %q, want %q", i, got, s.want)
		}
	}
	if n := len(tm.cache); n != 4 {
		t.Errorf("%d cached names, want 4", n)
	}
	e := event()
	if allocs := testing.AllocsPerRun(100, func() { _, _ = tm.Render(e) }); allocs != 0 {
		t.Errorf("cached Render allocates %v times", allocs)
	}

	// The cache stays bounded.
	for i := range MaxCached + 10 {
		if got, want := render(fmt.Sprint(i), "z", ""), fmt.Sprintf("t.z.%d", i); got != want {
			t.Fatalf("Render = %q, want %q", got, want)
		}
	}
	if n := len(tm.cache); n > MaxCached {
		t.Errorf("%d cached names, more than %d", n, MaxCached)
	}
	if got := render("a", "x", ""); got != "t.x.a" {
		t.Errorf("after eviction: Render = %q", got)
	}
}

func TestRenderNoCache(t *testing.T) {
	for _, text := range []string{"{{.StreamID}}", "{{.Type}}-{{.Version}}", "{{.Type}}{{.Timestamp.Year}}"} {
		tm := MustParse(text)
		if tm.cache != nil || tm.keyed != 0 {
			t.Errorf("%s: cached", text)
		}
		a, b := event(), event()
		b.StreamID, b.Version, b.Timestamp = "other", 9, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		ra, _ := tm.Render(a)
		rb, _ := tm.Render(b)
		if ra == rb {
			t.Errorf("%s: same name %q for different events", text, ra)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		text string
		edit func(*cdc.Event)
		want string
	}{
		{"{{.CorrelationID}}", func(e *cdc.Event) { e.CorrelationID = "" },
			`template "{{.CorrelationID}}" rendered an empty name for event e-1`},
		{"{{.Type}}", func(e *cdc.Event) { e.Type = "" },
			`template "{{.Type}}" rendered an empty name for event e-1`},
		{"x/{{.Data}}", func(e *cdc.Event) { e.Data = []byte(`"` + strings.Repeat("a", MaxLen) + `"`) },
			`template "x/{{.Data}}", event e-1: name longer than 4096 bytes`},
		{"{{slice .StreamID 0 4}}", func(e *cdc.Event) { e.StreamID = "ab" },
			`template "{{slice .StreamID 0 4}}", event e-1: at <slice .StreamID 0 4>: error calling slice: index out of range: 4`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			tm := MustParse(tt.text)
			e := event()
			e.ID = "e-1"
			tt.edit(e)
			got, err := tm.Render(e)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Render = %q, %v, want error %q", got, err, tt.want)
			}
			// A failed rendering is not cached.
			if len(tm.cache) != 0 {
				t.Errorf("cache holds %v", tm.cache)
			}
		})
	}
}

// TestEventDataIsText: whatever an event holds is printed, never parsed.
func TestEventDataIsText(t *testing.T) {
	tm := MustParse("x/{{.Type}}/{{.StreamID}}")
	e := event()
	e.Type = `{{.ID}}`
	e.StreamID = `{{template "x"}}../{{printf "%v" .}}`
	got, err := tm.Render(e)
	if want := `x/{{.ID}}/{{template "x"}}../{{printf "%v" .}}`; err != nil || got != want {
		t.Errorf("Render = %q, %v, want %q", got, err, want)
	}
}

func TestRenderConcurrent(t *testing.T) {
	templates := []*Template{
		MustParse("const"),
		MustParse("{{.TenantID}}.{{.Type}}"),
		MustParse("{{.StreamID}}/{{.Version}}"),
	}
	types := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				e := event()
				e.Type = types[(g+i)%len(types)]
				e.TenantID = fmt.Sprint("t", i%3)
				e.StreamID = fmt.Sprint("s", i)
				wants := []string{"const", e.TenantID + "." + e.Type, fmt.Sprintf("%s/%d", e.StreamID, e.Version)}
				for j, tm := range templates {
					if got, err := tm.Render(e); err != nil || got != wants[j] {
						t.Errorf("Render(%s) = %q, %v, want %q", tm, got, err, wants[j])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse of a bad template did not panic")
		}
	}()
	MustParse("{{.Nope}}")
}
