package esfake

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
)

// One request mixing successes and failures answers one item per action,
// in request order.
func TestBulkPositionalResults(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	mustBulk(t, c, lines(`{"index":{"_index":"p","_id":"seed"}}`, `{"n":1}`))
	body := lines(
		`{"index":{"_index":"p","_id":"a"}}`, `{"n":2}`,
		`{"index":{"_index":"p","_id":"b"}}`, `{"n":"two"}`,
		`{"create":{"_index":"p","_id":"seed"}}`, `{"n":3}`,
		`{"index":{"_index":"p"}}`, `{"n":4}`,
		`{"delete":{"_index":"p","_id":"gone"}}`,
		`{"update":{"_index":"p","_id":"missing"}}`, `{"doc":{"n":5}}`,
		`{"update":{"_index":"p","_id":"a"}}`, `{"doc":{"m":6}}`,
		`{"index":{"_index":"P","_id":"x"}}`, `{"n":7}`,
		`{"delete":{"_index":"p","_id":"seed"}}`,
	)
	br := mustBulk(t, c, body)
	want := []struct {
		action, result, errType string
		status                  int
		version                 int64
	}{
		{"index", "created", "", 201, 1},
		{"index", "", "document_parsing_exception", 400, 0},
		{"create", "", "version_conflict_engine_exception", 409, 0},
		{"index", "created", "", 201, 1},
		{"delete", "not_found", "", 404, 1},
		{"update", "", "document_missing_exception", 404, 0},
		{"update", "updated", "", 200, 2},
		{"index", "", "invalid_index_name_exception", 400, 0},
		{"delete", "deleted", "", 200, 2},
	}
	if !br.Errors || len(br.Items) != len(want) {
		t.Fatalf("errors=%v, %d items, want %d", br.Errors, len(br.Items), len(want))
	}
	for i, w := range want {
		action, it := only(t, br.Items[i])
		gotErr := ""
		if it.Error != nil {
			gotErr = it.Error.Type
		}
		if action != w.action || it.Result != w.result || gotErr != w.errType || it.Status != w.status || it.Version != w.version {
			t.Errorf("item %d: %s %+v, want %+v", i, action, it, w)
		}
	}
	if _, it := only(t, br.Items[3]); it.ID == nil || len(*it.ID) != 20 {
		t.Errorf("generated id: %+v", it.ID)
	}
	if _, it := only(t, br.Items[7]); it.ID == nil || *it.ID != "x" || it.Error.Reason != "Invalid index name [P], must be lowercase" {
		t.Errorf("invalid index item: %+v", it)
	}
	if _, it := only(t, br.Items[5]); it.Error.Reason != "[missing]: document missing" || it.Error.Index != "p" || it.Error.Shard != "0" || it.Error.IndexUUID == "" {
		t.Errorf("document missing item: %+v", it.Error)
	}
	// Sequence numbers grow by one per write, not-found deletes included.
	var seqs []int64
	for _, m := range br.Items {
		if _, it := only(t, m); it.Error == nil {
			seqs = append(seqs, it.SeqNo)
		}
	}
	for i, sq := range seqs {
		if sq != int64(i+1) {
			t.Errorf("seq_nos = %v, want 1, 2, ...", seqs)
			break
		}
	}
	if d, ok := s.Doc("p", "a"); !ok || string(d.Source) != `{"n":2,"m":6}` || d.Version != 2 {
		t.Errorf("updated doc: %+v %s", d, d.Source)
	}
	if _, ok := s.Doc("p", "seed"); ok {
		t.Error("a deleted document is still returned")
	}
	st := s.Stats()
	if st.Items != 10 || st.ItemConflicts != 1 || st.Items400 != 2 || st.Items404 != 1 || st.ItemsCreated != 3 || st.ItemsNotFound != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// Errors that fail a bulk request as a whole, with Elasticsearch's reasons.
func TestBulkRequestErrors(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	tests := []struct {
		name, body, typ, reason string
	}{
		{"no trailing newline", `{"index":{"_index":"e","_id":"1"}}` + "\n" + `{"n":1}`,
			"illegal_argument_exception", `The bulk request must be terminated by a newline [\n]`},
		{"empty", "\n", "action_request_validation_exception", "Validation Failed: 1: no requests added;"},
		{"unknown action", lines(`{"upsert":{"_index":"e"}}`, `{}`), "illegal_argument_exception",
			"Malformed action/metadata line [1], expected field [create], [delete], [index] or [update] but found [upsert]"},
		{"not an object", lines(`["index"]`), "illegal_argument_exception", "Malformed action/metadata line [1], expected START_OBJECT but found [START_ARRAY]"},
		{"unknown parameter", lines(`{"index":{"_index":"e","_type":"_doc"}}`, `{}`), "illegal_argument_exception",
			"Action/metadata line [1] contains an unknown parameter [_type]"},
		{"array parameter", lines(`{"delete":{"_index":"e","_id":["1"]}}`), "illegal_argument_exception",
			"Malformed action/metadata line [1], expected a simple value for field [_id] but found [START_ARRAY]"},
		{"bad json action", lines(`{"index":{"_index":"e",}}`, `{}`), "x_content_parse_exception",
			"[1:24] Unexpected character ('}' (code 125)): was expecting double-quote to start field name"},
		{"update with external version", lines(`{"update":{"_index":"e","_id":"1","version":2,"version_type":"external"}}`, `{"doc":{}}`),
			"illegal_argument_exception", "Update requests do not support versioning. Please use `if_seq_no` and `if_primary_term` instead"},
		{"update unknown field", lines(`{"update":{"_index":"e","_id":"1"}}`, `{"doc":{},"docs":1}`), "x_content_parse_exception",
			"[1:11] [UpdateRequest] unknown field [docs]"},
		{"external without version", lines(`{"index":{"_index":"e","_id":"1","version_type":"external"}}`, `{}`),
			"action_request_validation_exception", "Validation Failed: 1: illegal version value [-3] for version type [EXTERNAL];"},
		{"internal with version", lines(`{"index":{"_index":"e","_id":"1","version":3}}`, `{}`), "action_request_validation_exception",
			"Validation Failed: 1: internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead;"},
		{"create with external", lines(`{"create":{"_index":"e","_id":"1","version":3,"version_type":"external"}}`, `{}`),
			"action_request_validation_exception", "Validation Failed: 1: create operations only support internal versioning. use index instead;"},
		{"several validation errors", lines(`{"index":{}}`, `{}`, `{"delete":{"_index":"e"}}`), "action_request_validation_exception",
			"Validation Failed: 1: index is missing;2: id is missing;"},
		{"if_seq_no without term", lines(`{"index":{"_index":"e","_id":"1","if_seq_no":3}}`, `{}`), "action_request_validation_exception",
			"Validation Failed: 1: ifSeqNo is set, but primary term is [0];"},
		{"id too long", lines(`{"index":{"_index":"e","_id":"`+strings.Repeat("x", 513)+`"}}`, `{}`), "action_request_validation_exception",
			"is too long, must be no longer than 512 bytes but was: 513;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, eb := doBulk(t, c, tt.body)
			if status != 400 || eb.Status != 400 || eb.Error.Type != tt.typ || !strings.Contains(eb.Error.Reason, tt.reason) ||
				len(eb.Error.RootCause) != 1 || eb.Error.RootCause[0].Type != tt.typ {
				t.Errorf("status %d, %+v; want %s %q", status, eb, tt.typ, tt.reason)
			}
		})
	}
	if got := s.Indices(); len(got) != 0 {
		t.Errorf("failed requests created indices %v", got)
	}
}

