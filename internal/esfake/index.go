package esfake

import (
	"net/http"
	"sort"
)

// Version is the Elasticsearch version the fake reports and models.
const Version = "8.19.0"

// clusterName is the cluster and node name the fake reports.
const clusterName = "esfake"

// handleInfo serves GET / : the cluster information document.
func (s *Server) handleInfo(q *request) {
	if e := checkParams(q); e != nil {
		s.writeError(q, e)
		return
	}
	s.writeRaw(q, http.StatusOK, obj{
		{"name", clusterName},
		{"cluster_name", clusterName},
		{"cluster_uuid", s.clusterUUID},
		{"version", obj{
			{"number", Version},
			{"build_flavor", "default"},
			{"build_type", "tar"},
			{"build_hash", "esfake0000000000000000000000000000000000"},
			{"build_date", "2025-07-17T00:00:00.000000000Z"},
			{"build_snapshot", false},
			{"lucene_version", "9.12.2"},
			{"minimum_wire_compatibility_version", "7.17.0"},
			{"minimum_index_compatibility_version", "7.0.0"},
		}},
		{"tagline", "You Know, for Search"},
	})
}

// handleHealth serves GET /_cluster/health for a one-node cluster: replica
// shards stay unassigned, so an index with replicas makes it yellow.
func (s *Server) handleHealth(q *request) {
	if e := checkParams(q, "wait_for_status", "timeout", "level", "local", "master_timeout", "wait_for_nodes",
		"wait_for_active_shards", "wait_for_events", "wait_for_no_relocating_shards",
		"wait_for_no_initializing_shards", "expand_wildcards"); e != nil {
		s.writeError(q, e)
		return
	}
	s.mu.Lock()
	primaries, unassigned := 0, 0
	for _, ix := range s.indices {
		primaries += ix.shards
		unassigned += ix.shards * ix.replicas
	}
	s.mu.Unlock()
	status := "green"
	if unassigned > 0 {
		status = "yellow"
	}
	pct := 100.0
	if primaries+unassigned > 0 {
		pct = 100 * float64(primaries) / float64(primaries+unassigned)
	}
	s.writeRaw(q, http.StatusOK, obj{
		{"cluster_name", clusterName},
		{"status", status},
		{"timed_out", false},
		{"number_of_nodes", 1},
		{"number_of_data_nodes", 1},
		{"active_primary_shards", primaries},
		{"active_shards", primaries},
		{"relocating_shards", 0},
		{"initializing_shards", 0},
		{"unassigned_shards", unassigned},
		{"unassigned_primary_shards", 0},
		{"delayed_unassigned_shards", 0},
		{"number_of_pending_tasks", 0},
		{"number_of_in_flight_fetch", 0},
		{"task_max_waiting_in_queue_millis", 0},
		{"active_shards_percent_as_number", pct},
	})
}

// handleCreateIndex serves PUT /{index}.
func (s *Server) handleCreateIndex(q *request, name string) {
	if e := checkParams(q, "wait_for_active_shards", "timeout", "master_timeout"); e != nil {
		s.writeError(q, e)
		return
	}
	s.mu.Lock()
	_, e := s.createIndex(name, q.body)
	s.mu.Unlock()
	if e != nil {
		s.writeError(q, e)
		return
	}
	s.writeRaw(q, http.StatusOK, obj{{"acknowledged", true}, {"shards_acknowledged", true}, {"index", name}})
}

