package pipeline

import (
	"testing"

	"github.com/martencdc/cdc"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name   string
		f      Filter
		typ    string
		tenant string
		want   bool
	}{
		{"zero passes all", Filter{}, "incident_logged", "*DEFAULT*", true},
		{"include exact", Filter{Include: []string{"incident_logged"}}, "incident_logged", "", true},
		{"include miss", Filter{Include: []string{"incident_logged"}}, "incident_closed", "", false},
		{"include glob", Filter{Include: []string{"incident_*"}}, "incident_closed", "", true},
		{"exclude wins", Filter{Include: []string{"incident_*"}, Exclude: []string{"*_closed"}}, "incident_closed", "", false},
		{"exclude only", Filter{Exclude: []string{"agent_*"}}, "incident_logged", "", true},
		{"tenant in", Filter{Tenants: []string{"acme", "globex"}}, "x", "acme", true},
		{"tenant out", Filter{Tenants: []string{"acme"}}, "x", "initech", false},
		{"tenant and type", Filter{Tenants: []string{"acme"}, Include: []string{"y"}}, "x", "acme", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newMatcher(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			e := &cdc.Event{Type: tt.typ, TenantID: tt.tenant}
			for range 2 { // second time from the cache
				if got := m.match(e); got != tt.want {
					t.Fatalf("match(%q, %q) = %v, want %v", tt.typ, tt.tenant, got, tt.want)
				}
			}
			if got := tt.f.Match(e); got != tt.want {
				t.Fatalf("Filter.Match(%q, %q) = %v, want %v", tt.typ, tt.tenant, got, tt.want)
			}
		})
	}
	if _, err := newMatcher(Filter{Include: []string{"[bad"}}); err == nil {
		t.Fatal("bad glob accepted")
	}
}
