package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"gopkg.in/yaml.v3"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/examples/helpdesk"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

// readModelTarget makes the target database of the helpdesk read models
// (their tables created) and returns its DSN and a pool.
func readModelTarget(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	dsn := pgtest.NewDatabase(t, pg)
	pool, err := pgxpool.New(t.Context(), dsn)
	mustDo(t, "target", err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(t.Context(), helpdesk.DDL)
	mustDo(t, "read-model tables", err)
	return dsn, pool
}

// readModelSink is the configuration of a postgres sink "readmodel" with the
// helpdesk projections, into the database of the environment variable
// CDC_TEST_TARGET.
func readModelSink(t *testing.T, extra string) string {
	t.Helper()
	var projections []map[string]any
	for _, r := range helpdesk.Projections() {
		projections = append(projections, map[string]any{"name": r.Name, "on": r.On, "sql": r.SQL})
	}
	b, err := yaml.Marshal(map[string]any{"projections": projections})
	mustDo(t, "yaml", err)
	return "      - name: readmodel\n        kind: postgres\n        dsn: ${CDC_TEST_TARGET}\n        batch: {max_events: 500, max_wait: 5ms}\n" +
		indent(extra, "        ") + indent(string(b), "        ")
}

// checkReadModels fails unless the read models in target equal what a
// recomputation from mt_events gives.
func checkReadModels(t *testing.T, source, target *pgxpool.Pool) {
	t.Helper()
	events, err := marten.Events(t.Context(), source, "helpdesk")
	mustDo(t, "read mt_events", err)
	want := helpdesk.Recompute(events)
	got, err := helpdesk.Read(t.Context(), target)
	mustDo(t, "read models", err)
	if diff := helpdesk.Diff(want, got); diff != "" {
		t.Fatalf("read models differ from the recomputation from mt_events:\n%s", diff)
	}
}

// readModelsCaughtUp reports whether every committed event is in the
// stdout outputs and the sink's checkpoint in the target covers the last
// of them.
func readModelsCaughtUp(t *testing.T, target *pgxpool.Pool, committed map[string]bool, outs ...string) bool {
	if !allDelivered(t, committed, outs...) {
		return false
	}
	lines := readOutput(t, outs[len(outs)-1])
	last := lines[len(lines)-1]
	var lsn string
	if err := target.QueryRow(t.Context(), `SELECT lsn::text FROM cdc_sink_checkpoints WHERE pipeline = 'helpdesk' AND sink = 'readmodel'`).Scan(&lsn); err != nil {
		return false
	}
	got, err := cdc.ParseLSN(lsn)
	return err == nil && got >= last.lsn
}

// TestPostgresReadModels: the helpdesk read models projected by SQL from a
// concurrent workload with gaps equal a direct recomputation from
// mt_events; after SIGKILL mid-stream and a restart they still do (exactly
// once: no event applied twice, none missed).
func TestPostgresReadModels(t *testing.T) {
	dsn, pool := martenStore(t)
	targetDSN, target := readModelTarget(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, readModelSink(t, ""))
	env := []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN}
	first := startStreaming(t, dir, "first", env, cfg, pool)
	w := startWriters(t, pool, 4, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(first.out) >= 600 }, "first run projects")
	first.kill()
	// The target's checkpoint commits with the read models; the checkpoint
	// table follows it (and also covers the commit after the last event,
	// #end), so at a kill it can only lag by transactions.
	table, _ := checkpointOf(t, pool, "readmodel")
	var lsn string
	var idx int64
	mustDo(t, "target checkpoint", target.QueryRow(t.Context(), `SELECT lsn::text, tx_index FROM cdc_sink_checkpoints WHERE pipeline = 'helpdesk' AND sink = 'readmodel'`).Scan(&lsn, &idx))
	l, _ := cdc.ParseLSN(lsn)
	own := cdc.Position{LSN: l, Index: uint32(idx)}
	if own.LSN < table.LSN {
		t.Fatalf("target checkpoint %s behind the checkpoint table's %s", own, table)
	}

	second := startCDC(t, dir, "second", env, "run", "--config", cfg)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(second.out) >= 300 }, "second run projects")
	committed, _ := w.finish(t)
	pgtest.Eventually(t, 30*time.Second, func() bool { return readModelsCaughtUp(t, target, committed, first.out, second.out) }, "read models catch up")
	second.stopOK()
	checkReadModels(t, pool, target)
	var incidents int
	mustDo(t, "count", target.QueryRow(t.Context(), `SELECT count(*) FROM incident_details`).Scan(&incidents))
	t.Logf("%d events committed; %d incidents projected; killed after %d lines, target checkpoint %s, checkpoint table %s",
		len(committed), incidents, countLines(first.out), own, table)
}