// Per-item 429s: the request succeeds with errors, esutil.BulkIndexer
// reports each rejected item through OnFailure and does not retry it.
func TestItem429(t *testing.T) {
	s := newServer(t)
	s.RejectItems(2)
	s.RejectItemsWhere(func(index, id string) bool { return id == "7" })
	var mu sync.Mutex
	failed := map[string]int{}
	ok := 0
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: newClient(t, s), Index: "r", NumWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2", "3", "7", "8"} {
		err := bi.Add(t.Context(), esutil.BulkIndexerItem{
			Action: "index", DocumentID: id, Body: strings.NewReader(`{"n":1}`),
			OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) {
				mu.Lock()
				ok++
				mu.Unlock()
			},
			OnFailure: func(_ context.Context, item esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil || res.Error.Type != "es_rejected_execution_exception" || !strings.HasPrefix(res.Error.Reason, "rejected execution of") {
					t.Errorf("failure of %s: %+v, %v", item.DocumentID, res, err)
				}
				failed[item.DocumentID] = res.Status
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := bi.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(failed) != 3 || failed["1"] != 429 || failed["2"] != 429 || failed["7"] != 429 || ok != 2 {
		t.Errorf("failed = %v, ok = %d", failed, ok)
	}
	st := s.Stats()
	if st.BulkRequests != 1 || st.Items429 != 3 || st.Items != 5 {
		t.Errorf("stats = %+v", st)
	}
	if _, found := s.Doc("r", "1"); found {
		t.Error("a rejected item was applied")
	}
	s.RejectItemsWhere(nil)
	mustBulk(t, newClient(t, s), lines(`{"index":{"_index":"r","_id":"7"}}`, `{}`))
	if _, found := s.Doc("r", "7"); !found {
		t.Error("RejectItemsWhere(nil) did not clear the filter")
	}
}

// Whole-request rejections: the client retries the statuses in its
// RetryOnStatus by itself; otherwise the BulkIndexer fails every item.
func TestRequestRejections(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryOn    []int
		wantOK     bool
		wantReason string
	}{
		{"429 retried", 429, []int{429, 502, 503, 504}, true, ""},
		{"503 retried by default", 503, nil, true, ""},
		{"502 retried by default", 502, nil, true, ""},
		{"429 not retried by default", 429, nil, false, "es_rejected_execution_exception"},
		{"500 not retried", 500, []int{429}, false, "500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			s.RejectRequests(2, tt.status)
			c := newClient(t, s, func(c *elasticsearch.Config) { c.RetryOnStatus = tt.retryOn })
			var mu sync.Mutex
			var itemErrs []error
			var flushErr error
			bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
				Client: c, Index: "q", NumWorkers: 1,
				OnError: func(_ context.Context, err error) { mu.Lock(); flushErr = err; mu.Unlock() },
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"1", "2"} {
				_ = bi.Add(t.Context(), esutil.BulkIndexerItem{Action: "index", DocumentID: id, Body: strings.NewReader(`{}`),
					OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, _ esutil.BulkIndexerResponseItem, err error) {
						mu.Lock()
						itemErrs = append(itemErrs, err)
						mu.Unlock()
					}})
			}
			if err := bi.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if tt.wantOK {
				if flushErr != nil || len(itemErrs) != 0 || len(s.Docs("q")) != 2 || st.BulkRequests != 3 || st.RequestsRejected != 2 {
					t.Errorf("flush err %v, item errs %v, stats %+v", flushErr, itemErrs, st)
				}
				return
			}
			if flushErr == nil || !strings.Contains(flushErr.Error(), tt.wantReason) || len(itemErrs) != 2 || st.BulkRequests != 1 {
				t.Errorf("flush err %v, item errs %v, stats %+v", flushErr, itemErrs, st)
			}
			if tt.status == 429 && st.Requests429 != 1 {
				t.Errorf("Requests429 = %d", st.Requests429)
			}
		})
	}
}

