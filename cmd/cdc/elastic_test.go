package main

import (
	"encoding/json"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

// elasticSinks is the configuration of two elastic sinks on es: "search"
// (events mode, an index per type) and "streams" (latest mode, one index).
func elasticSinks(es *esfake.Server, extra string) string {
	return fmt.Sprintf(`      - name: search
        kind: elastic
        addresses: [%[1]s]
        index: "helpdesk-{{.Type}}"
        batch: {max_events: 200, max_wait: 5ms}
%[2]s      - name: streams
        kind: elastic
        addresses: [%[1]s]
        index: incidents
        mode: latest
        batch: {max_events: 200, max_wait: 5ms}
%[2]s`, es.URL(), extra)
}

// mergePatch applies patch to doc as RFC 7386 says: objects merge
// recursively, null removes a key, anything else replaces.
func mergePatch(doc, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	d, ok := doc.(map[string]any)
	if !ok {
		d = map[string]any{}
	}
	out := maps.Clone(d)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergePatch(out[k], v)
	}
	return out
}

// latestDocs recomputes from mt_events what the latest-mode index must
// hold: per stream, the merge of its events' data in version order, with
// the metadata of the last one.
func latestDocs(t *testing.T, events []*cdc.Event) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, e := range events {
		var data any
		mustDo(t, "data", json.Unmarshal(e.Data, &data))
		doc, _ := mergePatch(out[e.StreamID], data).(map[string]any)
		doc["@stream_id"], doc["@type"], doc["@version"], doc["@tenant_id"] = e.StreamID, e.Type, float64(e.Version), e.TenantID
		doc["@timestamp"] = e.Timestamp.UTC().Format(time.RFC3339Nano)
		out[e.StreamID] = doc
	}
	return out
}

// checkElastic fails unless the fake holds exactly what mt_events says:
// one document per event in helpdesk-<type> (the envelope the stdout sink
// printed, external version = seq_id), and one per stream in incidents.
func checkElastic(t *testing.T, es *esfake.Server, pool *pgxpool.Pool, lines map[string]string) {
	t.Helper()
	rows, err := marten.Events(t.Context(), pool, "helpdesk")
	mustDo(t, "read mt_events", err)
	events := 0
	for _, r := range rows {
		events++
		doc, ok := es.Doc("helpdesk-"+r.Type, r.ID)
		if !ok {
			t.Fatalf("event %s (%s) has no document", r.ID, r.Type)
		}
		if doc.Version != r.SeqID {
			t.Fatalf("event %s: document version %d, want its seq_id %d", r.ID, doc.Version, r.SeqID)
		}
		if line, ok := lines[r.ID]; ok && compactJSON(doc.Source) != compactJSON(json.RawMessage(line)) {
			t.Fatalf("event %s: document\n%s\nwant the envelope\n%s", r.ID, doc.Source, line)
		}
	}
	n := 0
	for _, idx := range es.Indices() {
		if strings.HasPrefix(idx, "helpdesk-") {
			n += len(es.Docs(idx))
		}
	}
	if n != events {
		t.Fatalf("%d event documents, want %d", n, events)
	}
	want := latestDocs(t, rows)
	got := es.Docs("incidents")
	if len(got) != len(want) {
		t.Fatalf("%d stream documents, want %d", len(got), len(want))
	}
	for stream, w := range want {
		d, ok := got[stream]
		if !ok {
			t.Fatalf("stream %s has no document", stream)
		}
		var g map[string]any
		mustDo(t, "source", json.Unmarshal(d.Source, &g))
		if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(g["@timestamp"])); err == nil {
			g["@timestamp"] = ts.UTC().Format(time.RFC3339Nano)
		}
		if d.Version != int64(w["@version"].(float64)) || !reflect.DeepEqual(g, w) {
			t.Fatalf("stream %s: document v%d\n%v\nwant v%v\n%v", stream, d.Version, g, w["@version"], w)
		}
	}
}

