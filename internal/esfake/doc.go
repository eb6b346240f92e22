// Package esfake is a test fake of an Elasticsearch 8.19 node: an in-process
// HTTP(S) server that speaks the parts of the REST API an indexing client
// uses, faithfully enough that go-elasticsearch (v8, including esutil's
// BulkIndexer) cannot tell it from a real one. Tests of code that writes to
// Elasticsearch run against it; it is not a search engine.
//
//	es := esfake.New()
//	defer es.Close()
//	client, _ := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{es.URL()}})
//	...
//	doc, ok := es.Doc("orders", "42")
//
// # What it models
//
//   - Every response carries X-Elastic-Product: Elasticsearch (the client
//     refuses a server whose 2xx answers lack it) and Elasticsearch's JSON:
//     its error format {"error": {"root_cause", "type", "reason", ...},
//     "status"}, its field order, and the exact reasons of the errors below.
//     filter_path (with which items.*.error drops the successful items of a
//     bulk response) and pretty apply to every response; unknown query
//     parameters are refused; X-Opaque-Id is echoed. The one exception:
//     RejectRequests with 502 or 504 answers as a proxy would.
//   - GET / (cluster info, version 8.19.0), GET /_cluster/health (a one-node
//     cluster: yellow while an index has replicas).
//   - Security (WithBasicAuth, WithAPIKey): 401 security_exception with
//     WWW-Authenticate challenges without valid credentials. TLS (WithTLS,
//     CACertPEM, CertFingerprint).
//   - Request bodies compressed with Content-Encoding gzip or deflate, and
//     the Content-Type check (406 for other than JSON and NDJSON).
//   - Indices: PUT with settings (unknown settings refused) and mappings,
//     400 resource_already_exists_exception and invalid_index_name_exception;
//     HEAD, GET, DELETE, GET _mapping, _refresh, _count (match_all only).
//     A write to a missing index creates it (action.auto_create_index),
//     except a delete without external versioning.
//   - _bulk and /{index}/_bulk read as BulkRequestParser reads them (newline
//     termination, malformed lines, unknown parameters, update versioning,
//     request validation, all failing the request as a whole), then applied
//     item by item, positional results: index, create, update (doc, upsert,
//     doc_as_upsert, detect_noop, recursive merge) and delete; generated ids;
//     internal, external and external_gte versioning; if_seq_no and
//     if_primary_term; delete tombstones; per-index _seq_no.
//   - Single-document APIs (_doc GET, HEAD, PUT, POST and DELETE, _create,
//     _update) and _mget with docs or ids.
//   - Mapping: explicit mappings from PUT win; otherwise the first value of
//     a field fixes its type by dynamic mapping (strings become text with a
//     keyword sub-field or, by date detection, date; integers long;
//     fractions float; booleans boolean; objects object; null nothing). A
//     value that does not fit is refused with 400 document_parsing_exception
//     worded as Elasticsearch words it ("[1:11] failed to parse field
//     [Amount] of type [long] in document with id 'x'. Preview of field's
//     value: 'abc'", with its [line:col], its Java-style preview and its
//     caused_by), after Elasticsearch's coercions (numeric strings into
//     numbers, fractions into integers, scalars into text). Also dynamic:
//     strict, false and runtime, enabled: false, ignore_malformed, metadata
//     fields inside documents, the total fields and depth limits, and
//     malformed JSON. A document the mapping refuses adds no field to it.
//   - Fault injection: RejectRequests (whole _bulk requests failing with a
//     status), RejectItems and RejectItemsWhere (per-item 429), and Stats.
//
// # What it does not model
//
// Search (_search, queries, aggregations, analysis) and near-real-time
// visibility: a write is visible at once to get, _mget and _count, and
// refresh does nothing. Aliases, data streams, index templates,
// dynamic_templates (kept in the mapping, not applied), the parameters of
// mapped fields (accepted unchecked, except type, format, dynamic,
// enabled, coerce and ignore_malformed), ingest pipelines (WithPipelines
// declares some; they change nothing), scripts, routing and several shards
// (number_of_shards is reported, not used), comma lists and wildcards in
// index names, PUT _mapping, YAML/CBOR/Smile bodies, and the expiry of
// delete tombstones after index.gc_deletes (the fake keeps them forever).
// The reasons of rare errors (JSON syntax errors, some coercion failures)
// follow Elasticsearch's wording as closely as known, not verbatim.
//
// # Concurrency
//
// A Server serves requests concurrently; each bulk item is applied under one
// lock, in request order, so items of concurrent bulk requests interleave as
// they do on a shard. Per-index sequence numbers grow by one per write. The
// fault injection and inspection methods are safe to call at any time.
package esfake
