package esfake

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// The client checks X-Elastic-Product on its first 2xx answer: the fake
// passes, a server without the header is refused.
func TestProductCheck(t *testing.T) {
	s := newServer(t)
	res, err := newClient(t, s).Info()
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	defer res.Body.Close()
	var info struct {
		Version struct {
			Number      string `json:"number"`
			BuildFlavor string `json:"build_flavor"`
			Lucene      string `json:"lucene_version"`
			MinWire     string `json:"minimum_wire_compatibility_version"`
			MinIndex    string `json:"minimum_index_compatibility_version"`
		} `json:"version"`
		Tagline string `json:"tagline"`
	}
	b, _ := io.ReadAll(res.Body)
	decode(t, b, &info)
	if info.Version.Number != "8.19.0" || info.Version.BuildFlavor != "default" || info.Tagline != "You Know, for Search" ||
		info.Version.Lucene == "" || info.Version.MinWire == "" || info.Version.MinIndex == "" {
		t.Errorf("info = %s", b)
	}
	if got := res.Header.Get("X-Elastic-Product"); got != "Elasticsearch" {
		t.Errorf("X-Elastic-Product = %q", got)
	}
	if r := raw(t, s, "GET", "/", nil, "X-Opaque-Id", "trace-1"); r.header.Get("X-Opaque-Id") != "trace-1" {
		t.Errorf("X-Opaque-Id not echoed: %v", r.header)
	}

	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"tagline":"You Know, for Search"}`))
	}))
	defer bare.Close()
	c, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{bare.URL}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(); err == nil || !strings.Contains(err.Error(), "not Elasticsearch") {
		t.Errorf("info against a server without X-Elastic-Product: err = %v, want the unknown product error", err)
	}
}

func TestAuth(t *testing.T) {
	apiKey := base64.StdEncoding.EncodeToString([]byte("kid:secret"))
	tests := []struct {
		name       string
		cfg        func(*elasticsearch.Config)
		status     int
		reason     string // substring of the security_exception reason
		additional string
	}{
		{"basic", func(c *elasticsearch.Config) { c.Username, c.Password = "elastic", "changeme" }, 200, "", ""},
		{"api key", func(c *elasticsearch.Config) { c.APIKey = apiKey }, 200, "", ""},
		{"none", func(*elasticsearch.Config) {}, 401, "missing authentication credentials for REST request [/]", ""},
		{"wrong password", func(c *elasticsearch.Config) { c.Username, c.Password = "elastic", "nope" }, 401, "unable to authenticate user [elastic] for REST request [/]", ""},
		{"unknown user", func(c *elasticsearch.Config) { c.Username, c.Password = "bob", "changeme" }, 401, "unable to authenticate user [bob]", ""},
		{"unknown key id", func(c *elasticsearch.Config) { c.APIKey = base64.StdEncoding.EncodeToString([]byte("other:secret")) }, 401,
			"unable to authenticate with provided credentials", "API key: unable to find apikey with id other"},
		{"wrong key", func(c *elasticsearch.Config) { c.APIKey = base64.StdEncoding.EncodeToString([]byte("kid:wrong")) }, 401,
			"unable to authenticate with provided credentials", "API key: invalid credentials for API key [kid]"},
	}
	s := newServer(t, WithBasicAuth("elastic", "changeme"), WithAPIKey("kid", "secret"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newClient(t, s, tt.cfg).Info()
			if err != nil {
				t.Fatalf("info: %v", err)
			}
			defer res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.status)
			}
			if tt.status == 200 {
				return
			}
			if got := res.Header.Values("WWW-Authenticate"); len(got) == 0 || !strings.HasPrefix(got[0], "Basic realm=") {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			var body struct {
				Error struct {
					Type       string `json:"type"`
					Reason     string `json:"reason"`
					Additional string `json:"additional_unsuccessful_credentials"`
					Header     struct {
						WWWAuthenticate []string `json:"WWW-Authenticate"`
					} `json:"header"`
				} `json:"error"`
				Status int `json:"status"`
			}
			b, _ := io.ReadAll(res.Body)
			decode(t, b, &body)
			if body.Error.Type != "security_exception" || !strings.Contains(body.Error.Reason, tt.reason) ||
				body.Error.Additional != tt.additional || body.Status != 401 || len(body.Error.Header.WWWAuthenticate) == 0 {
				t.Errorf("body = %s", b)
			}
		})
	}
	// go-elasticsearch sends its API key as "APIKey <key>"; Elasticsearch
	// reads the scheme case-insensitively, and so does the fake.
	if r := raw(t, s, "GET", "/", nil, "Authorization", "ApiKey "+apiKey); r.status != 200 {
		t.Errorf("ApiKey scheme: status %d", r.status)
	}
}

func TestTLS(t *testing.T) {
	s := newServer(t, WithTLS())
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL = %s", s.URL())
	}
	tests := []struct {
		name string
		cfg  func(*elasticsearch.Config)
		ok   bool
	}{
		{"CACert", func(*elasticsearch.Config) {}, true},
		{"fingerprint", func(c *elasticsearch.Config) { c.CACert, c.CertificateFingerprint = nil, s.CertFingerprint() }, true},
		{"untrusted", func(c *elasticsearch.Config) { c.CACert = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newClient(t, s, tt.cfg, func(c *elasticsearch.Config) { c.MaxRetries = 0 }).Info()
			if tt.ok {
				if err != nil {
					t.Fatalf("info: %v", err)
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Fatalf("status %d", res.StatusCode)
				}
				return
			}
			if err == nil {
				res.Body.Close()
				t.Fatal("info succeeded without trusting the certificate")
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("err = %v, want a certificate error", err)
			}
		})
	}
	if plain := newServer(t); plain.CACertPEM() != nil || plain.CertFingerprint() != "" {
		t.Error("CACertPEM or CertFingerprint without TLS is not empty")
	}
}

func TestGzipBodies(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s, func(c *elasticsearch.Config) { c.CompressRequestBody = true })
	br := mustBulk(t, c, lines(`{"index":{"_index":"z","_id":"1"}}`, `{"n":1}`))
	if _, it := only(t, br.Items[0]); it.Status != 201 {
		t.Fatalf("compressed bulk: %+v", br)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(lines(`{"index":{"_index":"z","_id":"2"}}`, `{"n":2}`)))
	_ = zw.Close()
	if r := raw(t, s, "POST", "/_bulk", gz.Bytes(), "Content-Encoding", "gzip", "Content-Type", "application/x-ndjson"); r.status != 200 {
		t.Fatalf("raw gzip bulk: %d %s", r.status, r.body)
	}
	if len(s.Docs("z")) != 2 {
		t.Errorf("docs = %v", s.Docs("z"))
	}
	if r := raw(t, s, "POST", "/_bulk", []byte("not gzip"), "Content-Encoding", "gzip"); r.status != 400 {
		t.Errorf("corrupt gzip: status %d", r.status)
	}
}

// Requests that Elasticsearch turns away before any handler runs.
func TestRequestChecks(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name, method, path string
		body               string
		hdr                []string
		status             int
		want               string // substring of the body
	}{
		{"text/plain body", "POST", "/_bulk", "{}\n", []string{"Content-Type", "text/plain"}, 406, `{"error":"Content-Type header [text/plain] is not supported","status":406}`},
		{"compatible-with=8", "POST", "/_bulk", lines(`{"index":{"_index":"c"}}`, `{}`), []string{"Content-Type", "application/vnd.elasticsearch+x-ndjson; compatible-with=8"}, 200, `"errors":false`},
		{"unknown parameter", "POST", "/_bulk?refesh=true", lines(`{"index":{"_index":"c"}}`, `{}`), nil, 400, `request [/_bulk] contains unrecognized parameter: [refesh]`},
		{"bad refresh", "POST", "/_bulk?refresh=now", lines(`{"index":{"_index":"c"}}`, `{}`), nil, 400, `Unknown value for refresh: [now].`},
		{"no handler", "GET", "/_search_nothing", "", nil, 400, `no handler found for uri [/_search_nothing] and method [GET]`},
		{"wrong method", "GET", "/_bulk", "", nil, 405, `Incorrect HTTP method for uri [/_bulk] and method [GET], allowed: [POST, PUT]`},
		{"pretty", "GET", "/_cluster/health?pretty", "", nil, 200, "{\n  \"cluster_name\" : \"esfake\","},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := raw(t, s, tt.method, tt.path, []byte(tt.body), tt.hdr...)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Errorf("%d %s, want %d and %q", r.status, r.body, tt.status, tt.want)
			}
			if r.header.Get("X-Elastic-Product") != "Elasticsearch" {
				t.Error("no X-Elastic-Product header")
			}
		})
	}
}

func TestClusterHealth(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	health := func() string {
		res, err := c.Cluster.Health()
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var h struct {
			Status string `json:"status"`
		}
		b, _ := io.ReadAll(res.Body)
		decode(t, b, &h)
		return h.Status
	}
	if got := health(); got != "green" {
		t.Errorf("empty cluster: %s", got)
	}
	res, err := esapi.IndicesCreateRequest{Index: "r1"}.Do(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := health(); got != "yellow" {
		t.Errorf("with an index with a replica: %s", got)
	}
}

// A response filtered with filter_path=items.*.error lists only the failed
// items: they no longer line up with the request's actions.
func TestFilterPath(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	body := lines(`{"index":{"_index":"f","_id":"1"}}`, `{"n":1}`,
		`{"index":{"_index":"f","_id":"2"}}`, `{"n":"x"}`,
		`{"index":{"_index":"f","_id":"3"}}`, `{"n":3}`)
	_, br, _ := doBulk(t, c, body, func(r *esapi.BulkRequest) { r.FilterPath = []string{"errors", "items.*.error"} })
	if !br.Errors || len(br.Items) != 1 {
		t.Fatalf("filtered response: %+v", br)
	}
	if _, it := only(t, br.Items[0]); it.Error == nil || it.Error.Type != "document_parsing_exception" || it.ID != nil || br.Took != nil {
		t.Errorf("filtered item: %+v", it)
	}
	_, br, _ = doBulk(t, c, lines(`{"index":{"_index":"f","_id":"4"}}`, `{"n":4}`), func(r *esapi.BulkRequest) { r.FilterPath = []string{"errors", "items.*.error"} })
	if br.Errors || br.Items != nil {
		t.Errorf("filtered success: %+v", br)
	}
	r := raw(t, s, "GET", "/f/_doc/1?filter_path=_source.n,found", nil)
	if string(r.body) != `{"found":true,"_source":{"n":1}}` {
		t.Errorf("filtered get: %s", r.body)
	}
	r = raw(t, s, "GET", "/f/_doc/1?filter_path=-_source,-_seq_no,-_primary_term", nil)
	var got map[string]any
	decode(t, r.body, &got)
	if _, ok := got["_source"]; ok || got["_version"] == nil {
		t.Errorf("excluding filter: %s", r.body)
	}
}