// TestElasticModes: a concurrent workload with gaps into an events-mode
// and a latest-mode sink, through storms of per-item and whole-request
// 429s: every event has its document (the envelope, version = seq_id), and
// every stream's document is the merge of its events' data, exactly as a
// recomputation from mt_events gives it.
func TestElasticModes(t *testing.T) {
	es := esfake.New()
	t.Cleanup(es.Close)
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, elasticSinks(es, ""))
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)
	w := startWriters(t, pool, 2, 2*time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return es.Stats().Items >= 200 }, "elasticsearch receives documents")
	// A storm: a quarter of all items refused with 429 until 300 were,
	// and three whole requests too.
	es.RejectItemsWhere(func(string, string) bool { return mrand.IntN(4) == 0 })
	es.RejectRequests(3, 429)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return es.Stats().Items429 >= 300 }, "the 429 storm happens")
	es.RejectItemsWhere(nil)
	committed, _ := w.finish(t)
	pgtest.Eventually(t, 60*time.Second, func() bool { return allDelivered(t, committed, run.out) && elasticCaughtUp(t, es, pool, committed) }, "every committed event indexed")
	run.stopOK()
	checkElastic(t, es, pool, stdoutLines(t, run.out))
	st := es.Stats()
	t.Logf("%d events committed; %d bulk requests, %d items, %d per-item 429s, %d whole-request 429s, %d conflicts",
		len(committed), st.BulkRequests, st.Items, st.Items429, st.Requests429, st.ItemConflicts)
}

// elasticCaughtUp reports whether every committed event has its document
// in the events-mode sink and every stream its latest version in the
// latest-mode one (the two sinks progress on their own).
func elasticCaughtUp(t *testing.T, es *esfake.Server, pool *pgxpool.Pool, committed map[string]bool) bool {
	t.Helper()
	rows, err := marten.Events(t.Context(), pool, "helpdesk")
	mustDo(t, "read mt_events", err)
	latest := make(map[string]int64)
	for _, r := range rows {
		latest[r.StreamID] = max(latest[r.StreamID], r.Version)
	}
	docs := es.Docs("incidents")
	for stream, v := range latest {
		if d, ok := docs[stream]; !ok || d.Version != v {
			return false
		}
	}
	seen := 0
	for _, idx := range es.Indices() {
		if strings.HasPrefix(idx, "helpdesk-") {
			for id := range es.Docs(idx) {
				if committed[id] {
					seen++
				}
			}
		}
	}
	return seen == len(committed)
}

// TestElasticCrash: SIGKILL `cdc run` while it indexes and start it again:
// no document is lost and none regresses (the re-delivered tail is a no-op
// under external versioning), in both modes.
func TestElasticCrash(t *testing.T) {
	es := esfake.New()
	t.Cleanup(es.Close)
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, elasticSinks(es, ""))
	env := []string{"CDC_TEST_DSN=" + dsn}
	first := startStreaming(t, dir, "first", env, cfg, pool)
	w := startWriters(t, pool, 4, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return es.Stats().Items >= 400 }, "first run indexes")
	first.kill()
	second := startCDC(t, dir, "second", env, "run", "--config", cfg)
	before := es.Stats().Items
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return es.Stats().Items >= before+300 }, "second run indexes")
	committed, _ := w.finish(t)
	pgtest.Eventually(t, 60*time.Second, func() bool { return elasticCaughtUp(t, es, pool, committed) }, "every committed event indexed")
	pgtest.Eventually(t, 30*time.Second, func() bool { return allDelivered(t, committed, first.out, second.out) }, "stdout caught up")
	second.stopOK()
	checkElastic(t, es, pool, stdoutLines(t, first.out, second.out))
	t.Logf("%d events committed; %d version conflicts (re-delivered after the kill, no-ops)", len(committed), es.Stats().ItemConflicts)
}

// TestElasticDeadLetter: a document Elasticsearch refuses for good (a
// mapping conflict with the mapping of index_settings: 400) goes to
// cdc_dead_letters with the reason, and the sink goes on with the events
// after it.
func TestElasticDeadLetter(t *testing.T) {
	es := esfake.New()
	t.Cleanup(es.Close)
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	// An explicit mapping, applied when cdc creates the index: Amount is a
	// long, so a text Amount is refused.
	settings := filepath.Join(dir, "es-index.json")
	mustDo(t, "settings", os.WriteFile(settings, []byte(`{"mappings":{"properties":{"data":{"properties":{"Amount":{"type":"long"}}}}}}`), 0o600))
	cfg := writeConfig(t, dir, elasticSinks(es, "        on_error: dead_letter\n        index_settings: "+settings+"\n"))
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)

	store := marten.Store{Layout: marten.LayoutDefault, Schema: "helpdesk"}
	s := store.NewStreamID()
	e := marten.SampleEvents(s, "incident_noted", "incident_noted", "incident_noted")
	e[0].Data = json.RawMessage(`{"Amount": 12}`)
	e[1].Data = json.RawMessage(`{"Amount": "twelve"}`) // long field: refused
	e[2].Data = json.RawMessage(`{"Amount": 13}`)
	for i := range e {
		_, _, err := store.QuickAppend(t.Context(), pool, s, "incident", "", e[i:i+1])
		mustDo(t, "append", err)
	}
	pgtest.Eventually(t, 20*time.Second, func() bool {
		_, ok := es.Doc("helpdesk-incident_noted", e[2].ID)
		return ok
	}, "the event after the refused one is indexed")
	run.stopOK()
	if _, ok := es.Doc("helpdesk-incident_noted", e[1].ID); ok {
		t.Fatal("the refused document is in the index")
	}
	if body := es.IndexBody("helpdesk-incident_noted"); !strings.Contains(string(body), `"Amount"`) {
		t.Fatalf("index created with %s, want the settings file", body)
	}
	var id, msg string
	mustDo(t, "dead letter", pool.QueryRow(t.Context(), `SELECT event_id, error FROM helpdesk.cdc_dead_letters WHERE sink = 'search'`).Scan(&id, &msg))
	if id != e[1].ID || !strings.Contains(msg, "document_parsing_exception") {
		t.Fatalf("dead letter %s %q; want the refused event with Elasticsearch's reason", id, msg)
	}
	// The latest-mode sink refuses the same event when it arrives in a
	// batch of its own, or merges it away when the next event comes in the
	// same batch; either way the stream's document ends at version 3.
	doc, ok := es.Doc("incidents", s)
	var src map[string]any
	_ = json.Unmarshal(doc.Source, &src)
	if !ok || doc.Version != 3 || src["Amount"] != float64(13) {
		t.Fatalf("stream document %v %s; want version 3 with Amount 13", ok, doc.Source)
	}
	t.Logf("dead letter: %s", msg)
}

