package esfake

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

func TestMget(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	mustBulk(t, c, lines(`{"index":{"_index":"g","_id":"1","version":9,"version_type":"external"}}`, `{"a": 1}`,
		`{"index":{"_index":"g","_id":"2"}}`, `{"b":2}`))
	type doc struct {
		Index   string          `json:"_index"`
		ID      string          `json:"_id"`
		Version int64           `json:"_version"`
		SeqNo   *int64          `json:"_seq_no"`
		Found   *bool           `json:"found"`
		Source  json.RawMessage `json:"_source"`
		Error   *struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	tests := []struct {
		name  string
		index string
		body  string
		want  []string // per doc: "found:<source>", "missing", or an error type
	}{
		{"docs", "", `{"docs":[{"_index":"g","_id":"1"},{"_index":"g","_id":"3"},{"_index":"nope","_id":"1"}]}`,
			[]string{`found:{"a": 1}`, "missing", "index_not_found_exception"}},
		{"ids", "g", `{"ids":["2","1"]}`, []string{`found:{"b":2}`, `found:{"a": 1}`}},
		{"docs with default index", "g", `{"docs":[{"_id":"2"}]}`, []string{`found:{"b":2}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := esapi.MgetRequest{Index: tt.index, Body: strings.NewReader(tt.body)}
			res, err := req.Do(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var out struct {
				Docs []doc `json:"docs"`
			}
			b, _ := io.ReadAll(res.Body)
			decode(t, b, &out)
			if res.StatusCode != 200 || len(out.Docs) != len(tt.want) {
				t.Fatalf("%d %s", res.StatusCode, b)
			}
			for i, w := range tt.want {
				d := out.Docs[i]
				got := "missing"
				switch {
				case d.Error != nil:
					got = d.Error.Type
				case d.Found != nil && *d.Found:
					got = "found:" + string(d.Source)
				}
				if got != w {
					t.Errorf("doc %d: %s, want %s", i, got, w)
				}
			}
		})
	}
	if r := raw(t, s, "POST", "/_mget", []byte(`{"ids":["1"]}`)); r.status != 400 || !strings.Contains(string(r.body), "Validation Failed: 1: index is missing for doc 0;") {
		t.Errorf("ids without index: %d %s", r.status, r.body)
	}
	if r := raw(t, s, "POST", "/_mget", []byte(`{"doc":[]}`)); r.status != 400 || !strings.Contains(string(r.body), "unknown key [doc] for a START_ARRAY, expected [docs] or [ids]") {
		t.Errorf("unknown key: %d %s", r.status, r.body)
	}
}

func TestGetDocCountRefresh(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	mustBulk(t, c, lines(`{"index":{"_index":"g","_id":"a/b"}}`, `{"x":1}`, `{"index":{"_index":"g","_id":"2"}}`, `{}`))
	// esapi writes the id into the path unescaped: "a/b" reaches
	// /g/_doc/a/b, which has no handler (on Elasticsearch too).
	res, err := esapi.GetRequest{Index: "g", DocumentID: "a/b"}.Do(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(string(b), "no handler found for uri [/g/_doc/a/b] and method [GET]") {
		t.Errorf("get a/b unescaped: %d %s", res.StatusCode, b)
	}
	r := raw(t, s, "GET", "/g/_doc/a%2Fb", nil)
	if r.status != 200 || string(r.body) != `{"_index":"g","_id":"a/b","_version":1,"_seq_no":0,"_primary_term":1,"found":true,"_source":{"x":1}}` {
		t.Errorf("get a%%2Fb: %d %s", r.status, r.body)
	}
	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/g/_doc/nope", 404, `{"_index":"g","_id":"nope","found":false}`},
		{"GET", "/h/_doc/1", 404, `"type":"index_not_found_exception"`},
		{"GET", "/g/_count", 200, `{"count":2,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0}}`},
		{"POST", "/g/_refresh", 200, `{"_shards":{"total":2,"successful":1,"failed":0}}`},
		{"POST", "/_refresh", 200, `{"_shards":{"total":2,"successful":1,"failed":0}}`},
		{"POST", "/h/_refresh", 404, `"type":"index_not_found_exception"`},
	}
	for _, tt := range tests {
		r := raw(t, s, tt.method, tt.path, nil)
		if r.status != tt.status || !strings.Contains(string(r.body), tt.body) {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, r.status, r.body)
		}
	}
	if r := raw(t, s, "POST", "/g/_count", []byte(`{"query":{"term":{"x":1}}}`)); r.status != 400 || !strings.Contains(string(r.body), "esfake: _count supports only match_all") {
		t.Errorf("count with a query: %d %s", r.status, r.body)
	}
	if d, ok := s.Doc("g", "a/b"); !ok || d.SeqNo != 0 || d.Version != 1 {
		t.Errorf("Doc = %+v, %v", d, ok)
	}
}