// Elasticsearch's own 503 is JSON with the product header; 502 and 504 come
// from a proxy.
func TestRejectedBodies(t *testing.T) {
	s := newServer(t)
	body := []byte(lines(`{"index":{"_index":"x"}}`, `{}`))
	s.RejectRequests(1, http.StatusServiceUnavailable)
	r := raw(t, s, "POST", "/_bulk", body)
	var eb errorBody
	decode(t, r.body, &eb)
	if r.status != 503 || eb.Error.Type != "cluster_block_exception" || r.header.Get("X-Elastic-Product") == "" {
		t.Errorf("503: %d %s", r.status, r.body)
	}
	s.RejectRequests(1, http.StatusBadGateway)
	r = raw(t, s, "POST", "/_bulk", body)
	if r.status != 502 || r.header.Get("X-Elastic-Product") != "" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("502: %d %v %s", r.status, r.header, r.body)
	}
	if len(s.Indices()) != 0 {
		t.Error("a rejected request was applied")
	}
}

// The BulkIndexer with several workers against the fake: every document
// arrives, and the sequence numbers of an index are 0..n-1.
func TestConcurrentBulkIndexer(t *testing.T) {
	s := newServer(t)
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: newClient(t, s), NumWorkers: 4, FlushBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	var failures sync.Map
	for i := range n {
		idx := []string{"c1", "c2"}[i%2]
		err := bi.Add(t.Context(), esutil.BulkIndexerItem{Index: idx, Action: "index", Body: strings.NewReader(`{"i":` + itoa(i) + `}`),
			OnFailure: func(_ context.Context, item esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
				failures.Store(res.DocumentID, errors.Join(err, errors.New(res.Error.Reason)))
			}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := bi.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	failures.Range(func(k, v any) bool { t.Errorf("%v: %v", k, v); return true })
	for _, idx := range []string{"c1", "c2"} {
		docs := s.Docs(idx)
		seen := make([]bool, len(docs))
		for _, d := range docs {
			if d.SeqNo < 0 || d.SeqNo >= int64(len(docs)) || seen[d.SeqNo] {
				t.Fatalf("%s: bad or repeated seq_no %d", idx, d.SeqNo)
			}
			seen[d.SeqNo] = true
		}
		if len(docs) != n/2 {
			t.Errorf("%s: %d docs", idx, len(docs))
		}
	}
	if st := bi.Stats(); st.NumFailed != 0 || st.NumIndexed != n {
		t.Errorf("indexer stats %+v", st)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// Ingest pipelines must exist; WithPipelines declares pass-through ones.
func TestPipelinesAndAliases(t *testing.T) {
	s := newServer(t, WithPipelines("enrich"))
	c := newClient(t, s)
	body := lines(`{"index":{"_index":"i","_id":"1","pipeline":"enrich"}}`, `{}`,
		`{"index":{"_index":"i","_id":"2","pipeline":"missing"}}`, `{}`,
		`{"index":{"_index":"i","_id":"3","pipeline":"_none"}}`, `{}`,
		`{"index":{"_index":"i","_id":"4","require_alias":true}}`, `{}`)
	br := mustBulk(t, c, body)
	want := []string{"", "pipeline with id [missing] does not exist", "", "no such index [i] and [require_alias] request flag is [true] and [i] is not an alias"}
	for i, w := range want {
		_, it := only(t, br.Items[i])
		got := ""
		if it.Error != nil {
			got = it.Error.Reason
		}
		if got != w {
			t.Errorf("item %d: %q, want %q", i, got, w)
		}
	}
}
