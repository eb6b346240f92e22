package esfake

import (
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

func TestInvalidIndexNames(t *testing.T) {
	tests := []struct{ name, reason string }{
		{"Orders", "must be lowercase"},
		{"_orders", "must not start with '_', '-', or '+'"},
		{"-orders", "must not start with '_', '-', or '+'"},
		{"+orders", "must not start with '_', '-', or '+'"},
		{"a b", `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`},
		{"a*b", `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`},
		{"a?b", `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`},
		{"a/b", `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`},
		{"a#b", "must not contain '#'"},
		{"a:b", "must not contain ':'"},
		{".", "must not be '.' or '..'"},
		{"..", "must not be '.' or '..'"},
		{strings.Repeat("x", 256), "index name is too long, (256 > 255)"},
		{strings.Repeat("é", 128), "index name is too long, (256 > 255)"},
	}
	s := newServer(t)
	c := newClient(t, s)
	for _, tt := range tests {
		t.Run(tt.name[:min(len(tt.name), 10)], func(t *testing.T) {
			want := "Invalid index name [" + tt.name + "], " + tt.reason
			// esapi does not escape path parts (a/b, a?b and a#b would
			// reach another URL), so the PUT is sent escaped by hand.
			r := raw(t, s, "PUT", "/"+url.PathEscape(tt.name), nil)
			var eb errorBody
			decode(t, r.body, &eb)
			if r.status != 400 || eb.Error.Type != "invalid_index_name_exception" || eb.Error.Reason != want ||
				eb.Error.Index != tt.name || eb.Error.IndexUUID != "_na_" {
				t.Errorf("PUT: %d %s", r.status, r.body)
			}
			action, _ := json.Marshal(map[string]any{"index": map[string]any{"_index": tt.name, "_id": "1"}})
			br := mustBulk(t, c, lines(string(action), `{}`))
			if _, it := only(t, br.Items[0]); it.Status != 400 || it.Error.Type != "invalid_index_name_exception" || it.Error.Reason != want {
				t.Errorf("bulk item: %+v", it)
			}
		})
	}
	if got := s.Indices(); len(got) != 0 {
		t.Errorf("indices %v", got)
	}
	// Names Elasticsearch accepts.
	for _, name := range []string{"orders-2024.05", ".hidden", "a_b", "日本"} {
		if r := raw(t, s, "PUT", "/"+name, nil); r.status != 200 {
			t.Errorf("PUT %s: %d %s", name, r.status, r.body)
		}
	}
}

func TestCreateIndex(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	body := `{"settings":{"number_of_shards":1,"number_of_replicas":0,"refresh_interval":"1s"},` +
		`"mappings":{"properties":{"seq":{"type":"long"},"data":{"type":"object","enabled":false}}}}`
	res, err := esapi.IndicesCreateRequest{Index: "orders", Body: strings.NewReader(body)}.Do(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != `{"acknowledged":true,"shards_acknowledged":true,"index":"orders"}` {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	if got := string(s.IndexBody("orders")); got != body {
		t.Errorf("IndexBody = %s", got)
	}

	res, err = esapi.IndicesCreateRequest{Index: "orders"}.Do(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	var eb errorBody
	decode(t, b, &eb)
	if res.StatusCode != 400 || eb.Error.Type != "resource_already_exists_exception" ||
		eb.Error.Reason != "index [orders/"+eb.Error.IndexUUID+"] already exists" || eb.Error.Index != "orders" {
		t.Errorf("second create: %d %s", res.StatusCode, b)
	}

	for _, tt := range []struct {
		index  string
		status int
	}{{"orders", 200}, {"missing", 404}} {
		res, err := esapi.IndicesExistsRequest{Index: []string{tt.index}}.Do(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.status {
			t.Errorf("HEAD /%s: %d", tt.index, res.StatusCode)
		}
	}

	r := raw(t, s, "GET", "/orders", nil)
	var got map[string]struct {
		Mappings json.RawMessage `json:"mappings"`
		Settings struct {
			Index struct {
				Shards   string `json:"number_of_shards"`
				Replicas string `json:"number_of_replicas"`
				Refresh  string `json:"refresh_interval"`
				UUID     string `json:"uuid"`
			} `json:"index"`
		} `json:"settings"`
	}
	decode(t, r.body, &got)
	o := got["orders"]
	if string(o.Mappings) != `{"properties":{"data":{"type":"object","enabled":false},"seq":{"type":"long"}}}` ||
		o.Settings.Index.Replicas != "0" || o.Settings.Index.Refresh != "1s" || o.Settings.Index.UUID != eb.Error.IndexUUID {
		t.Errorf("GET /orders: %s", r.body)
	}

	// With no replica, a write's _shards has one copy.
	br := mustBulk(t, c, lines(`{"index":{"_index":"orders","_id":"1"}}`, `{"seq":1,"data":{"any":"thing"}}`))
	if _, it := only(t, br.Items[0]); it.Shards == nil || it.Shards.Total != 1 || it.Shards.Successful != 1 {
		t.Errorf("_shards %+v", it.Shards)
	}

	// An index auto-created by a write has no creation body.
	mustBulk(t, c, lines(`{"index":{"_index":"auto","_id":"1"}}`, `{}`))
	if s.IndexBody("auto") != nil || s.Stats().IndexCreates != 2 {
		t.Errorf("auto-created index: body %s, stats %+v", s.IndexBody("auto"), s.Stats())
	}
	if got := s.Indices(); strings.Join(got, ",") != "auto,orders" {
		t.Errorf("Indices = %v", got)
	}

	res, err = esapi.IndicesDeleteRequest{Index: []string{"auto"}}.Do(t.Context(), c)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("delete index: %v %v", err, res)
	}
	res.Body.Close()
	if r := raw(t, s, "GET", "/auto", nil); r.status != 404 || !strings.Contains(string(r.body), `"type":"index_not_found_exception","reason":"no such index [auto]"`) {
		t.Errorf("GET deleted index: %d %s", r.status, r.body)
	}
}

func TestUnknownSettings(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		body   string
		status int
		reason string
	}{
		{`{"settings":{"number_of_shard":1}}`, 400, "unknown setting [index.number_of_shard] please check that any required plugins are installed, or check the breaking changes documentation for removed settings"},
		{`{"settings":{"index":{"number_of_shards":0}}}`, 400, "Failed to parse value [0] for setting [index.number_of_shards] must be >= 1"},
		{`{"setings":{}}`, 400, "unknown key [setings] for create index"},
		{`{"settings":{"analysis":{"analyzer":{"a":{"type":"standard"}}},"index.mapping.total_fields.limit":2000}}`, 200, ""},
	}
	for i, tt := range tests {
		r := raw(t, s, "PUT", "/s"+itoa(i), []byte(tt.body))
		var eb errorBody
		decode(t, r.body, &eb)
		if r.status != tt.status || eb.Error.Reason != tt.reason {
			t.Errorf("%s: %d %s", tt.body, r.status, r.body)
		}
	}
}
