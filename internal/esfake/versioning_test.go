package esfake

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// step is one bulk action in a versioning scenario and its expected item.
type step struct {
	action  string // an action line
	source  string // "" for delete
	status  int
	result  string
	version int64
	reason  string // the error reason, for failures
}

func runSteps(t *testing.T, steps []step) *Server {
	t.Helper()
	s := newServer(t)
	c := newClient(t, s)
	for i, st := range steps {
		body := lines(st.action)
		if st.source != "" {
			body = lines(st.action, st.source)
		}
		br := mustBulk(t, c, body)
		_, it := only(t, br.Items[0])
		reason := ""
		if it.Error != nil {
			reason = it.Error.Reason
		}
		if it.Status != st.status || it.Result != st.result || it.Version != st.version || reason != st.reason {
			t.Errorf("step %d %s: status %d result %q version %d reason %q; want %d %q %d %q",
				i, st.action, it.Status, it.Result, it.Version, reason, st.status, st.result, st.version, st.reason)
		}
	}
	return s
}

func ext(id string, v int64) string {
	return fmt.Sprintf(`{"index":{"_index":"v","_id":%q,"version":%d,"version_type":"external"}}`, id, v)
}

func TestExternalVersioning(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"create then newer replaces", []step{
			{ext("1", 5), `{"v":5}`, 201, "created", 5, ""},
			{ext("1", 7), `{"v":7}`, 200, "updated", 7, ""},
		}},
		{"equal is a conflict", []step{
			{ext("1", 5), `{"v":5}`, 201, "created", 5, ""},
			{ext("1", 5), `{"v":5}`, 409, "", 0, "[1]: version conflict, current version [5] is higher or equal to the one provided [5]"},
		}},
		{"older is a conflict", []step{
			{ext("1", 5), `{"v":5}`, 201, "created", 5, ""},
			{ext("1", 3), `{"v":3}`, 409, "", 0, "[1]: version conflict, current version [5] is higher or equal to the one provided [3]"},
		}},
		{"external_gte accepts equal", []step{
			{ext("1", 5), `{"v":5}`, 201, "created", 5, ""},
			{`{"index":{"_index":"v","_id":"1","version":5,"version_type":"external_gte"}}`, `{"v":5}`, 200, "updated", 5, ""},
			{`{"index":{"_index":"v","_id":"1","version":4,"version_type":"external_gte"}}`, `{"v":4}`, 409, "", 0,
				"[1]: version conflict, current version [5] is higher than the one provided [4]"},
		}},
		{"version 0 creates", []step{
			{ext("1", 0), `{}`, 201, "created", 0, ""},
		}},
		{"delete leaves a tombstone that keeps its version", []step{
			{ext("1", 5), `{"v":5}`, 201, "created", 5, ""},
			{`{"delete":{"_index":"v","_id":"1","version":6,"version_type":"external"}}`, "", 200, "deleted", 6, ""},
			{ext("1", 6), `{"v":6}`, 409, "", 0, "[1]: version conflict, current version [6] is higher or equal to the one provided [6]"},
			{ext("1", 8), `{"v":8}`, 201, "created", 8, ""},
		}},
		{"external delete of a missing document", []step{
			{`{"delete":{"_index":"v","_id":"1","version":3,"version_type":"external"}}`, "", 404, "not_found", 3, ""},
			{ext("1", 2), `{"v":2}`, 409, "", 0, "[1]: version conflict, current version [3] is higher or equal to the one provided [2]"},
		}},
		{"internal after external", []step{
			{ext("1", 5), `{"v":5}`, 201, "created", 5, ""},
			{`{"index":{"_index":"v","_id":"1"}}`, `{"v":6}`, 200, "updated", 6, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, tt.steps) })
	}
}

func TestCreateConflict(t *testing.T) {
	s := runSteps(t, []step{
		{`{"create":{"_index":"v","_id":"1"}}`, `{"a":1}`, 201, "created", 1, ""},
		{`{"create":{"_index":"v","_id":"1"}}`, `{"a":2}`, 409, "", 0, "[1]: version conflict, document already exists (current version [1])"},
		{`{"index":{"_index":"v","_id":"1","op_type":"create"}}`, `{"a":3}`, 409, "", 0, "[1]: version conflict, document already exists (current version [1])"},
		{`{"delete":{"_index":"v","_id":"1"}}`, "", 200, "deleted", 2, ""},
		{`{"create":{"_index":"v","_id":"1"}}`, `{"a":4}`, 201, "created", 3, ""},
	})
	if d, _ := s.Doc("v", "1"); string(d.Source) != `{"a":4}` {
		t.Errorf("source %s", d.Source)
	}
}

func TestIfSeqNo(t *testing.T) {
	runSteps(t, []step{
		{`{"index":{"_index":"v","_id":"1"}}`, `{"a":1}`, 201, "created", 1, ""},
		{`{"index":{"_index":"v","_id":"1","if_seq_no":0,"if_primary_term":1}}`, `{"a":2}`, 200, "updated", 2, ""},
		{`{"index":{"_index":"v","_id":"1","if_seq_no":0,"if_primary_term":1}}`, `{"a":3}`, 409, "", 0,
			"[1]: version conflict, required seqNo [0], primary term [1]. current document has seqNo [1] and primary term [1]"},
		{`{"delete":{"_index":"v","_id":"2","if_seq_no":4,"if_primary_term":1}}`, "", 409, "", 0,
			"[2]: version conflict, required seqNo [4], primary term [1]. but no document was found"},
		{`{"update":{"_index":"v","_id":"1","if_seq_no":1,"if_primary_term":1}}`, `{"doc":{"b":1}}`, 200, "updated", 3, ""},
	})
}

