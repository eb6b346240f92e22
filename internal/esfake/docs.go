package esfake

import (
	"fmt"
	"net/http"
)

// getParams are the parameters of the get and multi-get APIs.
var getParams = []string{"realtime", "refresh", "routing", "preference", "stored_fields", "_source",
	"_source_includes", "_source_excludes", "_source_exclude_vectors", "version", "version_type"}

// docTree renders a document as the get API returns it; the caller holds s.mu.
func docTree(ix *index, id string, withSource bool) (obj, bool) {
	d, ok := ix.live(id)
	if !ok {
		return obj{{"_index", ix.name}, {"_id", id}, {"found", false}}, false
	}
	o := obj{{"_index", ix.name}, {"_id", id}, {"_version", d.version}, {"_seq_no", d.seqNo}, {"_primary_term", primaryTerm}, {"found", true}}
	if withSource {
		o = append(o, kv{"_source", rawJSON(d.source)})
	}
	return o, true
}

// handleGetDoc serves GET and HEAD /{index}/_doc/{id}.
func (s *Server) handleGetDoc(q *request, name, id string) {
	if e := checkParams(q, getParams...); e != nil {
		s.writeError(q, e)
		return
	}
	src, _ := q.param("_source")
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[name]
	if !ok {
		s.writeError(q, errIndexNotFound(name))
		return
	}
	o, found := docTree(ix, id, src != "false")
	status := http.StatusOK
	if !found {
		status = http.StatusNotFound
	}
	s.writeRaw(q, status, o)
}

// handleMget serves /_mget and /{index}/_mget with {"docs": [...]} or
// {"ids": [...]}.
func (s *Server) handleMget(q *request, defIndex string) {
	if e := checkParams(q, getParams...); e != nil {
		s.writeError(q, e)
		return
	}
	src, _ := q.param("_source")
	type want struct{ index, id string }
	var wants []want
	var msgs []string
	if len(q.body) > 0 {
		v, err := parseJSON(q.body)
		if err != nil {
			se := err.(*jsonSyntaxError)
			s.writeError(q, errXContentParse(q.body, se.off, se.msg))
			return
		}
		for _, m := range v.members {
			if m.val.kind != jArray {
				s.writeError(q, errParse(fmt.Sprintf("unexpected token [%s], expected [FIELD_NAME] or [START_ARRAY]", m.val.tokenName())))
				return
			}
			switch m.key {
			case "docs":
				for _, d := range m.val.elems {
					if d.kind != jObject {
						s.writeError(q, errIllegalArgument("docs array element should include an object"))
						return
					}
					w := want{index: defIndex}
					if x := d.member("_index"); x != nil {
						w.index = scalarText(x)
					}
					if x := d.member("_id"); x != nil {
						w.id = scalarText(x)
					}
					wants = append(wants, w)
				}
			case "ids":
				for _, x := range m.val.elems {
					if x.kind != jString && x.kind != jNumber {
						s.writeError(q, errIllegalArgument("ids array element should only contain ids"))
						return
					}
					wants = append(wants, want{index: defIndex, id: x.s})
				}
			default:
				s.writeError(q, errParse(fmt.Sprintf("unknown key [%s] for a START_ARRAY, expected [docs] or [ids]", m.key)))
				return
			}
		}
	}
	if len(wants) == 0 {
		msgs = append(msgs, "no documents to get")
	}
	for i, w := range wants {
		if w.index == "" {
			msgs = append(msgs, fmt.Sprintf("index is missing for doc %d", i))
		}
		if w.id == "" {
			msgs = append(msgs, fmt.Sprintf("id is missing for doc %d", i))
		}
	}
	if len(msgs) > 0 {
		s.writeError(q, errValidation(msgs))
		return
	}
	docs := make([]any, len(wants))
	s.mu.Lock()
	for i, w := range wants {
		ix, ok := s.indices[w.index]
		if !ok {
			docs[i] = obj{{"_index", w.index}, {"_id", w.id}, {"error", errIndexNotFound(w.index).response()[0].v}}
			continue
		}
		docs[i], _ = docTree(ix, w.id, src != "false")
	}
	s.mu.Unlock()
	s.writeRaw(q, http.StatusOK, obj{{"docs", docs}})
}

