// Package elastic is the sink that indexes events into Elasticsearch (8.x,
// and 7.x answering the X-Elastic-Product header) with the bulk API of
// go-elasticsearch (esutil.BulkIndexer), into indices named by a template
// over the event's fields (see package route), e.g. "helpdesk-{{.Type}}".
//
// # Documents
//
// In [ModeEvents] (the default) each event is one document: the JSON
// envelope of package envelope, _id the event id, indexed with
// version_type=external and version = seq_id. Delivering an event again
// (after a crash, a retry, a replay) is a no-op: Elasticsearch answers 409
// version_conflict_engine_exception, which counts as success.
//
// In [ModeLatest] each stream is one document, its current state: _id the
// stream id, external version the stream version of the last event
// applied, and as body the JSON merge (RFC 7386 merge patch: objects merge
// recursively, null removes a key, any other value replaces) of the data of
// the stream's events, in stream order, plus the metadata fields
// "@stream_id", "@type" (of the last event), "@version", "@tenant_id" and
// "@timestamp" (of the last event, RFC 3339, the field Kibana expects),
// which replace data members of the same name. A stale write never
// overwrites a newer state: its version is not greater, and Elasticsearch
// refuses it with a 409. Every event's data must be a JSON object; another
// value is rejected.
//
// The merge goes on from what is stored. For each batch, the events of
// each (index, stream) are gathered, and the stream's stored document is
// read with one realtime _mget for the batch (source and _version): the
// events whose version is greater than the stored _version (and than the
// event applied before them) are merged into the stored source, in order,
// and the result is indexed once, with the version of the last of them. A
// stored version at or above the batch's last version means there is
// nothing to write. A stream's events in one batch thus make one request
// item. The index template is rendered per event, so an index that depends
// on the type ("helpdesk-{{.Type}}") splits a stream into one document per
// type, each merged from the events of that type only: in latest mode, use
// an index that depends on the stream only (a constant, or the tenant).
//
// With TenantPrefix (set when the store uses conjoined tenancy, where ids,
// and seq_ids under tenant partitioning, are unique per tenant only) every
// _id is "<tenant_id>:<id>".
//
// # Indices
//
// Without IndexSettings the sink creates no index: Elasticsearch creates
// an index on its first write, with its index templates. With
// IndexSettings, the first time the sink meets an index (in a Write, or in
// Prepare for a constant index) it asks HEAD /<index> and, if the index
// does not exist, creates it with PUT /<index> and the settings; an index
// created meanwhile by someone else (resource_already_exists_exception) is
// fine. Indices known to exist are remembered until the sink is closed; an
// index deleted later is created again by Elasticsearch, without the
// settings.
//
// # Write: rounds, retries and rejections
//
// Write first renders each event's index and _id. An event whose template
// fails, whose index name Elasticsearch would refuse (uppercase, a
// forbidden character, over 255 bytes), whose _id is over 512 bytes or
// cannot be quoted as JSON by the bulk indexer (see below), or whose data
// is not an object in latest mode, is rejected before anything is sent:
// only the events before it are written.
//
// The documents are then sent in rounds. Each round is one bulk indexer
// (Workers workers, bulk requests of up to FlushBytes, responses cut down
// with filter_path to each item's status and error), closed at the end of
// the round, which waits for every result. The workers send in parallel
// and may send items in any order; that does not matter, since a batch
// holds one item per document and external versions decide which write
// wins. (One thing the order does decide: when two documents of a batch
// disagree on the type of a field that is not mapped yet, whichever is
// indexed first sets the dynamic mapping and the other is refused. Map
// such fields in IndexSettings or an index template.)
//
// A whole bulk request answered with 429, 502, 503 or 504, or that gets no
// answer, is retried by the client up to 3 times with an exponential
// backoff (100ms, 200ms, 400ms). Beyond that, or for any other status
// (401, 403, 500...), its items fail and Write returns a plain error: the
// pipeline writes the batch again after its own backoff. The exception is
// 413 (http.max_content_length exceeded) for a request of one document,
// which the bulk indexer sends alone because it is FlushBytes or larger:
// that document is refused for good.
//
// Items are answered one by one. 200, 201 and 409 are success. An item
// refused with 429 (es_rejected_execution_exception: a full write queue) is
// not retried by the bulk indexer, which cannot take new items from its
// callbacks either (Add from OnFailure deadlocks), so Write collects them
// and sends them again in a new round, after a backoff doubling from 100ms
// to 5s, until they are written, ctx ends, or 10 rounds have passed (a
// plain error). An item refused with 400 (document_parsing_exception,
// mapper_parsing_exception, illegal_argument_exception,
// invalid_index_name_exception...) is refused for good: Write returns a
// [cdc.RejectedError] for the first such event in batch order, once every
// event before it is written or answered 409; items after it may have been
// written too, which is harmless, since writing them again is a no-op. Any
// other item failure (a 5xx, 403, index_not_found_exception when
// Elasticsearch does not create indices) is a plain error. Write returns
// nil only when every item succeeded or was a 409: nothing is logged and
// dropped.
//
// In latest mode a refused document merges several events. Write finds the
// one at fault by writing the document again merged from fewer of them (a
// binary search over the prefixes, each accepted prefix written with its
// own, higher, version): the events of the stream before the one at fault
// are then written, and that one is rejected.
//
// # go-elasticsearch
//
// Some behaviours of go-elasticsearch v8 shape this package:
//
//   - The bulk indexer's workers send with context.Background(); the sink
//     gives them Write's context, bounded by RequestTimeout, through
//     OnFlushStart, and closes the indexer with a context that does not end,
//     so that no callback runs after Write returns.
//   - The bulk indexer writes _index and _id with strconv.Quote, Go syntax,
//     which is not JSON for control characters, invalid UTF-8 and
//     non-printable characters beyond U+FFFF: such names are rejected.
//   - Each worker of a bulk indexer allocates a buffer of FlushBytes up
//     front: the sink lowers FlushBytes to the size of the round.
//   - The client checks the X-Elastic-Product header of its first successful
//     answer only, and sends basic auth only when both the username and the
//     password are set (Validate requires both).
//
// # Connections
//
// New connects to nothing and starts no goroutine. Check (for cdc
// validate) asks GET / (which needs the cluster privilege monitor: a role
// without it gets a 403 line) and, for a constant index, HEAD /<index>;
// Prepare (at the start of cdc run) creates a constant index with
// IndexSettings.
// Authentication is basic (Username, Password) or an API key; TLS comes
// from Config.TLS (see package internal/tlsfile). No error or log holds a
// password or API key.
package elastic