func TestUpdate(t *testing.T) {
	s := runSteps(t, []step{
		{`{"index":{"_index":"v","_id":"1"}}`, `{"a":{"x":1,"y":[1,2]},"b":1.50}`, 201, "created", 1, ""},
		{`{"update":{"_index":"v","_id":"1"}}`, `{"doc":{"a":{"y":[3],"z":true},"c":"new"}}`, 200, "updated", 2, ""},
		{`{"update":{"_index":"v","_id":"1"}}`, `{"doc":{"c":"new"}}`, 200, "noop", 2, ""},
		{`{"update":{"_index":"v","_id":"1"}}`, `{"doc":{"c":"new"},"detect_noop":false}`, 200, "updated", 3, ""},
		{`{"update":{"_index":"v","_id":"2"}}`, `{"doc":{"d":1},"doc_as_upsert":true}`, 201, "created", 1, ""},
		{`{"update":{"_index":"v","_id":"3"}}`, `{"doc":{"d":1},"upsert":{"d":0}}`, 201, "created", 1, ""},
		{`{"update":{"_index":"v","_id":"3"}}`, `{"doc":{"d":"x"}}`, 400, "", 0,
			"[1:6] failed to parse field [d] of type [long] in document with id '3'. Preview of field's value: 'x'"},
	})
	if d, _ := s.Doc("v", "1"); string(d.Source) != `{"a":{"x":1,"y":[3],"z":true},"b":1.5,"c":"new"}` {
		t.Errorf("merged source %s", d.Source)
	}
	if d, _ := s.Doc("v", "3"); string(d.Source) != `{"d":0}` {
		t.Errorf("upserted source %s", d.Source)
	}
}

// The single-document APIs take the versioning parameters from the URL.
func TestSingleDocumentWrites(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	v := func(n int) *int { return &n }
	do := func(req esapi.Request) (int, string) {
		t.Helper()
		res, err := req.Do(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	status, body := do(esapi.IndexRequest{Index: "d", DocumentID: "1", Body: strings.NewReader(`{"a":1}`), Version: v(4), VersionType: "external", Refresh: "true"})
	if status != 201 || !strings.Contains(body, `"_version":4,"result":"created","forced_refresh":true,"_shards"`) || strings.Contains(body, `"status"`) {
		t.Errorf("index: %d %s", status, body)
	}
	status, body = do(esapi.IndexRequest{Index: "d", DocumentID: "1", Body: strings.NewReader(`{"a":2}`), Version: v(4), VersionType: "external"})
	if status != 409 || !strings.Contains(body, "current version [4] is higher or equal to the one provided [4]") {
		t.Errorf("conflict: %d %s", status, body)
	}
	status, body = do(esapi.CreateRequest{Index: "d", DocumentID: "1", Body: strings.NewReader(`{}`)})
	if status != 409 || !strings.Contains(body, "document already exists (current version [4])") {
		t.Errorf("create: %d %s", status, body)
	}
	status, body = do(esapi.UpdateRequest{Index: "d", DocumentID: "1", Body: strings.NewReader(`{"doc":{"b":2}}`)})
	if status != 200 || !strings.Contains(body, `"result":"updated"`) {
		t.Errorf("update: %d %s", status, body)
	}
	status, body = do(esapi.UpdateRequest{Index: "d", DocumentID: "1", Body: strings.NewReader(`{"doc":{"b":3}}`)})
	if status != 200 {
		t.Errorf("update: %d %s", status, body)
	}
	res := raw(t, s, "POST", "/d/_update/1?version=9&version_type=external", []byte(`{"doc":{"b":4}}`))
	if res.status != 400 || !strings.Contains(string(res.body), `"type":"action_request_validation_exception","reason":"Validation Failed: 1: internal versioning can not be used for optimistic concurrency control. Please use `+"`if_seq_no` and `if_primary_term`"+` instead;"`) {
		t.Errorf("update with an external version: %d %s", res.status, res.body)
	}
	status, body = do(esapi.DeleteRequest{Index: "d", DocumentID: "1"})
	if status != 200 || !strings.Contains(body, `"result":"deleted"`) {
		t.Errorf("delete: %d %s", status, body)
	}
	status, body = do(esapi.DeleteRequest{Index: "d", DocumentID: "1"})
	if status != 404 || !strings.Contains(body, `"result":"not_found"`) {
		t.Errorf("second delete: %d %s", status, body)
	}
	status, body = do(esapi.DeleteRequest{Index: "nope", DocumentID: "1"})
	if status != 404 || !strings.Contains(body, `"type":"index_not_found_exception"`) {
		t.Errorf("delete in a missing index: %d %s", status, body)
	}
	if ix := s.Indices(); len(ix) != 1 {
		t.Errorf("indices %v: a delete created an index", ix)
	}
}
