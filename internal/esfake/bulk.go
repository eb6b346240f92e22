package esfake

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// bulkDefaults are the request-level defaults of a bulk request.
type bulkDefaults struct {
	index        string
	pipeline     string
	hasPipeline  bool
	requireAlias bool
}

// handleBulk serves POST /_bulk and /{index}/_bulk.
func (s *Server) handleBulk(q *request, defIndex string) {
	if status, rejected := s.takeRequestFault(); rejected {
		if status == http.StatusBadGateway || status == http.StatusGatewayTimeout {
			writeProxyError(q, status)
			return
		}
		s.writeError(q, errStatus(status))
		return
	}
	if e := checkParams(q, "refresh", "pipeline", "routing", "timeout", "wait_for_active_shards", "_source",
		"_source_includes", "_source_excludes", "require_alias", "require_data_stream", "list_executed_pipelines",
		"include_source_on_error"); e != nil {
		s.writeError(q, e)
		return
	}
	start := time.Now()
	forced, e := parseRefresh(q)
	if e != nil {
		s.writeError(q, e)
		return
	}
	def := bulkDefaults{index: defIndex}
	def.pipeline, def.hasPipeline = q.param("pipeline")
	if v, ok := q.param("require_alias"); ok {
		def.requireAlias = v == "" || v == "true"
	}
	if len(q.body) == 0 {
		s.writeError(q, errParse("request body is required"))
		return
	}
	ops, e := parseBulk(q.body, def)
	if e != nil {
		s.writeError(q, e)
		return
	}
	var msgs []string
	if len(ops) == 0 {
		msgs = append(msgs, "no requests added")
	}
	for _, op := range ops {
		msgs = append(msgs, op.validate()...)
	}
	if len(msgs) > 0 {
		s.writeError(q, errValidation(msgs))
		return
	}
	items := make([]any, len(ops))
	failed := false
	for i, op := range ops {
		s.mu.Lock()
		s.stats.Items++
		res := s.execute(op, true)
		s.countItem(res)
		s.mu.Unlock()
		items[i] = obj{{op.action, itemTree(op, res, forced)}}
		failed = failed || res.err != nil
	}
	s.writeRaw(q, http.StatusOK, obj{{"errors", failed}, {"took", time.Since(start).Milliseconds()}, {"items", items}})
}

// parseRefresh reads the refresh parameter; forced is true for refresh=true.
func parseRefresh(q *request) (forced bool, e *esError) {
	v, ok := q.param("refresh")
	if !ok {
		return false, nil
	}
	switch v {
	case "", "true":
		return true, nil
	case "false", "wait_for":
		return false, nil
	}
	return false, errIllegalArgument("Unknown value for refresh: [%s].", v)
}

// itemTree renders the result of one write as a bulk item (or the body of a
// single-document write).
func itemTree(op *writeOp, res writeResult, forced bool) obj {
	var id any = res.id
	if res.id == "" && !op.hasID {
		id = nil
	}
	if res.err != nil {
		return obj{{"_index", res.index}, {"_id", id}, {"status", res.err.status}, {"error", res.err.body()}}
	}
	o := obj{{"_index", res.index}, {"_id", id}, {"_version", res.version}, {"result", res.result}}
	if forced && res.result != "noop" {
		o = append(o, kv{"forced_refresh", true})
	}
	return append(o, kv{"_shards", res.shards}, kv{"_seq_no", res.seqNo}, kv{"_primary_term", primaryTerm}, kv{"status", res.status})
}

// parseBulk parses a bulk body as BulkRequestParser does: an action line,
// then a source line for index, create and update.
func parseBulk(data []byte, def bulkDefaults) ([]*writeOp, *esError) {
	var ops []*writeOp
	var pending *writeOp
	line, from := 0, 0
	for {
		nl := bytes.IndexByte(data[from:], '\n')
		if nl < 0 {
			if from != len(data) {
				return nil, errIllegalArgument(`The bulk request must be terminated by a newline [\n]`)
			}
			return ops, nil
		}
		text := data[from : from+nl]
		from += nl + 1
		line++
		if pending == nil {
			op, e := parseActionLine(text, line, def)
			if e != nil {
				return nil, e
			}
			switch {
			case op == nil:
			case op.action == "delete":
				ops = append(ops, op)
			default:
				pending = op
			}
			continue
		}
		src := bytes.TrimSuffix(text, []byte("\r"))
		if pending.action == "update" {
			u, e := parseUpdateBody(src)
			if e != nil {
				return nil, e
			}
			pending.upd = u
		} else {
			pending.source = append([]byte(nil), src...)
		}
		ops = append(ops, pending)
		pending = nil
	}
}

func malformed(line int, format string, args ...any) *esError {
	return errIllegalArgument("Malformed action/metadata line [%d], %s", line, fmt.Sprintf(format, args...))
}

