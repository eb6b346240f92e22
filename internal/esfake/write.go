package esfake

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
)

// Special values of versions and sequence numbers, as in Elasticsearch.
const (
	versionMatchAny     = -3
	versionNotFound     = -1
	versionMatchDeleted = -4
	unassignedSeqNo     = -2
	unassignedTerm      = 0
	primaryTerm         = 1
)

// writeOp is one document write: a bulk action or a single-document API call.
type writeOp struct {
	action        string // index, create, update, delete
	index         string
	id            string
	hasID         bool
	version       int64
	versionType   string // internal, external, external_gte, force
	ifSeqNo       int64
	ifPrimaryTerm int64
	retries       int
	pipeline      string // "" for none
	hasPipeline   bool
	requireAlias  bool
	source        []byte   // index and create
	upd           *updBody // update
}

func newWriteOp(action string) *writeOp {
	return &writeOp{action: action, version: versionMatchAny, versionType: "internal", ifSeqNo: unassignedSeqNo, ifPrimaryTerm: unassignedTerm}
}

// updBody is the body of an update.
type updBody struct {
	doc         *jvalue
	upsert      *jvalue
	docAsUpsert bool
	detectNoop  bool
	script      bool
}

// writeResult is the outcome of a writeOp.
type writeResult struct {
	index   string
	id      string
	version int64
	seqNo   int64
	result  string // created, updated, deleted, not_found, noop
	status  int
	shards  obj
	err     *esError
}

