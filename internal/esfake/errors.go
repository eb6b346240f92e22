package esfake

import (
	"fmt"
	"net/http"
	"strings"
)

// esError is an Elasticsearch exception as the REST layer renders it:
// {"type", "reason", metadata..., "caused_by"}.
type esError struct {
	status int
	typ    string
	reason string
	meta   obj // index_uuid, shard, index, resource.type, header, ... in ES's order
	cause  *esError
}

// esExceptionTypes are causes that are Elasticsearch exceptions themselves,
// which Elasticsearch reports as the root cause instead of their wrapper.
var esExceptionTypes = map[string]bool{
	"mapper_parsing_exception":   true,
	"document_parsing_exception": true,
	"x_content_parse_exception":  true,
	"parse_exception":            true,
}

// body renders the exception, causes included.
func (e *esError) body() obj {
	o := obj{{"type", e.typ}, {"reason", e.reason}}
	o = append(o, e.meta...)
	if e.cause != nil {
		o = append(o, kv{"caused_by", e.cause.body()})
	}
	return o
}

// response renders the whole-request error document
// {"error": {"root_cause": [...], ...}, "status": N}.
func (e *esError) response() obj {
	root := e
	for root.cause != nil && esExceptionTypes[root.cause.typ] {
		root = root.cause
	}
	rc := obj{{"type", root.typ}, {"reason", root.reason}}
	rc = append(rc, root.meta...)
	errObj := append(obj{{"root_cause", []any{rc}}}, e.body()...)
	return obj{{"error", errObj}, {"status", e.status}}
}

func newError(status int, typ, reason string) *esError {
	return &esError{status: status, typ: typ, reason: reason}
}

func errIllegalArgument(format string, args ...any) *esError {
	return newError(http.StatusBadRequest, "illegal_argument_exception", fmt.Sprintf(format, args...))
}

func errParse(reason string) *esError {
	return newError(http.StatusBadRequest, "parse_exception", reason)
}

// errValidation is ActionRequestValidationException: "Validation Failed: 1: a;2: b;".
func errValidation(msgs []string) *esError {
	var b strings.Builder
	b.WriteString("Validation Failed: ")
	for i, m := range msgs {
		fmt.Fprintf(&b, "%d: %s;", i+1, m)
	}
	return newError(http.StatusBadRequest, "action_request_validation_exception", b.String())
}

func errIndexNotFound(index string) *esError {
	e := newError(http.StatusNotFound, "index_not_found_exception", "no such index ["+index+"]")
	e.meta = obj{{"resource.type", "index_or_alias"}, {"resource.id", index}, {"index_uuid", "_na_"}, {"index", index}}
	return e
}

func errInvalidIndexName(index, desc string) *esError {
	e := newError(http.StatusBadRequest, "invalid_index_name_exception", "Invalid index name ["+index+"], "+desc)
	e.meta = obj{{"index_uuid", "_na_"}, {"index", index}}
	return e
}

func errAlreadyExists(ix *index) *esError {
	e := newError(http.StatusBadRequest, "resource_already_exists_exception", fmt.Sprintf("index [%s/%s] already exists", ix.name, ix.uuid))
	e.meta = obj{{"index_uuid", ix.uuid}, {"index", ix.name}}
	return e
}

// shardMeta is the metadata of exceptions raised on a shard.
func shardMeta(ix *index) obj {
	return obj{{"index_uuid", ix.uuid}, {"shard", "0"}, {"index", ix.name}}
}

func errVersionConflict(ix *index, id, explanation string) *esError {
	e := newError(http.StatusConflict, "version_conflict_engine_exception", "["+id+"]: version conflict, "+explanation)
	e.meta = shardMeta(ix)
	return e
}

func errDocumentMissing(ix *index, id string) *esError {
	e := newError(http.StatusNotFound, "document_missing_exception", "["+id+"]: document missing")
	e.meta = shardMeta(ix)
	return e
}

// errXContentParse is a JSON syntax error in a request body.
func errXContentParse(data []byte, off int, msg string) *esError {
	return newError(http.StatusBadRequest, "x_content_parse_exception", locPrefix(data, off)+msg)
}

// errDocumentParsing is DocumentParsingException: "[line:col] message".
func errDocumentParsing(data []byte, off int, msg string, cause *esError) *esError {
	e := newError(http.StatusBadRequest, "document_parsing_exception", locPrefix(data, off)+msg)
	e.cause = cause
	return e
}

// rejectedReason is the reason of an indexing-pressure rejection.
const rejectedReason = "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]"

// itemRejectedReason is the reason of a per-item (primary shard) rejection.
const itemRejectedReason = "rejected execution of primary operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, primary_operation_bytes=1024, max_coordinating_and_primary_bytes=0]"

// errStatus is the error a whole request fails with when RejectRequests
// injects status.
func errStatus(status int) *esError {
	switch status {
	case http.StatusTooManyRequests:
		return newError(status, "es_rejected_execution_exception", rejectedReason)
	case http.StatusServiceUnavailable:
		return newError(status, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];")
	case http.StatusInternalServerError:
		return newError(status, "null_pointer_exception", "esfake: injected internal server error")
	case http.StatusRequestTimeout:
		return newError(status, "receive_timeout_transport_exception", "[esfake][127.0.0.1:9300][indices:data/write/bulk[s]] request_id [1] timed out after [60000ms]")
	default:
		return newError(status, "status_exception", fmt.Sprintf("esfake: injected status %d", status))
	}
}

// wwwAuthenticate lists the challenges of a default Elasticsearch 8 node.
var wwwAuthenticate = []string{`Basic realm="security", charset="UTF-8"`, `Bearer realm="security"`, "ApiKey"}

func errSecurity(reason, unsuccessful string) *esError {
	e := newError(http.StatusUnauthorized, "security_exception", reason)
	if unsuccessful != "" {
		e.meta = append(e.meta, kv{"additional_unsuccessful_credentials", unsuccessful})
	}
	hdr := make([]any, len(wwwAuthenticate))
	for i, h := range wwwAuthenticate {
		hdr[i] = h
	}
	e.meta = append(e.meta, kv{"header", obj{{"WWW-Authenticate", hdr}}})
	return e
}