// TestElasticValidate: `cdc validate` says in one line when Elasticsearch
// is unreachable or refuses the credentials, without printing the password.
func TestElasticValidate(t *testing.T) {
	es := esfake.New(esfake.WithBasicAuth("cdc", "right-password"))
	t.Cleanup(es.Close)
	dsn, _ := martenStore(t)
	tests := []struct {
		name, addr, password, want string
	}{
		{"fine", es.URL(), "right-password", ""},
		{"wrong password", es.URL(), "hunter2", "401"},
		{"unreachable", "http://127.0.0.1:1", "hunter2", "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, fmt.Sprintf("      - name: search\n        kind: elastic\n        addresses: [%s]\n        index: events\n        username: cdc\n        password: ${ES_PASSWORD}\n        request_timeout: 2s\n", tt.addr))
			v := startCDC(t, dir, "validate", []string{"CDC_TEST_DSN=" + dsn, "ES_PASSWORD=" + tt.password}, "validate", "--config", cfg)
			code := v.wait(30 * time.Second)
			stderr := strings.TrimSpace(v.stderr())
			if tt.want == "" {
				if code != 0 {
					t.Fatalf("validate exited %d: %s", code, stderr)
				}
				return
			}
			lines := strings.Split(stderr, "\n")
			if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "sink search: ") || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("validate exited %d with:\n%s\nwant one line about sink search with %q", code, stderr, tt.want)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Fatalf("validate printed the password: %s", stderr)
			}
			t.Logf("validate: %s", lines[0])
		})
	}
}

// TestElasticConjoined: under conjoined tenancy stream ids are unique only
// per tenant, so cdc prefixes document ids with the tenant (detected from
// mt_streams' key): two tenants' streams with the same id stay apart.
func TestElasticConjoined(t *testing.T) {
	es := esfake.New()
	t.Cleanup(es.Close)
	r := startLayoutWith(t, layoutConfig{layout: marten.LayoutConjoined, schema: "public", sinks: elasticSinks(es, "")})
	stream := r.store.NewStreamID()
	var want []string
	for _, tenant := range []string{"acme", "globex"} {
		e := marten.SampleEvents(stream, "incident_logged", "incident_closed")
		e[1].Data = json.RawMessage(`{"Owner":"` + tenant + `"}`)
		_, _, err := r.store.QuickAppend(t.Context(), r.pool, stream, "incident", tenant, e)
		mustDo(t, "append", err)
		want = append(want, marten.IDs(e)...)
	}
	r.finish(want[len(want)-1])
	for _, tenant := range []string{"acme", "globex"} {
		doc, ok := es.Doc("incidents", tenant+":"+stream)
		var src map[string]any
		_ = json.Unmarshal(doc.Source, &src)
		if !ok || doc.Version != 2 || src["Owner"] != tenant || src["@tenant_id"] != tenant {
			t.Fatalf("stream document of %s: %v v%d %s", tenant, ok, doc.Version, doc.Source)
		}
	}
	if _, ok := es.Doc("helpdesk-incident_logged", "acme:"+want[0]); !ok {
		t.Fatalf("event document acme:%s missing; have %v", want[0], maps.Keys(es.Docs("helpdesk-incident_logged")))
	}
}
