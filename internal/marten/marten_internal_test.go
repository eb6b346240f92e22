package marten

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDDLRendering(t *testing.T) {
	for _, layout := range Layouts() {
		for _, schema := range []string{"public", "helpdesk", "Mixed_Case$1"} {
			t.Run(layout.String()+"/"+schema, func(t *testing.T) {
				ddl, err := DDL(layout, schema)
				if err != nil {
					t.Fatalf("DDL: %v", err)
				}
				quoted := `"` + schema + `"`
				for _, want := range []string{
					"CREATE TABLE " + quoted + ".mt_streams (",
					"CREATE TABLE " + quoted + ".mt_events (",
					"CREATE SEQUENCE " + quoted + ".mt_events_sequence;",
					"CREATE TABLE " + quoted + ".mt_event_progression (",
					"FUNCTION " + quoted + ".mt_quick_append_events(",
					"FUNCTION " + quoted + ".mt_archive_stream(",
					"FUNCTION " + quoted + ".mt_mark_event_progression(",
				} {
					if !strings.Contains(ddl, want) {
						t.Errorf("DDL lacks %q", want)
					}
				}
				for _, bad := range []string{"{{", "}}", "<no value>"} {
					if strings.Contains(ddl, bad) {
						t.Errorf("DDL contains %q", bad)
					}
				}
				if schema != "public" && strings.Contains(ddl, "public") {
					t.Errorf("DDL for schema %s mentions public", schema)
				}
				if strings.HasPrefix(ddl, "\n") {
					t.Errorf("DDL starts with a blank line")
				}
			})
		}
	}
	if ddl, err := Schema("helpdesk"); err != nil || !strings.Contains(ddl, `nextval('"helpdesk".mt_events_sequence')`) {
		t.Errorf("Schema(helpdesk): err %v, or no nextval on the schema's sequence", err)
	}
	if _, err := DDL(Layout(42), "public"); err == nil || !strings.Contains(err.Error(), "unknown layout Layout(42)") {
		t.Errorf("DDL(unknown layout): err = %v", err)
	}
}

func TestValidateSchema(t *testing.T) {
	tests := []struct {
		schema string
		ok     bool
	}{
		{"public", true},
		{"helpdesk", true},
		{"Helpdesk", true},
		{"_x$1", true},
		{strings.Repeat("s", 63), true},
		{"", false},
		{strings.Repeat("s", 64), false},
		{"1abc", false},
		{"$abc", false},
		{"help desk", false},
		{`a"b`, false},
		{"a'b", false},
		{"a.b", false},
		{"pg_catalog", false},
		{"PG_x", false},
		{"schéma", false},
	}
	for _, tt := range tests {
		err := ValidateSchema(tt.schema)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateSchema(%q) = %v, want ok %v", tt.schema, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("ValidateSchema(%q) = %v, not ErrInvalidSchema", tt.schema, err)
		}
		if _, derr := Schema(tt.schema); (derr == nil) != tt.ok {
			t.Errorf("Schema(%q) err = %v, want ok %v", tt.schema, derr, tt.ok)
		}
	}
}

func TestNewID(t *testing.T) {
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var ids []string
	for _, d := range []time.Duration{0, 300 * time.Nanosecond, 10 * time.Microsecond, time.Millisecond, time.Hour} {
		ids = append(ids, newIDAt(base.Add(d)))
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids for increasing times are not sorted: %q", ids)
	}
	if got := ids[0][:13]; got != "01a202b2-c500" {
		t.Errorf("timestamp prefix of %s = %s, want 01a202b2-c500 (ms since epoch)", ids[0], got)
	}
	seen := map[string]bool{}
	for range 10000 {
		id := NewID()
		u, err := parseUUID(id)
		if err != nil {
			t.Fatalf("NewID() = %q: %v", id, err)
		}
		if u[6]>>4 != 7 || u[8]>>6 != 2 {
			t.Fatalf("NewID() = %q: version %d variant %b, want 7 and 10", id, u[6]>>4, u[8]>>6)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %s", id)
		}
		seen[id] = true
	}
}

func TestParseUUID(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"a1b2c3d4-0000-4000-8000-000000000001", true},
		{"A1B2C3D4-0000-4000-8000-00000000000F", true},
		{"a1b2c3d40000400080000000000000001", false},
		{"a1b2c3d4-0000-4000-8000-00000000000", false},
		{"g1b2c3d4-0000-4000-8000-000000000001", false},
		{"{a1b2c3d4-0000-4000-8000-000000000001}", false},
		{"a1b2c3d4_0000-4000-8000-000000000001", false},
		{"", false},
	}
	for _, tt := range tests {
		u, err := parseUUID(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseUUID(%q) err = %v, want ok %v", tt.in, err, tt.ok)
		}
		if err == nil && formatUUID(u) != strings.ToLower(tt.in) {
			t.Errorf("formatUUID(parseUUID(%q)) = %q", tt.in, formatUUID(u))
		}
	}
}

func TestEventTypeAlias(t *testing.T) {
	tests := []struct{ in, want string }{
		{"IncidentLogged", "incident_logged"},
		{"ResolutionAcknowledgedByCustomer", "resolution_acknowledged_by_customer"},
		{"Incident", "incident"},
		{"incident", "incident"},
	}
	for _, tt := range tests {
		if got := EventTypeAlias(tt.in); got != tt.want {
			t.Errorf("EventTypeAlias(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	want := []string{
		"incident_logged", "incident_categorised", "incident_prioritised", "agent_assigned_to_incident",
		"agent_responded_to_incident", "customer_responded_to_incident", "incident_resolved",
		"resolution_acknowledged_by_customer", "incident_closed",
	}
	if got := HelpdeskEventTypes(); !slices.Equal(got, want) {
		t.Errorf("HelpdeskEventTypes() = %q, want %q", got, want)
	}
	if got := HelpdeskDotnetType("agent_assigned_to_incident"); got != "Helpdesk.Api.Incidents.AgentAssignedToIncident, Helpdesk.Api" {
		t.Errorf("HelpdeskDotnetType = %q", got)
	}
	if got := HelpdeskDotnetType("nope"); got != "" {
		t.Errorf("HelpdeskDotnetType(nope) = %q, want empty", got)
	}
}

func TestDotnetTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), `"2026-11-22T10:00:00+00:00"`},
		{time.Date(2026, 11, 22, 10, 0, 0, 123400000, time.UTC), `"2026-11-22T10:00:00.1234+00:00"`},
		{time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC), `"2026-11-22T10:00:00.1234567+00:00"`},
		{time.Date(2026, 11, 22, 11, 0, 0, 0, paris), `"2026-11-22T10:00:00+00:00"`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(dotnetTime(tt.in))
		if err != nil || string(b) != tt.want {
			t.Errorf("marshal %v = %s, %v; want %s", tt.in, b, err, tt.want)
		}
	}
}