// parseActionLine parses one action/metadata line; nil for a blank line.
func parseActionLine(text []byte, line int, def bulkDefaults) (*writeOp, *esError) {
	p := &jparser{data: text}
	if err := p.skipSpace(); err != nil {
		se := err.(*jsonSyntaxError)
		return nil, errXContentParse(text, se.off, se.msg)
	}
	if p.pos == len(text) {
		return nil, nil
	}
	// Like Elasticsearch's REST API v8, data after the closing brace is
	// ignored.
	v, err := p.value()
	if err != nil {
		se := err.(*jsonSyntaxError)
		return nil, errXContentParse(text, se.off, se.msg)
	}
	if v.kind != jObject {
		return nil, malformed(line, "expected START_OBJECT but found [%s]", v.tokenName())
	}
	if len(v.members) == 0 {
		return nil, malformed(line, "expected FIELD_NAME but found [END_OBJECT]")
	}
	action := v.members[0].key
	switch action {
	case "index", "create", "update", "delete":
	default:
		return nil, malformed(line, "expected field [create], [delete], [index] or [update] but found [%s]", action)
	}
	params := v.members[0].val
	if params.kind != jObject {
		return nil, malformed(line, "expected START_OBJECT or END_OBJECT but found [%s]", params.tokenName())
	}
	op := newWriteOp(action)
	op.index, op.pipeline, op.hasPipeline, op.requireAlias = def.index, def.pipeline, def.hasPipeline, def.requireAlias
	opType := ""
	versionSet := false
	for _, m := range params.members {
		val := m.val
		switch val.kind {
		case jNull:
			continue
		case jArray:
			return nil, malformed(line, "expected a simple value for field [%s] but found [START_ARRAY]", m.key)
		case jObject:
			if m.key == "_source" || m.key == "dynamic_templates" {
				continue
			}
			return nil, malformed(line, "expected a simple value for field [%s] but found [START_OBJECT]", m.key)
		}
		text := scalarText(val)
		var e *esError
		switch m.key {
		case "_index":
			op.index = text
		case "_id":
			op.id, op.hasID = text, true
		case "routing", "_source", "require_data_stream", "list_executed_pipelines":
		case "op_type":
			opType = text
		case "pipeline":
			op.pipeline, op.hasPipeline = text, true
		case "require_alias":
			op.requireAlias = text == "true"
		case "retry_on_conflict":
			var n int64
			n, e = longValue(val)
			op.retries = int(n)
		case "version":
			op.version, e = longValue(val)
			versionSet = true
		case "version_type":
			switch text {
			case "internal", "external", "external_gte", "force":
				op.versionType = text
			case "external_gt":
				op.versionType = "external"
			default:
				e = errIllegalArgument("No version type match [%s]", text)
			}
		case "if_seq_no":
			if op.ifSeqNo, e = longValue(val); e == nil && op.ifSeqNo < 0 && op.ifSeqNo != unassignedSeqNo {
				e = errIllegalArgument("sequence numbers must be non negative. got [%d].", op.ifSeqNo)
			}
		case "if_primary_term":
			if op.ifPrimaryTerm, e = longValue(val); e == nil && op.ifPrimaryTerm < 0 {
				e = errIllegalArgument("primary term must be non negative. got [%d]", op.ifPrimaryTerm)
			}
		default:
			e = errIllegalArgument("Action/metadata line [%d] contains an unknown parameter [%s]", line, m.key)
		}
		if e != nil {
			return nil, e
		}
	}
	if action == "index" && opType == "create" {
		op.action = "create"
	}
	if action == "update" && (versionSet && op.version != versionMatchAny || op.versionType != "internal") {
		return nil, errIllegalArgument("Update requests do not support versioning. Please use `if_seq_no` and `if_primary_term` instead")
	}
	return op, nil
}

// longValue is XContentParser.longValue() (coercing numeric strings).
func longValue(v *jvalue) (int64, *esError) {
	switch v.kind {
	case jString:
		return stringToLong(v.s)
	case jNumber:
		if v.isFloat() {
			f, _ := strconv.ParseFloat(v.s, 64)
			if math.Abs(f) >= math.MaxInt64 {
				return 0, errIllegalArgument("Value [%s] is out of range for a long", javaNumber(v.s))
			}
			return int64(f), nil
		}
		return stringToLong(v.s)
	default:
		return 0, errIllegalArgument("Current token (%s) not numeric, can not use numeric value accessors", v.tokenName())
	}
}

// parseUpdateBody parses the source line of an update action, as
// UpdateRequest.fromXContent does when the bulk request is read.
func parseUpdateBody(src []byte) (*updBody, *esError) {
	v, err := parseJSON(src)
	if err != nil {
		se := err.(*jsonSyntaxError)
		return nil, errXContentParse(src, se.off, se.msg)
	}
	if v.kind != jObject {
		return nil, errXContentParse(src, v.start, "[UpdateRequest] Expected START_OBJECT but was: "+v.tokenName())
	}
	u := &updBody{detectNoop: true}
	for _, m := range v.members {
		switch m.key {
		case "doc", "upsert":
			if m.val.kind != jObject {
				return nil, errXContentParse(src, m.keyStart, fmt.Sprintf("[UpdateRequest] %s doesn't support values of type: %s", m.key, m.val.tokenName()))
			}
			if m.key == "doc" {
				u.doc = m.val
			} else {
				u.upsert = m.val
			}
		case "doc_as_upsert":
			u.docAsUpsert = boolValue(m.val, false)
		case "detect_noop":
			u.detectNoop = boolValue(m.val, true)
		case "script":
			u.script = true
		case "scripted_upsert", "_source":
		default:
			return nil, errXContentParse(src, m.keyStart, "[UpdateRequest] unknown field ["+m.key+"]")
		}
	}
	return u, nil
}
