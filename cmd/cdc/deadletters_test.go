package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/deadletter"
	envjson "github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

// deadLettersRun is the outcome of one cdc deadletters command run in
// this process (runCommand, as main calls it).
type deadLettersRun struct {
	code           int
	stdout, stderr string
}

// runDeadLetters runs `cdc deadletters args...` with the environment envs
// (KEY=value) for ${VAR} in the configuration.
func runDeadLetters(t *testing.T, envs []string, args ...string) deadLettersRun {
	t.Helper()
	var out, errOut bytes.Buffer
	lookup := func(k string) (string, bool) {
		for _, kv := range envs {
			if key, v, _ := strings.Cut(kv, "="); key == k {
				return v, true
			}
		}
		return "", false
	}
	code := runCommand(t.Context(), append([]string{"deadletters"}, args...), env{stdout: &out, stderr: &errOut, lookupEnv: lookup})
	return deadLettersRun{code: code, stdout: out.String(), stderr: errOut.String()}
}

// letters returns the dead letters of sink (all sinks when ""), by position.
func letters(t *testing.T, pool *pgxpool.Pool, sink string) []deadletter.Letter {
	t.Helper()
	ls, err := deadletter.New(pool, "helpdesk").List(t.Context(), deadletter.Filter{Pipeline: "helpdesk", Sink: sink})
	mustDo(t, "list dead letters", err)
	return ls
}