// writeParams are the parameters of the single-document write APIs.
var writeParams = map[string][]string{
	"index": {"version", "version_type", "if_seq_no", "if_primary_term", "op_type", "refresh", "pipeline", "routing",
		"timeout", "wait_for_active_shards", "require_alias", "require_data_stream", "include_source_on_error"},
	"delete": {"version", "version_type", "if_seq_no", "if_primary_term", "refresh", "routing", "timeout",
		"wait_for_active_shards"},
	"update": {"if_seq_no", "if_primary_term", "refresh", "retry_on_conflict", "routing", "timeout",
		"wait_for_active_shards", "_source", "_source_includes", "_source_excludes", "lang", "require_alias",
		"include_source_on_error", "version", "version_type"},
}

// handleWriteDoc serves the single-document APIs: PUT/POST /{index}/_doc,
// /_create/{id}, /_update/{id} and DELETE /{index}/_doc/{id}.
func (s *Server) handleWriteDoc(q *request, name, action, id string, hasID bool) {
	kind := action
	if kind == "create" {
		kind = "index"
	}
	if e := checkParams(q, writeParams[kind]...); e != nil {
		s.writeError(q, e)
		return
	}
	forced, e := parseRefresh(q)
	if e != nil {
		s.writeError(q, e)
		return
	}
	op := newWriteOp(action)
	op.index, op.id, op.hasID = name, id, hasID
	if e := op.readParams(q); e != nil {
		s.writeError(q, e)
		return
	}
	switch action {
	case "index", "create":
		if len(q.body) == 0 {
			s.writeError(q, errParse("request body is required"))
			return
		}
		op.source = q.body
	case "update":
		if _, v := q.param("version"); v || q.params.Has("version_type") {
			s.writeError(q, errValidation([]string{"internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead"}))
			return
		}
		if len(q.body) == 0 {
			s.writeError(q, errParse("request body is required"))
			return
		}
		u, e := parseUpdateBody(q.body)
		if e != nil {
			s.writeError(q, e)
			return
		}
		op.upd = u
	}
	if msgs := op.validate(); len(msgs) > 0 {
		s.writeError(q, errValidation(msgs))
		return
	}
	s.mu.Lock()
	res := s.execute(op, false)
	s.mu.Unlock()
	if res.err != nil {
		s.writeError(q, res.err)
		return
	}
	body := itemTree(op, res, forced)
	s.writeRaw(q, res.status, body[:len(body)-1]) // without "status"
}

// readParams reads the versioning parameters of a single-document write.
func (op *writeOp) readParams(q *request) *esError {
	for name, vals := range q.params {
		v := vals[0]
		var e *esError
		switch name {
		case "version":
			op.version, e = stringToLong(v)
		case "version_type":
			switch v {
			case "internal", "external", "external_gte", "force":
				op.versionType = v
			case "external_gt":
				op.versionType = "external"
			default:
				e = errIllegalArgument("No version type match [%s]", v)
			}
		case "if_seq_no":
			op.ifSeqNo, e = stringToLong(v)
		case "if_primary_term":
			op.ifPrimaryTerm, e = stringToLong(v)
		case "retry_on_conflict":
			var n int64
			n, e = stringToLong(v)
			op.retries = int(n)
		case "pipeline":
			op.pipeline, op.hasPipeline = v, true
		case "require_alias":
			op.requireAlias = v == "" || v == "true"
		case "op_type":
			switch v {
			case "create":
				op.action = "create"
			case "index":
			default:
				e = errIllegalArgument("opType must be 'create' or 'index', found: [%s]", v)
			}
		}
		if e != nil {
			return e
		}
	}
	return nil
}