// handleGetIndex serves GET and HEAD /{index}.
func (s *Server) handleGetIndex(q *request, name string) {
	if e := checkParams(q, "allow_no_indices", "expand_wildcards", "flat_settings", "ignore_unavailable",
		"include_defaults", "local", "master_timeout", "features"); e != nil {
		s.writeError(q, e)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[name]
	if !ok {
		if q.r.Method == http.MethodHead {
			s.writeRaw(q, http.StatusNotFound, obj{})
			return
		}
		s.writeError(q, errIndexNotFound(name))
		return
	}
	if q.r.Method == http.MethodHead {
		s.writeRaw(q, http.StatusOK, obj{})
		return
	}
	s.writeRaw(q, http.StatusOK, obj{{name, obj{
		{"aliases", obj{}},
		{"mappings", ix.mapping.tree()},
		{"settings", ix.settingsTree()},
	}}})
}

// handleDeleteIndex serves DELETE /{index}.
func (s *Server) handleDeleteIndex(q *request, name string) {
	if e := checkParams(q, "timeout", "master_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards"); e != nil {
		s.writeError(q, e)
		return
	}
	s.mu.Lock()
	_, ok := s.indices[name]
	delete(s.indices, name)
	s.mu.Unlock()
	if !ok {
		s.writeError(q, errIndexNotFound(name))
		return
	}
	s.writeRaw(q, http.StatusOK, obj{{"acknowledged", true}})
}

// handleGetMapping serves GET /{index}/_mapping.
func (s *Server) handleGetMapping(q *request, name string) {
	if e := checkParams(q, "allow_no_indices", "expand_wildcards", "ignore_unavailable", "local", "master_timeout"); e != nil {
		s.writeError(q, e)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[name]
	if !ok {
		s.writeError(q, errIndexNotFound(name))
		return
	}
	s.writeRaw(q, http.StatusOK, obj{{name, obj{{"mappings", ix.mapping.tree()}}}})
}

// targets returns the indices a request addresses: one by name, or all
// when name is "". The caller holds s.mu.
func (s *Server) targets(name string) ([]*index, *esError) {
	if name != "" {
		ix, ok := s.indices[name]
		if !ok {
			return nil, errIndexNotFound(name)
		}
		return []*index{ix}, nil
	}
	names := make([]string, 0, len(s.indices))
	for n := range s.indices {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*index, len(names))
	for i, n := range names {
		out[i] = s.indices[n]
	}
	return out, nil
}

// handleRefresh serves /_refresh and /{index}/_refresh. Documents are
// visible as soon as they are written, so there is nothing to do.
func (s *Server) handleRefresh(q *request, name string) {
	if e := checkParams(q, "allow_no_indices", "expand_wildcards", "ignore_unavailable"); e != nil {
		s.writeError(q, e)
		return
	}
	s.mu.Lock()
	ixs, e := s.targets(name)
	total, ok := 0, 0
	for _, ix := range ixs {
		total += ix.shards * (1 + ix.replicas)
		ok += ix.shards
	}
	s.mu.Unlock()
	if e != nil {
		s.writeError(q, e)
		return
	}
	s.writeRaw(q, http.StatusOK, obj{{"_shards", obj{{"total", total}, {"successful", ok}, {"failed", 0}}}})
}

// handleCount serves /_count and /{index}/_count, without a query or with
// match_all.
func (s *Server) handleCount(q *request, name string) {
	if e := checkParams(q, "allow_no_indices", "expand_wildcards", "ignore_unavailable", "ignore_throttled",
		"min_score", "preference", "routing", "terminate_after"); e != nil {
		s.writeError(q, e)
		return
	}
	if len(q.body) > 0 {
		v, err := parseJSON(q.body)
		if err != nil {
			se := err.(*jsonSyntaxError)
			s.writeError(q, errXContentParse(q.body, se.off, se.msg))
			return
		}
		query := v.member("query")
		if v.kind != jObject || len(v.members) > 1 || (len(v.members) == 1 && query == nil) ||
			(query != nil && (query.kind != jObject || len(query.members) != 1 || query.members[0].key != "match_all")) {
			s.writeError(q, errIllegalArgument("esfake: _count supports only match_all"))
			return
		}
	}
	s.mu.Lock()
	ixs, e := s.targets(name)
	n, shards := 0, 0
	for _, ix := range ixs {
		n += ix.count()
		shards += ix.shards
	}
	s.mu.Unlock()
	if e != nil {
		s.writeError(q, e)
		return
	}
	s.writeRaw(q, http.StatusOK, obj{{"count", n}, {"_shards", obj{{"total", shards}, {"successful", shards}, {"skipped", 0}, {"failed", 0}}}})
}
