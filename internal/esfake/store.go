package esfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Doc is a document as the fake stores it.
type Doc struct {
	// Version is the document's _version: the external version given with
	// version_type external, else a counter from 1.
	Version int64
	// SeqNo is the _seq_no of the write that produced this version; it grows
	// by one per write (index, update, delete) within an index.
	SeqNo int64
	// Source is the document's _source, byte for byte as it was sent for
	// index and create, or re-serialized after an update.
	Source json.RawMessage
}

// index is one index: its settings, mapping and documents.
type index struct {
	name     string
	uuid     string
	created  time.Time
	body     json.RawMessage   // the PUT body; nil when auto-created
	settings map[string]string // flat "index.*" keys
	shards   int
	replicas int
	mapping  *rootMapping
	docs     map[string]*docState // live documents and delete tombstones
	nextSeq  int64
}

// docState is a document or, when deleted, its tombstone: Elasticsearch
// remembers a deleted document's version (for index.gc_deletes, 60s by
// default) so that external versioning keeps working across deletes.
type docState struct {
	version int64
	seqNo   int64
	source  []byte
	deleted bool
}

func (ix *index) live(id string) (*docState, bool) {
	d, ok := ix.docs[id]
	if !ok || d.deleted {
		return nil, false
	}
	return d, true
}

func (ix *index) count() int {
	n := 0
	for _, d := range ix.docs {
		if !d.deleted {
			n++
		}
	}
	return n
}

// shardsObj is the _shards of a write: the primary and its replicas, of
// which only the primary is assigned on a one-node cluster.
func (ix *index) shardsObj() obj {
	return obj{{"total", 1 + ix.replicas}, {"successful", 1}, {"failed", 0}}
}

// newUUID returns a random 22-character URL-safe id, like an index UUID.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newDocID returns an auto-generated document id (20 characters).
func newDocID() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxIndexNameBytes is MetadataCreateIndexService.MAX_INDEX_NAME_BYTES.
const maxIndexNameBytes = 255

// validateIndexName applies Elasticsearch's index name rules, in its order.
func validateIndexName(name string) *esError {
	if strings.ContainsAny(name, "\\/*?\"<>| ,") {
		return errInvalidIndexName(name, `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`)
	}
	if name == "" {
		return errInvalidIndexName(name, "must not be empty")
	}
	if strings.Contains(name, "#") {
		return errInvalidIndexName(name, "must not contain '#'")
	}
	if strings.Contains(name, ":") {
		return errInvalidIndexName(name, "must not contain ':'")
	}
	if c := name[0]; c == '_' || c == '-' || c == '+' {
		return errInvalidIndexName(name, "must not start with '_', '-', or '+'")
	}
	if n := len(name); n > maxIndexNameBytes {
		return errInvalidIndexName(name, fmt.Sprintf("index name is too long, (%d > %d)", n, maxIndexNameBytes))
	}
	if name == "." || name == ".." {
		return errInvalidIndexName(name, "must not be '.' or '..'")
	}
	if strings.ToLower(name) != name {
		return errInvalidIndexName(name, "must be lowercase")
	}
	return nil
}

// createIndex creates an index; body is the PUT body (nil when the index is
// auto-created by a write). The caller holds s.mu.
func (s *Server) createIndex(name string, body []byte) (*index, *esError) {
	if e := validateIndexName(name); e != nil {
		return nil, e
	}
	if ix, ok := s.indices[name]; ok {
		return nil, errAlreadyExists(ix)
	}
	ix := &index{
		name:     name,
		uuid:     newUUID(),
		created:  time.Now(),
		settings: map[string]string{},
		shards:   1,
		replicas: 1,
		mapping:  newRootMapping(),
		docs:     map[string]*docState{},
	}
	if len(body) > 0 {
		if e := ix.applyCreateBody(body); e != nil {
			return nil, e
		}
		ix.body = append(json.RawMessage(nil), body...)
	}
	s.indices[name] = ix
	s.stats.IndexCreates++
	return ix, nil
}

// applyCreateBody reads the settings, mappings and aliases of a create
// index request.
func (ix *index) applyCreateBody(body []byte) *esError {
	v, err := parseJSON(body)
	if err != nil {
		se := err.(*jsonSyntaxError)
		return errXContentParse(body, se.off, se.msg)
	}
	if v.kind != jObject {
		return errParse("Failed to derive xcontent")
	}
	for _, m := range v.members {
		switch m.key {
		case "settings":
			if m.val.kind != jObject {
				return errParse("key [settings] must be an object")
			}
			flattenSettings("", m.val, ix.settings)
		case "mappings":
			if m.val.kind != jObject {
				return errParse("key [mappings] must be an object")
			}
			rm, e := parseRootMapping(m.val)
			if e != nil {
				return e
			}
			ix.mapping = rm
		case "aliases":
		default:
			return errParse("unknown key [" + m.key + "] for create index")
		}
	}
	for k, val := range ix.settings {
		if !knownSetting(k) {
			return errIllegalArgument("unknown setting [%s] please check that any required plugins are installed, or check the breaking changes documentation for removed settings", k)
		}
		switch k {
		case "index.number_of_shards":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return errIllegalArgument("Failed to parse value [%s] for setting [index.number_of_shards] must be >= 1", val)
			}
			ix.shards = n
		case "index.number_of_replicas":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return errIllegalArgument("Failed to parse value [%s] for setting [index.number_of_replicas] must be >= 0", val)
			}
			ix.replicas = n
		}
	}
	return nil
}

