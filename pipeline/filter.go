package pipeline

import (
	"fmt"
	"path"
	"slices"

	"github.com/martencdc/cdc"
)

// Filter selects the events a sink receives. The zero Filter passes all.
type Filter struct {
	Include []string // event-type globs (path.Match syntax); empty means all types
	Exclude []string // event-type globs to leave out, applied after Include
	Tenants []string // tenant ids; empty means all tenants
}

// matcher is a compiled Filter. It caches the verdict per event type, since a
// store has few types and the decoder interns them.
type matcher struct {
	f       Filter
	all     bool
	tenants map[string]bool
	types   map[string]bool
}

func newMatcher(f Filter) (*matcher, error) {
	for _, g := range slices.Concat(f.Include, f.Exclude) {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("event type glob %q: %w", g, err)
		}
	}
	m := &matcher{f: f, types: make(map[string]bool)}
	m.all = len(f.Include) == 0 && len(f.Exclude) == 0 && len(f.Tenants) == 0
	if len(f.Tenants) > 0 {
		m.tenants = make(map[string]bool, len(f.Tenants))
		for _, t := range f.Tenants {
			m.tenants[t] = true
		}
	}
	return m, nil
}

func (m *matcher) match(e *cdc.Event) bool {
	if m.all {
		return true
	}
	if m.tenants != nil && !m.tenants[e.TenantID] {
		return false
	}
	ok, seen := m.types[e.Type]
	if !seen {
		ok = m.matchType(e.Type)
		if len(m.types) < 10000 {
			m.types[e.Type] = ok
		}
	}
	return ok
}

func (m *matcher) matchType(t string) bool {
	if len(m.f.Include) > 0 && !anyMatch(m.f.Include, t) {
		return false
	}
	return !anyMatch(m.f.Exclude, t)
}

func anyMatch(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

// Match reports whether the filter lets e through. The pipeline uses a
// compiled, caching form of the same rules.
func (f Filter) Match(e *cdc.Event) bool {
	if len(f.Tenants) > 0 && !slices.Contains(f.Tenants, e.TenantID) {
		return false
	}
	if len(f.Include) > 0 && !anyMatch(f.Include, e.Type) {
		return false
	}
	return !anyMatch(f.Exclude, e.Type)
}
