package esfake

import "strings"

// pathFilter is Elasticsearch's filter_path response filter: a comma
// separated list of dotted paths where "*" matches within a field name, "**"
// matches any number of levels and a leading "-" excludes. Arrays are
// transparent, and objects and arrays left empty are dropped: with
// filter_path=items.*.error a bulk response lists only the failed items, so
// the remaining items no longer line up with the request's actions.
type pathFilter struct {
	include [][]string
	exclude [][]string
}

// parseFilterPath parses a filter_path value; it returns nil for none.
func parseFilterPath(s string) *pathFilter {
	var f pathFilter
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(p, "-"); ok {
			f.exclude = append(f.exclude, strings.Split(rest, "."))
		} else {
			f.include = append(f.include, strings.Split(p, "."))
		}
	}
	if len(f.include) == 0 && len(f.exclude) == 0 {
		return nil
	}
	return &f
}

type pathState struct{ p, i int }

func (f *pathFilter) apply(v any) any {
	v = materialize(v)
	if len(f.include) > 0 {
		states := make([]pathState, len(f.include))
		for i := range f.include {
			states[i] = pathState{p: i}
		}
		r, ok := filterInclude(f.include, v, states)
		if !ok {
			return obj{}
		}
		v = r
	}
	if len(f.exclude) > 0 {
		states := make([]pathState, len(f.exclude))
		for i := range f.exclude {
			states[i] = pathState{p: i}
		}
		v = filterExclude(f.exclude, v, states)
	}
	return v
}

// materialize turns embedded JSON (rawJSON, *jvalue) into response trees so
// that filters can descend into documents' _source.
func materialize(v any) any {
	switch t := v.(type) {
	case obj:
		o := make(obj, len(t))
		for i, f := range t {
			o[i] = kv{f.k, materialize(f.v)}
		}
		return o
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = materialize(e)
		}
		return a
	case rawJSON:
		jv, err := parseJSON(t)
		if err != nil {
			return t
		}
		return jvalueTree(jv)
	case *jvalue:
		return jvalueTree(t)
	default:
		return v
	}
}

// stepPath advances the filter states over a field name; full reports whether a
// path ends at this field.
func stepPath(paths [][]string, states []pathState, key string) (next []pathState, full bool) {
	for _, st := range states {
		p := paths[st.p]
		seg := p[st.i]
		if seg == "**" {
			if st.i == len(p)-1 {
				return nil, true
			}
			next = append(next, st)
			if globMatch(p[st.i+1], key) {
				if st.i+2 == len(p) {
					return nil, true
				}
				next = append(next, pathState{st.p, st.i + 2})
			}
			continue
		}
		if globMatch(seg, key) {
			if st.i+1 == len(p) {
				return nil, true
			}
			next = append(next, pathState{st.p, st.i + 1})
		}
	}
	return next, false
}

func filterInclude(paths [][]string, v any, states []pathState) (any, bool) {
	switch t := v.(type) {
	case obj:
		var out obj
		for _, f := range t {
			next, full := stepPath(paths, states, f.k)
			if full {
				out = append(out, f)
				continue
			}
			if len(next) > 0 {
				if r, ok := filterInclude(paths, f.v, next); ok {
					out = append(out, kv{f.k, r})
				}
			}
		}
		return out, len(out) > 0
	case []any:
		var out []any
		for _, e := range t {
			if r, ok := filterInclude(paths, e, states); ok {
				out = append(out, r)
			}
		}
		return out, len(out) > 0
	default:
		return nil, false
	}
}

func filterExclude(paths [][]string, v any, states []pathState) any {
	switch t := v.(type) {
	case obj:
		out := obj{}
		for _, f := range t {
			next, full := stepPath(paths, states, f.k)
			switch {
			case full:
			case len(next) > 0:
				out = append(out, kv{f.k, filterExclude(paths, f.v, next)})
			default:
				out = append(out, f)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = filterExclude(paths, e, states)
		}
		return out
	default:
		return v
	}
}

// globMatch matches name against a pattern in which "*" stands for any run
// of characters.
func globMatch(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(name, mid)
		if i < 0 {
			return false
		}
		name = name[i+len(mid):]
	}
	return strings.HasSuffix(name, parts[len(parts)-1])
}
