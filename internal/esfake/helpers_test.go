package esfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// newClient returns a go-elasticsearch client of s, as configured by mods.
func newClient(t *testing.T, s *Server, mods ...func(*elasticsearch.Config)) *elasticsearch.Client {
	t.Helper()
	cfg := elasticsearch.Config{Addresses: []string{s.URL()}, CACert: s.CACertPEM()}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := elasticsearch.NewClient(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

// newServer starts a Server closed when the test ends.
func newServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	s := New(opts...)
	t.Cleanup(s.Close)
	return s
}

// rawResponse is an HTTP response read whole.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// raw sends a request with net/http; hdr holds header name/value pairs
// (Content-Type defaults to application/json when there is a body).
func raw(t *testing.T, s *Server, method, path string, body []byte, hdr ...string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{status: res.StatusCode, header: res.Header, body: b}
}

// errorBody is Elasticsearch's error response.
type errorBody struct {
	Error struct {
		RootCause []struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"root_cause"`
		Type      string `json:"type"`
		Reason    string `json:"reason"`
		Index     string `json:"index"`
		IndexUUID string `json:"index_uuid"`
		CausedBy  *cause `json:"caused_by"`
	} `json:"error"`
	Status int `json:"status"`
}

type cause struct {
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	CausedBy *cause `json:"caused_by"`
}

// bulkItem is one item of a bulk response, whatever its action.
type bulkItem struct {
	Index   string  `json:"_index"`
	ID      *string `json:"_id"`
	Version int64   `json:"_version"`
	Result  string  `json:"result"`
	SeqNo   int64   `json:"_seq_no"`
	Term    int64   `json:"_primary_term"`
	Status  int     `json:"status"`
	Shards  *struct {
		Total      int `json:"total"`
		Successful int `json:"successful"`
	} `json:"_shards"`
	Error *struct {
		Type      string `json:"type"`
		Reason    string `json:"reason"`
		Index     string `json:"index"`
		IndexUUID string `json:"index_uuid"`
		Shard     string `json:"shard"`
		CausedBy  *cause `json:"caused_by"`
	} `json:"error"`
}

type bulkResult struct {
	Took   *int64                `json:"took"`
	Errors bool                  `json:"errors"`
	Items  []map[string]bulkItem `json:"items"`
}

// only returns the single action and item of a bulk response item.
func only(t *testing.T, m map[string]bulkItem) (string, bulkItem) {
	t.Helper()
	if len(m) != 1 {
		t.Fatalf("bulk item has %d keys, want 1: %v", len(m), m)
	}
	for k, v := range m {
		return k, v
	}
	panic("unreachable")
}

// doBulk sends body to _bulk with the client and decodes the answer; a
// whole-request error is returned as its status and error body.
func doBulk(t *testing.T, c *elasticsearch.Client, body string, mods ...func(*esapi.BulkRequest)) (int, bulkResult, errorBody) {
	t.Helper()
	req := esapi.BulkRequest{Body: strings.NewReader(body)}
	for _, m := range mods {
		m(&req)
	}
	res, err := req.Do(t.Context(), c)
	if err != nil {
		t.Fatalf("bulk: %v", err)
	}
	defer res.Body.Close()
	var br bulkResult
	var eb errorBody
	b, _ := io.ReadAll(res.Body)
	if res.IsError() {
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("decode error body %s: %v", b, err)
		}
		return res.StatusCode, br, eb
	}
	if err := json.Unmarshal(b, &br); err != nil {
		t.Fatalf("decode bulk response %s: %v", b, err)
	}
	return res.StatusCode, br, eb
}

// mustBulk sends body and fails the test unless the request succeeds as a
// whole.
func mustBulk(t *testing.T, c *elasticsearch.Client, body string) bulkResult {
	t.Helper()
	status, br, eb := doBulk(t, c, body)
	if status != http.StatusOK {
		t.Fatalf("bulk: status %d: %s: %s", status, eb.Error.Type, eb.Error.Reason)
	}
	return br
}

// lines joins NDJSON lines, each terminated by a newline.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