func letterIDs(ls []deadletter.Letter) []int64 {
	var out []int64
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

// seedDeadLetters writes dead letters straight into the table of the store
// at pool: n events of stream s for each sink, in position order, with a
// two-line error.
func seedDeadLetters(t *testing.T, pool *pgxpool.Pool, n int, sinks ...string) []*cdc.Event {
	t.Helper()
	store := deadletter.New(pool, "helpdesk")
	mustDo(t, "dead-letter table", store.Init(t.Context()))
	var out []*cdc.Event
	for _, sink := range sinks {
		for i := range n {
			e := &cdc.Event{
				ID: fmt.Sprintf("018f0000-0000-7000-8000-%012d", len(out)), SeqID: int64(len(out) + 1),
				StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: int64(i + 1), Type: "incident_noted",
				TenantID: "*DEFAULT*", Timestamp: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
				Data: json.RawMessage(fmt.Sprintf(`{"Note": "n%d"}`, len(out))), LSN: cdc.LSN(0x2000000 - 0x100*len(out)), Index: uint32(i),
			}
			cause := fmt.Errorf("refused: field [data.Note] of event %d\n  caused by: the mapping", len(out))
			mustDo(t, "write dead letter", store.Write(t.Context(), "helpdesk", sink, e, cause))
			out = append(out, e)
		}
	}
	return out
}

// TestDeadLettersListShow: list prints one line per dead letter, oldest
// position first, with the error on one line, for one sink or all; --json
// gives the same as JSON; show prints the whole row, the error in full and
// the payload pretty-printed.
func TestDeadLettersListShow(t *testing.T) {
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "      - name: other\n        kind: stdout\n")
	envs := []string{"CDC_TEST_DSN=" + dsn}
	if r := runDeadLetters(t, envs, "list", "--config", cfg); r.code != 0 || r.stdout != "no dead letters for pipeline helpdesk\n" {
		t.Fatalf("list without a table: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	events := seedDeadLetters(t, pool, 3, "out", "other")
	all := letters(t, pool, "")

	tests := []struct {
		name string
		args []string
		want []int64 // dead letters listed, in order
	}{
		{"one sink", []string{"--sink", "out"}, letterIDs(letters(t, pool, "out"))},
		{"every sink", nil, letterIDs(all)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runDeadLetters(t, envs, append([]string{"list", "--config", cfg}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(lines) != len(tt.want)+1 || !strings.HasPrefix(lines[0], "ID") {
				t.Fatalf("list printed\n%s\nwant a header and %d lines", r.stdout, len(tt.want))
			}
			for i, id := range tt.want {
				l := all[slices.IndexFunc(all, func(l deadletter.Letter) bool { return l.ID == id })]
				fields := strings.Fields(lines[i+1])
				if fields[0] != strconv.FormatInt(id, 10) || fields[1] != l.Sink || fields[3] != l.Position.String() ||
					fields[4] != l.EventID || fields[5] != "incident_noted" || fields[6] != l.StreamID ||
					!strings.Contains(lines[i+1], "refused: field [data.Note] of event") || !strings.HasSuffix(lines[i+1], "caused by: the mapping") {
					t.Fatalf("line %d:\n%s\nwant dead letter %d (%s at %s) with its error on one line", i, lines[i+1], id, l.EventID, l.Position)
				}
			}
			r = runDeadLetters(t, envs, append([]string{"list", "--config", cfg, "--json"}, tt.args...)...)
			var got []letterJSON
			mustDo(t, "list --json", json.Unmarshal([]byte(r.stdout), &got))
			if r.code != 0 || len(got) != len(tt.want) {
				t.Fatalf("list --json: exit %d, %d entries\n%s", r.code, len(got), r.stdout)
			}
			for i, j := range got {
				if j.ID != tt.want[i] || j.Position != fmt.Sprintf("%s#%d", j.LSN, j.TxIndex) || !strings.Contains(j.Error, "\n  caused by") || j.Payload != nil {
					t.Fatalf("entry %d: %+v", i, j)
				}
			}
		})
	}

	// Positions go down as the events were written: listed by position,
	// the last written comes first.
	if all[0].EventID != events[len(events)-1].ID {
		t.Fatalf("first listed %s, want the lowest position %s", all[0].EventID, events[len(events)-1].ID)
	}

	l := all[2]
	r := runDeadLetters(t, envs, "show", "--config", cfg, "--id", strconv.FormatInt(l.ID, 10))
	if r.code != 0 {
		t.Fatalf("show: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("dead letter %d\n", l.ID), "  sink      " + l.Sink + "\n", "  position  " + l.Position.String() + "\n",
		"  event     " + l.EventID + "\n", "  stream    " + l.StreamID + "\n", "  type      incident_noted\n",
		"error:\n  " + strings.ReplaceAll(l.Error, "\n", "\n  ") + "\npayload:\n  {\n    \"id\": \"" + l.EventID + "\",\n    \"seq_id\": ",
		"\"data\": {\n      \"Note\": ", "\"lsn\": \"" + l.Position.LSN.String() + "\",",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("show printed\n%s\nwant it to contain %q", r.stdout, want)
		}
	}
	t.Logf("show:\n%s", r.stdout)
	r = runDeadLetters(t, envs, "show", "--config", cfg, "--id", strconv.FormatInt(l.ID, 10), "--json")
	var j letterJSON
	mustDo(t, "show --json", json.Unmarshal([]byte(r.stdout), &j))
	var payload map[string]any
	mustDo(t, "payload", json.Unmarshal(j.Payload, &payload))
	if j.ID != l.ID || j.Error != l.Error || payload["id"] != l.EventID {
		t.Fatalf("show --json: %s", r.stdout)
	}
	r = runDeadLetters(t, envs, "show", "--config", cfg, "--id", "999999")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "no dead letter with id 999999") {
		t.Fatalf("show of a missing id: exit %d, %q", r.code, r.stderr)
	}
	t.Logf("list:\n%s", runDeadLetters(t, envs, "list", "--config", cfg).stdout)
}

// TestDeadLettersDiscard: discard removes the chosen rows only and logs
// each one it removed.
func TestDeadLettersDiscard(t *testing.T) {
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "      - name: other\n        kind: stdout\n")
	envs := []string{"CDC_TEST_DSN=" + dsn}
	seedDeadLetters(t, pool, 3, "out", "other")
	out, other := letters(t, pool, "out"), letters(t, pool, "other")

	tests := []struct {
		name    string
		args    []string
		code    int
		removed []deadletter.Letter
	}{
		{"two by id", []string{"--sink", "out", "--id", fmt.Sprintf("%d,%d", out[2].ID, out[0].ID)}, 0, []deadletter.Letter{out[0], out[2]}},
		{"an id of another sink", []string{"--sink", "out", "--id", strconv.FormatInt(other[0].ID, 10)}, 1, nil},
		{"one known and one gone", []string{"--sink", "out", "--id", strconv.FormatInt(out[1].ID, 10), "--id", strconv.FormatInt(out[0].ID, 10)}, 1, nil},
		{"all of a sink", []string{"--sink", "out", "--all"}, 0, []deadletter.Letter{out[1]}},
		{"all of an empty sink", []string{"--sink", "out", "--all"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := letters(t, pool, "")
			r := runDeadLetters(t, envs, append([]string{"discard", "--config", cfg, "--log-format", "json"}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tt.code, r.stderr)
			}
			after := letters(t, pool, "")
			var want []int64
			for _, l := range before {
				if !slices.ContainsFunc(tt.removed, func(x deadletter.Letter) bool { return x.ID == l.ID }) {
					want = append(want, l.ID)
				}
			}
			if got := letterIDs(after); !slices.Equal(got, want) {
				t.Fatalf("rows left %v, want %v", got, want)
			}
			var logged []deadletter.Letter
			for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				var rec struct {
					Msg      string `json:"msg"`
					ID       int64  `json:"id"`
					EventID  string `json:"event_id"`
					Type     string `json:"type"`
					Position string `json:"position"`
				}
				if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "dead letter discarded" {
					continue
				}
				l := before[slices.IndexFunc(before, func(l deadletter.Letter) bool { return l.ID == rec.ID })]
				if rec.EventID != l.EventID || rec.Type != l.Type || rec.Position != l.Position.String() {
					t.Fatalf("logged %+v for dead letter %+v", rec, l)
				}
				logged = append(logged, l)
			}
			if !slices.Equal(letterIDs(logged), letterIDs(tt.removed)) {
				t.Fatalf("logged %v, want the removed %v\n%s", letterIDs(logged), letterIDs(tt.removed), r.stderr)
			}
			if tt.code == 0 && !strings.Contains(r.stdout, fmt.Sprintf("helpdesk/out: %d dead letters discarded", len(tt.removed))) {
				t.Fatalf("stdout %q", r.stdout)
			}
			if tt.code != 0 && !strings.Contains(r.stderr, "has no dead letter with id") {
				t.Fatalf("stderr %q", r.stderr)
			}
		})
	}
}