// validate is the request's validate(): the messages of an
// action_request_validation_exception.
func (op *writeOp) validate() []string {
	var msgs []string
	if op.index == "" {
		msgs = append(msgs, "index is missing")
	}
	switch op.action {
	case "index", "create":
		version := op.version
		if op.action == "create" {
			if version == versionMatchAny {
				version = versionMatchDeleted
			}
			switch {
			case op.versionType != "internal":
				return append(msgs, "create operations only support internal versioning. use index instead")
			case version != versionMatchDeleted:
				return append(msgs, "create operations do not support explicit versions. use index instead")
			case op.ifSeqNo != unassignedSeqNo || op.ifPrimaryTerm != unassignedTerm:
				return append(msgs, "create operations do not support compare and set. use index instead")
			}
		}
		if !op.hasID && (op.versionType != "internal" || (version != versionMatchDeleted && version != versionMatchAny)) {
			msgs = append(msgs, "an id must be provided if version type or value are set")
		}
		msgs = append(msgs, op.casValidation(version)...)
		if op.hasPipeline && op.pipeline == "" {
			msgs = append(msgs, "pipeline cannot be an empty string")
		}
	case "delete":
		if op.id == "" {
			msgs = append(msgs, "id is missing")
		}
		msgs = append(msgs, op.casValidation(op.version)...)
	case "update":
		if op.id == "" {
			msgs = append(msgs, "id is missing")
		}
		u := op.upd
		switch {
		case u.doc == nil && !u.script:
			msgs = append(msgs, "script or doc is missing")
		case u.docAsUpsert && u.doc == nil:
			msgs = append(msgs, "doc must be specified if doc_as_upsert is enabled")
		}
		if u.upsert != nil && u.docAsUpsert {
			msgs = append(msgs, "can't provide both upsert request and doc_as_upsert")
		}
		if op.ifSeqNo != unassignedSeqNo && op.retries > 0 {
			msgs = append(msgs, "compare and write operations can not be retried")
		}
		msgs = append(msgs, op.casValidation(op.version)...)
	}
	if n := len(op.id); n > 512 {
		msgs = append(msgs, fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", op.id, n))
	}
	return msgs
}

// casValidation is DocWriteRequest.validateSeqNoBasedCASParams.
func (op *writeOp) casValidation(version int64) []string {
	var msgs []string
	valid := version >= 0
	if op.versionType == "internal" {
		valid = version > 0 || version == versionMatchAny || version == versionMatchDeleted
	}
	if !valid {
		msgs = append(msgs, fmt.Sprintf("illegal version value [%d] for version type [%s]", version, strings.ToUpper(op.versionType)))
	}
	if op.versionType == "internal" && version != versionMatchAny && version != versionMatchDeleted {
		msgs = append(msgs, "internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead")
	}
	if op.versionType == "force" {
		msgs = append(msgs, "version type [force] may no longer be used")
	}
	if op.ifSeqNo != unassignedSeqNo && (op.versionType != "internal" || version != versionMatchAny) {
		msgs = append(msgs, "compare and write operations can not use versioning")
	}
	if op.ifPrimaryTerm == unassignedTerm && op.ifSeqNo != unassignedSeqNo {
		msgs = append(msgs, "ifSeqNo is set, but primary term is [0]")
	}
	if op.ifPrimaryTerm != unassignedTerm && op.ifSeqNo == unassignedSeqNo {
		msgs = append(msgs, fmt.Sprintf("ifSeqNo is unassigned, but primary term is [%d]", op.ifPrimaryTerm))
	}
	return msgs
}

// resolveIndex finds or auto-creates the index of a write. The caller holds
// s.mu.
func (s *Server) resolveIndex(op *writeOp) (*index, *esError) {
	if ix, ok := s.indices[op.index]; ok {
		if op.requireAlias {
			return nil, requireAliasErr(op.index)
		}
		return ix, nil
	}
	if op.requireAlias {
		return nil, requireAliasErr(op.index)
	}
	// Deletes do not create the index, unless they carry an external
	// version (whose tombstone must be kept).
	if op.action == "delete" && op.versionType == "internal" {
		return nil, errIndexNotFound(op.index)
	}
	return s.createIndex(op.index, nil)
}

func requireAliasErr(name string) *esError {
	e := errIndexNotFound(name)
	e.reason = "no such index [" + name + "] and [require_alias] request flag is [true] and [" + name + "] is not an alias"
	return e
}

// execute applies one write; bulk items are subject to RejectItems and
// RejectItemsWhere. The caller holds s.mu.
func (s *Server) execute(op *writeOp, bulk bool) writeResult {
	res := writeResult{index: op.index, id: op.id}
	ix, e := s.resolveIndex(op)
	if e != nil {
		res.err = e
		return res
	}
	if op.action == "index" || op.action == "create" {
		if !op.hasID {
			op.id, op.hasID = newDocID(), true
			res.id = op.id
		} else if op.id == "" {
			res.err = errIllegalArgument("if _id is specified it must not be empty")
			return res
		}
	}
	if bulk && s.itemFault(op.index, op.id) {
		res.err = newError(http.StatusTooManyRequests, "es_rejected_execution_exception", itemRejectedReason)
		return res
	}
	if op.hasPipeline && op.pipeline != "_none" && !s.pipelines[op.pipeline] {
		res.err = errIllegalArgument("pipeline with id [%s] does not exist", op.pipeline)
		return res
	}
	switch op.action {
	case "index", "create":
		return s.indexDoc(ix, op, op.source)
	case "delete":
		return s.deleteDoc(ix, op)
	default:
		return s.updateDoc(ix, op)
	}
}

// conflict checks the version preconditions of a write against the current
// state of its document (nil: never written or tombstone forgotten).
func conflict(ix *index, op *writeOp, cur *docState) *esError {
	exists := cur != nil && !cur.deleted
	if op.ifSeqNo != unassignedSeqNo {
		if !exists {
			return errVersionConflict(ix, op.id, fmt.Sprintf("required seqNo [%d], primary term [%d]. but no document was found", op.ifSeqNo, op.ifPrimaryTerm))
		}
		if cur.seqNo != op.ifSeqNo || op.ifPrimaryTerm != primaryTerm {
			return errVersionConflict(ix, op.id, fmt.Sprintf("required seqNo [%d], primary term [%d]. current document has seqNo [%d] and primary term [%d]", op.ifSeqNo, op.ifPrimaryTerm, cur.seqNo, primaryTerm))
		}
		return nil
	}
	current := int64(versionNotFound)
	if cur != nil {
		current = cur.version
	}
	version := op.version
	if op.action == "create" {
		version = versionMatchDeleted
	}
	switch op.versionType {
	case "external", "external_gte":
		if current == versionNotFound {
			return nil
		}
		if op.versionType == "external" && current >= version {
			return errVersionConflict(ix, op.id, fmt.Sprintf("current version [%d] is higher or equal to the one provided [%d]", current, version))
		}
		if op.versionType == "external_gte" && current > version {
			return errVersionConflict(ix, op.id, fmt.Sprintf("current version [%d] is higher than the one provided [%d]", current, version))
		}
	default:
		switch {
		case version == versionMatchAny:
		case version == versionMatchDeleted:
			if exists {
				return errVersionConflict(ix, op.id, fmt.Sprintf("document already exists (current version [%d])", current))
			}
		case !exists:
			return errVersionConflict(ix, op.id, fmt.Sprintf("document does not exist (expected version [%d])", version))
		case current != version:
			return errVersionConflict(ix, op.id, fmt.Sprintf("current version [%d] is different than the one provided [%d]", current, version))
		}
	}
	return nil
}

// nextVersion is VersionType.updateVersion.
func nextVersion(op *writeOp, cur *docState) int64 {
	if op.versionType != "internal" {
		return op.version
	}
	if cur == nil {
		return 1
	}
	return cur.version + 1
}

// indexDoc applies an index or create.
func (s *Server) indexDoc(ix *index, op *writeOp, src []byte) writeResult {
	res := writeResult{index: ix.name, id: op.id}
	m, e := ix.parseDoc(op.id, src)
	if e != nil {
		res.err = e
		return res
	}
	if m != nil {
		ix.mapping = m // the mapping update happens before the engine write
	}
	cur := ix.docs[op.id]
	if e := conflict(ix, op, cur); e != nil {
		res.err = e
		return res
	}
	d := &docState{version: nextVersion(op, cur), seqNo: ix.nextSeq, source: append([]byte(nil), src...)}
	ix.nextSeq++
	ix.docs[op.id] = d
	res.version, res.seqNo, res.shards = d.version, d.seqNo, ix.shardsObj()
	res.result, res.status = "updated", http.StatusOK
	if cur == nil || cur.deleted {
		res.result, res.status = "created", http.StatusCreated
	}
	return res
}

// deleteDoc applies a delete, leaving a tombstone.
func (s *Server) deleteDoc(ix *index, op *writeOp) writeResult {
	res := writeResult{index: ix.name, id: op.id}
	cur := ix.docs[op.id]
	if e := conflict(ix, op, cur); e != nil {
		res.err = e
		return res
	}
	d := &docState{version: nextVersion(op, cur), seqNo: ix.nextSeq, deleted: true}
	ix.nextSeq++
	ix.docs[op.id] = d
	res.version, res.seqNo, res.shards = d.version, d.seqNo, ix.shardsObj()
	res.result, res.status = "deleted", http.StatusOK
	if cur == nil || cur.deleted {
		res.result, res.status = "not_found", http.StatusNotFound
	}
	return res
}

// updateDoc applies an update: a partial document merged into the
// current one, or an upsert.
func (s *Server) updateDoc(ix *index, op *writeOp) writeResult {
	res := writeResult{index: ix.name, id: op.id}
	u := op.upd
	if u.script {
		res.err = errIllegalArgument("esfake: scripted updates are not supported")
		return res
	}
	cur, exists := ix.live(op.id)
	if !exists {
		var src *jvalue
		switch {
		case u.docAsUpsert:
			src = u.doc
		case u.upsert != nil:
			src = u.upsert
		default:
			res.err = errDocumentMissing(ix, op.id)
			return res
		}
		create := *op
		create.action, create.version, create.versionType = "create", versionMatchAny, "internal"
		return s.indexDoc(ix, &create, encodeJSON(src, false))
	}
	if e := conflict(ix, op, cur); e != nil {
		res.err = e
		return res
	}
	old, err := parseJSON(cur.source)
	if err != nil || old.kind != jObject {
		res.err = errIllegalArgument("esfake: stored _source of [%s] is not a JSON object", op.id)
		return res
	}
	merged := mergeTrees(jvalueTree(old).(obj), u.doc)
	src := encodeJSON(normalizeNumbers(merged), false)
	if u.detectNoop && bytes.Equal(src, encodeJSON(normalizeNumbers(jvalueTree(old)), false)) {
		res.version, res.seqNo, res.shards = cur.version, cur.seqNo, obj{{"total", 0}, {"successful", 0}, {"failed", 0}}
		res.result, res.status = "noop", http.StatusOK
		return res
	}
	idx := *op
	idx.action, idx.version, idx.versionType = "index", versionMatchAny, "internal"
	idx.ifSeqNo, idx.ifPrimaryTerm = unassignedSeqNo, unassignedTerm
	return s.indexDoc(ix, &idx, src)
}

// mergeTrees is XContentHelper.update: the fields of doc replace those of
// prev, objects merging recursively; new fields come last.
func mergeTrees(prev obj, doc *jvalue) obj {
	out := append(obj{}, prev...)
	for _, m := range doc.members {
		found := false
		for i := range out {
			if out[i].k != m.key {
				continue
			}
			found = true
			if p, ok := out[i].v.(obj); ok && m.val.kind == jObject {
				out[i].v = mergeTrees(p, m.val)
			} else {
				out[i].v = jvalueTree(m.val)
			}
		}
		if !found {
			out = append(out, kv{m.key, jvalueTree(m.val)})
		}
	}
	return out
}

// normalizeNumbers rewrites number literals as Elasticsearch prints them
// after reading a source into a map (Integer/Long/BigInteger, Double).
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case obj:
		o := make(obj, len(t))
		for i, f := range t {
			o[i] = kv{f.k, normalizeNumbers(f.v)}
		}
		return o
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = normalizeNumbers(e)
		}
		return a
	case numLit:
		return numLit(javaNumber(string(t)))
	default:
		return v
	}
}
