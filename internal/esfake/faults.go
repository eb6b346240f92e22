package esfake

import "net/http"

// Stats counts what the server has seen since it started.
type Stats struct {
	// Requests counts every HTTP request, whatever its endpoint or outcome.
	Requests int64
	// Unauthorized counts requests refused with 401.
	Unauthorized int64
	// BulkRequests counts _bulk requests that passed authentication,
	// including those that failed as a whole.
	BulkRequests int64
	// RequestsRejected counts _bulk requests failed as a whole by
	// RejectRequests, whatever the status.
	RequestsRejected int64
	// Requests429 counts _bulk requests failed as a whole with 429.
	Requests429 int64
	// Items counts bulk items received in bulk requests that were not
	// failed as a whole, whatever their outcome.
	Items int64
	// ItemsCreated, ItemsUpdated, ItemsDeleted, ItemsNotFound and ItemsNoop
	// count bulk items by result.
	ItemsCreated, ItemsUpdated, ItemsDeleted, ItemsNotFound, ItemsNoop int64
	// ItemConflicts counts bulk items failed with 409
	// version_conflict_engine_exception.
	ItemConflicts int64
	// Items429 counts bulk items failed with 429 (RejectItems,
	// RejectItemsWhere).
	Items429 int64
	// Items400 counts bulk items failed with 400 (mapping errors, invalid
	// index names, unknown pipelines, ...).
	Items400 int64
	// Items404 counts bulk items failed with 404 (document_missing_exception,
	// index_not_found_exception).
	Items404 int64
	// IndexCreates counts indices created, by PUT /{index} or automatically
	// by a write.
	IndexCreates int64
}

// faults is the fault injection state.
type faults struct {
	requests      int // remaining whole-request rejections
	requestStatus int
	items         int // remaining per-item rejections
	where         func(index, id string) bool
}

// RejectRequests makes the next n _bulk requests fail as a whole with
// status, with the body Elasticsearch sends: 429 with an
// es_rejected_execution_exception (as when it sheds load), 503 with a
// cluster_block_exception, 500 and 408 with a fitting exception, other
// statuses with an "esfake: injected status" one; 502 and 504, which only a
// proxy in front of Elasticsearch sends, with a plain text body and no
// X-Elastic-Product header. Nothing of a rejected request is applied. A
// later call replaces the pending count. Safe to call while requests are
// served.
func (s *Server) RejectRequests(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.requests, s.faults.requestStatus = n, status
}

// RejectItems makes the next n bulk items, across requests, fail with a
// per-item 429 es_rejected_execution_exception (the request itself
// succeeds, with errors: true). A later call replaces the pending count.
// Safe to call while requests are served.
func (s *Server) RejectItems(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.items = n
}

// RejectItemsWhere makes every bulk item for which fn(index, id) is true
// fail with a per-item 429 es_rejected_execution_exception, until called
// with nil. For an index action without _id, id is the generated one. fn is
// called with the server's lock held: it must not call the Server. Safe to
// call while requests are served.
func (s *Server) RejectItemsWhere(fn func(index, id string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.where = fn
}

// takeRequestFault consumes a whole-request rejection, if one is pending.
func (s *Server) takeRequestFault() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.BulkRequests++
	if s.faults.requests <= 0 {
		return 0, false
	}
	s.faults.requests--
	s.stats.RequestsRejected++
	if s.faults.requestStatus == http.StatusTooManyRequests {
		s.stats.Requests429++
	}
	return s.faults.requestStatus, true
}

// itemFault reports whether the next bulk item is rejected. The caller
// holds s.mu.
func (s *Server) itemFault(index, id string) bool {
	if s.faults.items > 0 {
		s.faults.items--
		return true
	}
	return s.faults.where != nil && s.faults.where(index, id)
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// countItem updates the item counters for one bulk item. The caller holds
// s.mu.
func (s *Server) countItem(res writeResult) {
	if res.err != nil {
		switch res.err.status {
		case http.StatusConflict:
			s.stats.ItemConflicts++
		case http.StatusTooManyRequests:
			s.stats.Items429++
		case http.StatusBadRequest:
			s.stats.Items400++
		case http.StatusNotFound:
			s.stats.Items404++
		}
		return
	}
	switch res.result {
	case "created":
		s.stats.ItemsCreated++
	case "updated":
		s.stats.ItemsUpdated++
	case "deleted":
		s.stats.ItemsDeleted++
	case "not_found":
		s.stats.ItemsNotFound++
	case "noop":
		s.stats.ItemsNoop++
	}
}