// TestDeadLettersBadFlags: usage and configuration errors exit 2 with one
// clear line, before anything is read or written.
func TestDeadLettersBadFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	two := filepath.Join(dir, "two.yaml")
	mustDo(t, "config", os.WriteFile(two, []byte(readFile(t, cfg)+`  - name: second
    source:
      dsn: ${CDC_TEST_DSN}
    sinks:
      - name: out
        kind: stdout
`), 0o600))
	envs := []string{"CDC_TEST_DSN=postgres://nobody@127.0.0.1:1/none"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage:"},
		{"unknown command", []string{"purge"}, `unknown command "purge"`},
		{"no config", []string{"list"}, "--config FILE is required"},
		{"unknown flag", []string{"list", "--config", cfg, "--id", "1"}, "flag provided but not defined: -id"},
		{"show without id", []string{"show", "--config", cfg}, "--id N is required"},
		{"show with two ids", []string{"show", "--config", cfg, "--id", "1,2"}, "--id N is required, once"},
		{"bad id", []string{"discard", "--config", cfg, "--sink", "out", "--id", "seven"}, `"seven" is not a dead letter id`},
		{"negative id", []string{"retry", "--config", cfg, "--sink", "out", "--id", "-3"}, `"-3" is not a dead letter id`},
		{"retry without sink", []string{"retry", "--config", cfg, "--all"}, "--sink NAME is required"},
		{"retry neither id nor all", []string{"retry", "--config", cfg, "--sink", "out"}, "deadletters retry: --id N (repeatable) or --all is required"},
		{"discard both id and all", []string{"discard", "--config", cfg, "--sink", "out", "--all", "--id", "1"}, "deadletters discard: --id and --all exclude each other"},
		{"unknown sink", []string{"list", "--config", cfg, "--sink", "nope"}, "--sink nope: pipeline helpdesk has no such sink"},
		{"unknown pipeline", []string{"list", "--config", cfg, "--pipeline", "nope"}, "--pipeline nope: no such pipeline"},
		{"pipeline required", []string{"list", "--config", two}, "--pipeline NAME is required: the configuration has 2 pipelines"},
		{"extra argument", []string{"list", "--config", cfg, "now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runDeadLetters(t, envs, tt.args...)
			if r.code != cli.ExitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d with\n%s\nwant exit 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

// TestDeadLettersRetryPostgres: events a projection refused (a check
// constraint of the read model) are dead letters; retried before the fix
// they are refused again (kept, error updated, exit 1); after the fix
// (constraint dropped) a retry applies each once, removes the dead
// letters, and leaves the sink's checkpoint in the target where it was.
func TestDeadLettersRetryPostgres(t *testing.T) {
	dsn, pool := martenStore(t)
	targetDSN, target := readModelTarget(t)
	_, err := target.Exec(t.Context(), `CREATE TABLE notes (id text PRIMARY KEY, body text NOT NULL CONSTRAINT no_poison CHECK (body NOT LIKE 'poison%'))`)
	mustDo(t, "notes table", err)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `      - name: readmodel
        kind: postgres
        dsn: ${CDC_TEST_TARGET}
        on_error: dead_letter
        projections:
          - name: notes
            on: [note_added]
            sql: insert into notes (id, body) values ($id, $data->>'Body')
`)
	envs := []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN}
	run := startStreaming(t, dir, "run", envs, cfg, pool)
	bodies := []string{"first", "poison 1", "second", "poison 2", "last"}
	ids := appendNotes(t, pool, bodies)
	pgtest.Eventually(t, 20*time.Second, func() bool {
		var n int
		_ = target.QueryRow(t.Context(), `SELECT count(*) FROM notes`).Scan(&n)
		return n == 3 && len(letters(t, pool, "readmodel")) == 2
	}, "three notes projected, two dead letters")
	pgtest.Eventually(t, 20*time.Second, func() bool { return countLines(run.out) == 5 }, "stdout sink caught up")
	run.stopOK()
	dl := letters(t, pool, "readmodel")
	if dl[0].EventID != ids[1] || dl[1].EventID != ids[3] {
		t.Fatalf("dead letters %s, %s; want the poison events %s, %s", dl[0].EventID, dl[1].EventID, ids[1], ids[3])
	}
	t.Logf("list:\n%s", runDeadLetters(t, envs, "list", "--config", cfg).stdout)
	t.Logf("show:\n%s", runDeadLetters(t, envs, "show", "--config", cfg, "--id", strconv.FormatInt(dl[0].ID, 10)).stdout)
	var cpBefore string
	mustDo(t, "target checkpoint", target.QueryRow(t.Context(), `SELECT lsn::text || '#' || tx_index FROM cdc_sink_checkpoints`).Scan(&cpBefore))

	// Before the fix: refused again, kept with the new error, exit 1.
	_, err = pool.Exec(t.Context(), `UPDATE helpdesk.cdc_dead_letters SET error = 'old error'`)
	mustDo(t, "age the errors", err)
	r := runDeadLetters(t, envs, "retry", "--config", cfg, "--sink", "readmodel", "--id", strconv.FormatInt(dl[1].ID, 10))
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("dead letter %d (event %s, note_added at %s) rejected again, kept", dl[1].ID, ids[3], dl[1].Position)) ||
		!strings.Contains(r.stdout, "helpdesk/readmodel: 0 re-sent and removed, 1 rejected again and kept, 0 not sent") {
		t.Fatalf("retry before the fix: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	after := letters(t, pool, "readmodel")
	if len(after) != 2 || after[0].Error != "old error" || !strings.Contains(after[1].Error, "no_poison") {
		t.Fatalf("after a refused retry: %+v; want both kept, the retried one with the new error", after)
	}

	// The fix, then the retry of all: each applied once, dead letters gone.
	_, err = target.Exec(t.Context(), `ALTER TABLE notes DROP CONSTRAINT no_poison`)
	mustDo(t, "fix", err)
	r = runDeadLetters(t, envs, "retry", "--config", cfg, "--sink", "readmodel", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "helpdesk/readmodel: 2 re-sent and removed, 0 rejected again and kept, 0 not sent") {
		t.Fatalf("retry after the fix: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if n := len(letters(t, pool, "readmodel")); n != 0 {
		t.Fatalf("%d dead letters left", n)
	}
	for i, b := range bodies {
		var got string
		var n int
		mustDo(t, "note", target.QueryRow(t.Context(), `SELECT body, count(*) OVER () FROM notes WHERE id = $1`, ids[i]).Scan(&got, &n))
		if got != b || n != 1 {
			t.Fatalf("note %d: %q ×%d, want %q once", i, got, n, b)
		}
	}
	var total int
	mustDo(t, "count", target.QueryRow(t.Context(), `SELECT count(*) FROM notes`).Scan(&total))
	var cpAfter string
	mustDo(t, "target checkpoint", target.QueryRow(t.Context(), `SELECT lsn::text || '#' || tx_index FROM cdc_sink_checkpoints`).Scan(&cpAfter))
	if total != 5 || cpAfter != cpBefore {
		t.Fatalf("%d notes, checkpoint %s; want 5 and the checkpoint left at %s", total, cpAfter, cpBefore)
	}
	// A restart of cdc run applies nothing again.
	again := startStreaming(t, dir, "again", envs, cfg, pool)
	again.stopOK()
	mustDo(t, "count", target.QueryRow(t.Context(), `SELECT count(*) FROM notes`).Scan(&total))
	if total != 5 {
		t.Fatalf("%d notes after a restart, want 5", total)
	}
	t.Logf("retry: %s", strings.TrimSpace(r.stdout))
}

// esRequest sends a request to the fake and fails the test unless it
// answers 200.
func esRequest(t *testing.T, method, url, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	mustDo(t, "request", err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	mustDo(t, method+" "+url, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", method, url, resp.Status)
	}
}

// TestDeadLettersRetryElastic: a document refused for a mapping conflict
// is a dead letter; a retry before the fix is refused again (row kept with
// the new error, exit 1); after the index is recreated with a mapping that
// takes it, a retry indexes it (the envelope, external version = seq_id)
// and removes the dead letter.
func TestDeadLettersRetryElastic(t *testing.T) {
	es := esfake.New()
	t.Cleanup(es.Close)
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	settings := filepath.Join(dir, "es-index.json")
	mustDo(t, "settings", os.WriteFile(settings, []byte(`{"mappings":{"properties":{"data":{"properties":{"Amount":{"type":"long"}}}}}}`), 0o600))
	cfg := writeConfig(t, dir, fmt.Sprintf(`      - name: search
        kind: elastic
        addresses: [%s]
        index: "helpdesk-{{.Type}}"
        index_settings: %s
        on_error: dead_letter
        batch: {max_events: 200, max_wait: 5ms}
`, es.URL(), settings))
	envs := []string{"CDC_TEST_DSN=" + dsn}
	run := startStreaming(t, dir, "run", envs, cfg, pool)
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
		return ok && len(letters(t, pool, "search")) == 1
	}, "the event after the refused one is indexed")
	run.stopOK()
	lines := stdoutLines(t, run.out)
	dl := letters(t, pool, "search")[0]
	id := strconv.FormatInt(dl.ID, 10)

	_, err := pool.Exec(t.Context(), `UPDATE helpdesk.cdc_dead_letters SET error = 'old error'`)
	mustDo(t, "age the error", err)
	r := runDeadLetters(t, envs, "retry", "--config", cfg, "--sink", "search", "--id", id)
	if r.code != 1 || !strings.Contains(r.stderr, "rejected again, kept: ") || !strings.Contains(r.stderr, "document_parsing_exception") {
		t.Fatalf("retry before the fix: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if got := letters(t, pool, "search"); len(got) != 1 || !strings.Contains(got[0].Error, "document_parsing_exception") {
		t.Fatalf("after a refused retry: %+v; want the row kept with the new error", got)
	}

	t.Logf("retry before the fix:\n%s%s", r.stdout, r.stderr)

	// The fix: the index again, with Amount as a keyword.
	esRequest(t, http.MethodDelete, es.URL()+"/helpdesk-incident_noted", "")
	esRequest(t, http.MethodPut, es.URL()+"/helpdesk-incident_noted", `{"mappings":{"properties":{"data":{"properties":{"Amount":{"type":"keyword"}}}}}}`)
	r = runDeadLetters(t, envs, "retry", "--config", cfg, "--sink", "search", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "helpdesk/search: 1 re-sent and removed, 0 rejected again and kept, 0 not sent") {
		t.Fatalf("retry after the fix: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("retry after the fix:\n%s%s", r.stdout, r.stderr)
	doc, ok := es.Doc("helpdesk-incident_noted", e[1].ID)
	if !ok {
		t.Fatal("the retried event has no document")
	}
	var seq int64
	mustDo(t, "seq_id", pool.QueryRow(t.Context(), `SELECT seq_id FROM helpdesk.mt_events WHERE id = $1`, e[1].ID).Scan(&seq))
	if doc.Version != seq || compactJSON(doc.Source) != compactJSON(json.RawMessage(lines[e[1].ID])) {
		t.Fatalf("document v%d\n%s\nwant v%d, the envelope cdc run printed\n%s", doc.Version, doc.Source, seq, lines[e[1].ID])
	}
	if n := len(letters(t, pool, "search")); n != 0 {
		t.Fatalf("%d dead letters left", n)
	}
	// Again: nothing to do.
	r = runDeadLetters(t, envs, "retry", "--config", cfg, "--sink", "search", "--all")
	if r.code != 0 || r.stdout != "no dead letters for helpdesk/search\n" {
		t.Fatalf("retry with none left: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestDeadLettersRetryKafka: a record larger than the topic accepts is a
// dead letter; after the topic's max.message.bytes is raised, a retry
// produces it as a new message, after the events that followed it in its
// partition (the order README documents), and removes the dead letter.
func TestDeadLettersRetryKafka(t *testing.T) {
	kc := startKafka(t)
	mustDo(t, "topic", kc.CreateTopic("helpdesk.events", 3, map[string]string{"max.message.bytes": "4000"}))
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`      - name: bus
        kind: kafka
        brokers: %s
        topic: helpdesk.events
        on_error: dead_letter
`, kafkaYAML(kc)))
	envs := []string{"CDC_TEST_DSN=" + dsn}
	k := consume(t, kc, `^helpdesk\.events$`)
	run := startStreaming(t, dir, "run", envs, cfg, pool)
	store := marten.Store{Layout: marten.LayoutDefault, Schema: "helpdesk"}
	s := store.NewStreamID()
	e := marten.SampleEvents(s, "incident_logged", "incident_noted", "incident_closed")
	e[1].Data = json.RawMessage(fmt.Sprintf(`{"Note":%q}`, strings.Repeat("x", 6000)))
	_, _, err := store.QuickAppend(t.Context(), pool, s, "incident", "", e)
	mustDo(t, "append", err)
	pgtest.Eventually(t, 20*time.Second, func() bool { return k.ids()[e[2].ID] == 1 && len(letters(t, pool, "bus")) == 1 }, "the event after the poison one reaches Kafka")
	run.stopOK()

	// The fix: the topic takes larger records.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	mustDo(t, "kafka client", err)
	defer cl.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "helpdesk.events"
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value = "max.message.bytes", kmsg.StringPtr("100000")
	res.Configs = append(res.Configs, c)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(t.Context(), cl)
	mustDo(t, "alter topic", err)
	if code := resp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("alter topic: error code %d", code)
	}

	r := runDeadLetters(t, envs, "retry", "--config", cfg, "--sink", "bus", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "helpdesk/bus: 1 re-sent and removed, 0 rejected again and kept, 0 not sent") {
		t.Fatalf("retry: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	pgtest.Eventually(t, 20*time.Second, func() bool { return k.ids()[e[1].ID] == 1 }, "the retried event reaches Kafka")
	var retried, after kafkaRecord
	for _, rec := range k.snapshot() {
		switch rec.Headers["event-id"] {
		case e[1].ID:
			retried = rec
		case e[2].ID:
			after = rec
		}
	}
	if retried.Key != s || retried.Partition != after.Partition || retried.Offset < after.Offset || retried.env.ID != e[1].ID {
		t.Fatalf("retried record %s/%d@%d key %s; want stream %s's partition %d after offset %d", retried.Topic, retried.Partition, retried.Offset, retried.Key, s, after.Partition, after.Offset)
	}
	if n := len(letters(t, pool, "bus")); n != 0 {
		t.Fatalf("%d dead letters left", n)
	}
}

// TestDeadLettersRetryStdout: the stdout sink prints the retried events,
// rebuilt from their envelopes, on stdout in position order, so the report
// goes to stderr; the rows are removed.
func TestDeadLettersRetryStdout(t *testing.T) {
	dsn, pool := martenStore(t)
	cfg := writeConfig(t, t.TempDir(), "")
	envs := []string{"CDC_TEST_DSN=" + dsn}
	events := seedDeadLetters(t, pool, 3, "out")
	r := runDeadLetters(t, envs, "retry", "--config", cfg, "--sink", "out", "--all")
	if r.code != 0 || !strings.Contains(r.stderr, "helpdesk/out: 3 re-sent and removed, 0 rejected again and kept, 0 not sent") {
		t.Fatalf("retry: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	var want []string
	for i := len(events) - 1; i >= 0; i-- { // by position: the last seeded first
		want = append(want, string(envelopeOf(events[i])))
	}
	if got := strings.Split(strings.TrimSpace(r.stdout), "\n"); !slices.Equal(got, want) {
		t.Fatalf("stdout:\n%s\nwant the envelopes by position:\n%s", r.stdout, strings.Join(want, "\n"))
	}
	if n := len(letters(t, pool, "out")); n != 0 {
		t.Fatalf("%d dead letters left", n)
	}
}

// envelopeOf is the JSON envelope of e (package envelope; this package's
// tests have a type of that name).
func envelopeOf(e *cdc.Event) []byte { return envjson.Append(nil, e) }