// settingGroups are the index settings (and setting groups) Elasticsearch
// knows. A key outside them is refused, as Elasticsearch refuses a typo such
// as number_of_shard; keys inside a group are not checked further.
var settingGroups = []string{
	"number_of_shards", "number_of_replicas", "number_of_routing_shards", "auto_expand_replicas", "refresh_interval",
	"max_result_window", "max_inner_result_window", "max_rescore_window", "max_docvalue_fields_search",
	"max_script_fields", "max_ngram_diff", "max_shingle_diff", "max_refresh_listeners", "max_terms_count",
	"max_regex_length", "max_slices_per_scroll", "max_adjacency_matrix_filters", "codec", "hidden", "priority",
	"gc_deletes", "default_pipeline", "final_pipeline", "routing_partition_size", "load_fixed_bitset_filters_eagerly",
	"shard", "mode", "format", "provided_name", "creation_date", "uuid", "version", "frozen",
	"analysis", "analyze", "mapping", "routing", "blocks", "translog", "merge", "lifecycle", "sort", "similarity",
	"search", "indexing", "query", "store", "unassigned", "write", "soft_deletes", "highlight", "knn",
	"time_series", "look_ahead_time", "look_back_time", "requests", "fielddata", "queries", "allocation",
	"recovery", "warmer", "verified_before_close", "compound_format", "history", "plugin", "data_path",
	"shared_filesystem", "max_slices", "seq_no", "dense_vector", "logsdb",
	"source", "recovery_source", "synthetic_source", "xpack",
}

// knownSetting reports whether a flat index setting key is one Elasticsearch
// knows (or may know: only the first level is checked).
func knownSetting(key string) bool {
	rest, ok := strings.CutPrefix(key, "index.")
	if !ok {
		return false
	}
	first, _, _ := strings.Cut(rest, ".")
	for _, g := range settingGroups {
		if g == first {
			return true
		}
	}
	return false
}

// flattenSettings turns nested settings into Elasticsearch's flat keys,
// adding the "index." prefix where it is left out.
func flattenSettings(prefix string, v *jvalue, out map[string]string) {
	for _, m := range v.members {
		key := m.key
		if prefix != "" {
			key = prefix + "." + key
		}
		switch m.val.kind {
		case jObject:
			flattenSettings(key, m.val, out)
			continue
		case jNull:
			continue
		}
		if !strings.HasPrefix(key, "index.") && key != "index" {
			key = "index." + key
		}
		switch m.val.kind {
		case jString, jNumber:
			out[key] = m.val.s
		case jBool:
			out[key] = strconv.FormatBool(m.val.b)
		case jArray:
			parts := make([]string, len(m.val.elems))
			for i, e := range m.val.elems {
				parts[i] = e.s
			}
			out[key] = strings.Join(parts, ",")
		}
	}
}

// settingsTree renders the index settings as GET /{index} shows them.
func (ix *index) settingsTree() obj {
	flat := map[string]string{
		"index.number_of_shards":   strconv.Itoa(ix.shards),
		"index.number_of_replicas": strconv.Itoa(ix.replicas),
		"index.provided_name":      ix.name,
		"index.creation_date":      strconv.FormatInt(ix.created.UnixMilli(), 10),
		"index.uuid":               ix.uuid,
		"index.routing.allocation.include._tier_preference": "data_content",
	}
	for k, v := range ix.settings {
		if _, fixed := flat[k]; !fixed {
			flat[k] = v
		}
	}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	root := obj{}
	for _, k := range keys {
		root = setPath(root, strings.Split(k, "."), flat[k])
	}
	return root
}

func setPath(o obj, path []string, val string) obj {
	for i := range o {
		if o[i].k == path[0] {
			if len(path) == 1 {
				o[i].v = val
				return o
			}
			if child, ok := o[i].v.(obj); ok {
				o[i].v = setPath(child, path[1:], val)
				return o
			}
		}
	}
	if len(path) == 1 {
		return append(o, kv{path[0], val})
	}
	return append(o, kv{path[0], setPath(obj{}, path[1:], val)})
}

// Doc returns the live document index/id.
func (s *Server) Doc(index, id string) (Doc, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[index]
	if !ok {
		return Doc{}, false
	}
	d, ok := ix.live(id)
	if !ok {
		return Doc{}, false
	}
	return Doc{Version: d.version, SeqNo: d.seqNo, Source: append(json.RawMessage(nil), d.source...)}, true
}

// Docs returns the live documents of an index by id (nil if the index does
// not exist).
func (s *Server) Docs(index string) map[string]Doc {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[index]
	if !ok {
		return nil
	}
	out := make(map[string]Doc, len(ix.docs))
	for id, d := range ix.docs {
		if !d.deleted {
			out[id] = Doc{Version: d.version, SeqNo: d.seqNo, Source: append(json.RawMessage(nil), d.source...)}
		}
	}
	return out
}

// Indices returns the names of the existing indices, sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.indices))
	for n := range s.indices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// IndexBody returns the body the index was created with by PUT /{index}, or
// nil when it was auto-created by a write (or does not exist).
func (s *Server) IndexBody(index string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix, ok := s.indices[index]; ok && ix.body != nil {
		return append(json.RawMessage(nil), ix.body...)
	}
	return nil
}

// Mapping returns the index's current mapping, explicit and dynamic fields
// together, as GET /{index}/_mapping shows it under "mappings"; nil if the
// index does not exist.
func (s *Server) Mapping(index string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix, ok := s.indices[index]; ok {
		return encodeJSON(ix.mapping.tree(), false)
	}
	return nil
}