// TestPostgresPoisonAndInjection: an event whose statement fails (a check
// constraint the read model has) goes to cdc_dead_letters and the rest of
// its batch commits; event data that looks like SQL stays data.
func TestPostgresPoisonAndInjection(t *testing.T) {
	dsn, pool := martenStore(t)
	targetDSN, target := readModelTarget(t)
	_, err := target.Exec(t.Context(), `CREATE TABLE notes (id text PRIMARY KEY, body text NOT NULL CHECK (body <> 'poison'))`)
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
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN}, cfg, pool)
	bodies := []string{"first", "poison", `'); DROP TABLE notes; --`, `$1 $data ${x} {{.Type}}`, "last"}
	ids := appendNotes(t, pool, bodies)
	pgtest.Eventually(t, 20*time.Second, func() bool {
		var n int
		_ = target.QueryRow(t.Context(), `SELECT count(*) FROM notes`).Scan(&n)
		return n == 4
	}, "every note but the poison one projected")
	run.stopOK()
	for i, b := range bodies {
		var got string
		err := target.QueryRow(t.Context(), `SELECT body FROM notes WHERE id = $1`, ids[i]).Scan(&got)
		if b == "poison" {
			if err == nil {
				t.Fatal("the poison note is in the read model")
			}
			continue
		}
		if err != nil || got != b {
			t.Fatalf("note %d = %q (%v), want %q stored as data", i, got, err, b)
		}
	}
	var id, msg string
	mustDo(t, "dead letter", pool.QueryRow(t.Context(), `SELECT event_id, error FROM helpdesk.cdc_dead_letters WHERE sink = 'readmodel'`).Scan(&id, &msg))
	if id != ids[1] || !strings.Contains(msg, "notes") {
		t.Fatalf("dead letter %s %q; want the poison event, naming the projection", id, msg)
	}
	t.Logf("dead letter: %s", msg)
}

// TestPostgresValidate: `cdc validate` prepares every statement against the
// target and names the projection of a bad one; SQL the target refuses as
// written is a configuration error (exit 2).
func TestPostgresValidate(t *testing.T) {
	dsn, _ := martenStore(t)
	targetDSN, _ := readModelTarget(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, readModelSink(t, "")+`      - name: broken
        kind: postgres
        dsn: ${CDC_TEST_TARGET}
        projections:
          - name: typo
            on: [incident_logged]
            sql: insert into incident_detail (id) values ($stream_id)
`)
	v := startCDC(t, dir, "validate", []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN}, "validate", "--config", cfg)
	code := v.wait(30 * time.Second)
	lines := strings.Split(strings.TrimSpace(v.stderr()), "\n")
	if code != cli.ExitUsage || len(lines) != 1 || !strings.Contains(lines[0], "sink broken: ") || !strings.Contains(lines[0], "typo") ||
		!strings.Contains(lines[0], `"incident_detail" does not exist`) {
		t.Fatalf("validate exited %d with:\n%s\nwant one line naming projection typo of sink broken", code, v.stderr())
	}
	t.Logf("validate: %s", lines[0])
}

// TestPostgresEventsMode: mode events copies every committed event into a
// table of the target, created by cdc, once each, with the envelope's
// columns.
func TestPostgresEventsMode(t *testing.T) {
	dsn, pool := martenStore(t)
	targetDSN, target := readModelTarget(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `      - name: archive
        kind: postgres
        dsn: ${CDC_TEST_TARGET}
        mode: events
        table: archive.events
`)
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn, "CDC_TEST_TARGET=" + targetDSN}, cfg, pool)
	w := startWriters(t, pool, 2, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(run.out) >= 200 }, "events flow")
	committed, _ := w.finish(t)
	pgtest.Eventually(t, 30*time.Second, func() bool {
		var n int
		_ = target.QueryRow(t.Context(), `SELECT count(*) FROM archive.events`).Scan(&n)
		return n == len(committed)
	}, "every committed event archived")
	run.stopOK()
	lines := stdoutLines(t, run.out)
	rows, err := target.Query(t.Context(), `SELECT id::text, seq_id, stream_id, version, type, data::text, lsn::text FROM archive.events`)
	mustDo(t, "archive", err)
	defer rows.Close()
	for rows.Next() {
		var d delivered
		var data string
		mustDo(t, "scan", rows.Scan(&d.ID, &d.SeqID, &d.StreamID, &d.Version, &d.Type, &data, &d.LSN))
		var want delivered
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		mustDo(t, "line", json.Unmarshal([]byte(lines[d.ID]), &want))
		mustDo(t, "line", json.Unmarshal([]byte(lines[d.ID]), &env))
		want.lsn, d.lsn = 0, 0
		if !committed[d.ID] || d != want || compactJSON(json.RawMessage(data)) != compactJSON(env.Data) {
			t.Fatalf("archived %+v %s, want %+v %s", d, data, want, env.Data)
		}
	}
	mustDo(t, "rows", rows.Err())
}

// appendNotes appends a note_added event per body, each in a transaction of
// its own, to a new stream of schema helpdesk, and returns the events' ids.
func appendNotes(t *testing.T, pool *pgxpool.Pool, bodies []string) (ids []string) {
	t.Helper()
	store := marten.Store{Layout: marten.LayoutDefault, Schema: "helpdesk"}
	stream := store.NewStreamID()
	for _, b := range bodies {
		e := marten.SampleEvents(stream, "note_added")[0]
		data, err := json.Marshal(map[string]string{"Body": b})
		mustDo(t, "json", err)
		e.Data = data
		ids = append(ids, e.ID)
		_, _, err = store.QuickAppend(t.Context(), pool, stream, "incident", "", []marten.NewEvent{e})
		mustDo(t, "append", err)
	}
	return ids
}
