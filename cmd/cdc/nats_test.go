package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/natsserver"
	"github.com/martencdc/cdc/internal/pgtest"
)

// startNATS starts an in-process NATS server with JetStream (the real
// nats-server), its store in a directory of the test, stopped when the
// test ends.
func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Config{Dir: t.TempDir()})
	mustDo(t, "nats server", err)
	t.Cleanup(srv.Stop)
	return srv
}

// natsStream creates a stream on srv.
func natsStream(t *testing.T, srv *natsserver.Server, sc jetstream.StreamConfig) {
	t.Helper()
	nc, err := nats.Connect(srv.URL())
	mustDo(t, "nats connect", err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	mustDo(t, "jetstream", err)
	_, err = js.CreateStream(t.Context(), sc)
	mustDo(t, "create stream "+sc.Name, err)
}

// natsMessage is one message of a stream, its payload parsed as an
// envelope.
type natsMessage struct {
	seq uint64
	id  string // Nats-Msg-Id
	env delivered
}

// natsMessages returns the messages of the stream, in stream order.
func natsMessages(t *testing.T, srv *natsserver.Server, stream string) []natsMessage {
	t.Helper()
	ms, err := srv.Messages(t.Context(), stream)
	mustDo(t, "read stream "+stream, err)
	out := make([]natsMessage, len(ms))
	for i, m := range ms {
		out[i] = natsMessage{seq: m.Sequence, id: m.Header.Get("Nats-Msg-Id")}
		mustDo(t, "envelope", json.Unmarshal(m.Data, &out[i].env))
		if out[i].env.ID != out[i].id {
			t.Fatalf("message %d: Nats-Msg-Id %q, envelope id %q", m.Sequence, out[i].id, out[i].env.ID)
		}
		out[i].env.lsn, _ = cdc.ParseLSN(out[i].env.LSN)
	}
	return out
}

// natsCount returns how many messages the stream holds.
func natsCount(t *testing.T, srv *natsserver.Server, stream string) int {
	t.Helper()
	n, err := srv.Count(t.Context(), stream)
	mustDo(t, "count stream "+stream, err)
	return int(n)
}

// TestNATSCrash: SIGKILL `cdc run` while it publishes to a JetStream
// stream, and start it again: the stream holds every committed event
// exactly once (the restart publishes the unacknowledged tail again, and
// the stream drops it by Nats-Msg-Id), nothing rolled back, each stream's
// events in version order.
func TestNATSCrash(t *testing.T) {
	srv := startNATS(t)
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`      - name: bus
        kind: nats
        servers: [%s]
        subject: "helpdesk.{{.Type}}"
        stream: HELPDESK
        create_stream: true
        batch: {max_events: 200, max_wait: 5ms}
`, srv.URL()))
	env := []string{"CDC_TEST_DSN=" + dsn}
	first := startStreaming(t, dir, "first", env, cfg, pool)
	w := startWriters(t, pool, 4, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return natsCount(t, srv, "HELPDESK") >= 400 }, "first run publishes")
	first.kill()
	cp, ok := checkpointOf(t, pool, "bus")
	if !ok {
		t.Fatal("no NATS checkpoint after the first run")
	}
	atKill := natsCount(t, srv, "HELPDESK")

	second := startCDC(t, dir, "second", env, "run", "--config", cfg)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return natsCount(t, srv, "HELPDESK") >= atKill+300 }, "second run publishes")
	committed, rolledBack := w.finish(t)
	pgtest.Eventually(t, 30*time.Second, func() bool { return natsCount(t, srv, "HELPDESK") >= len(committed) }, "every committed event in the stream")
	second.stopOK()

	ms := natsMessages(t, srv, "HELPDESK")
	seen := map[string]bool{}
	last := map[string]int64{}
	for _, m := range ms {
		if seen[m.id] {
			t.Fatalf("event %s twice in the stream (message %d)", m.id, m.seq)
		}
		seen[m.id] = true
		if rolledBack[m.id] || !committed[m.id] {
			t.Fatalf("event %s in the stream was not committed", m.id)
		}
		if v := m.env.Version; v <= last[m.env.StreamID] {
			t.Fatalf("message %d: stream %s version %d after version %d", m.seq, m.env.StreamID, v, last[m.env.StreamID])
		}
		last[m.env.StreamID] = m.env.Version
	}
	if len(ms) != len(committed) {
		t.Fatalf("the stream holds %d messages, want the %d committed events", len(ms), len(committed))
	}
	envs := make([]delivered, len(ms))
	for i, m := range ms {
		envs[i] = m.env
	}
	pos := positions(envs)
	again := 0 // stored before the kill, after the checkpoint: published again by the second run
	for _, m := range ms[:atKill] {
		if pos[m.id].Compare(cp) > 0 {
			again++
		}
	}
	t.Logf("%d events committed (%d rolled back); %d messages in the stream at the kill, checkpoint %s; %d of them after it, published again and dropped as duplicates; each event once in the stream",
		len(committed), len(rolledBack), atKill, cp, again)
}

// TestNATSServerRestart: the NATS server stops (its store kept) while
// `cdc run` publishes, and starts again on the same port a moment later:
// the sink fails, is retried, reconnects and catches up, and the stream
// holds every committed event exactly once, each stream in version order.
func TestNATSServerRestart(t *testing.T) {
	dir := t.TempDir()
	store := t.TempDir()
	srv, err := natsserver.Start(natsserver.Config{Dir: store})
	mustDo(t, "nats server", err)
	defer func() { srv.Stop() }()
	url, port := srv.URL(), srv.Port()
	dsn, pool := martenStore(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`      - name: bus
        kind: nats
        servers: [%s]
        subject: "helpdesk.{{.Type}}"
        stream: HELPDESK
        create_stream: true
        ack_timeout: 2s
        batch: {max_events: 200, max_wait: 5ms}
`, url))
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)
	w := startWriters(t, pool, 4, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return natsCount(t, srv, "HELPDESK") >= 300 }, "cdc publishes")
	srv.Stop()
	out := countLines(run.out)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(run.out) >= out+200 }, "the stdout sink goes on while NATS is down")
	srv, err = natsserver.Start(natsserver.Config{Dir: store, Port: port})
	mustDo(t, "restart nats server", err)
	committed, rolledBack := w.finish(t)
	pgtest.Eventually(t, 60*time.Second, func() bool { return natsCount(t, srv, "HELPDESK") >= len(committed) }, "every committed event in the stream after the restart")
	run.stopOK()
	if !strings.Contains(run.stderr(), "nats connection lost") {
		t.Fatalf("cdc logged no lost NATS connection:\n%s", run.stderr())
	}

	ms := natsMessages(t, srv, "HELPDESK")
	seen := map[string]bool{}
	last := map[string]int64{}
	for _, m := range ms {
		if seen[m.id] || rolledBack[m.id] || !committed[m.id] {
			t.Fatalf("message %d: event %s twice, or never committed", m.seq, m.id)
		}
		seen[m.id] = true
		if v := m.env.Version; v <= last[m.env.StreamID] {
			t.Fatalf("message %d: stream %s version %d after version %d", m.seq, m.env.StreamID, v, last[m.env.StreamID])
		}
		last[m.env.StreamID] = m.env.Version
	}
	if len(ms) != len(committed) {
		t.Fatalf("the stream holds %d messages, want the %d committed events", len(ms), len(committed))
	}
	t.Logf("%d events committed (%d rolled back), each once in the stream after a server restart", len(committed), len(rolledBack))
}

// TestNATSValidate: cdc validate on nats sinks: a missing stream (without
// create_stream) and an unreachable server are one line each and exit 1;
// a stream whose duplicate window is shorter than the sink needs is a
// warning, and validate exits 0.
func TestNATSValidate(t *testing.T) {
	srv := startNATS(t)
	natsStream(t, srv, jetstream.StreamConfig{Name: "SHORT", Subjects: []string{"short.>"}, Duplicates: 5 * time.Second})
	dsn, _ := martenStore(t)
	env := []string{"CDC_TEST_DSN=" + dsn}
	tests := []struct {
		name, servers, stream string
		code                  int
		line                  string // the line validate prints on stderr
	}{
		{"missing stream", srv.URL(), "NOWHERE", 1, "cdc: pipeline helpdesk: sink bus: nats stream NOWHERE does not exist: create it or set create_stream: true"},
		{"unreachable server", "127.0.0.1:1", "SHORT", 1, "cdc: pipeline helpdesk: sink bus: connect to nats (127.0.0.1:1)"},
		{"short duplicate window", srv.URL(), "SHORT", 0, "cdc: pipeline helpdesk: warning: sink bus: the duplicate window of stream SHORT (5s) is shorter than 14s (2 × ack_timeout 2s + 10s of retry backoff)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, fmt.Sprintf("      - name: bus\n        kind: nats\n        servers: [%s]\n        subject: short.events\n        stream: %s\n        ack_timeout: 2s\n", tt.servers, tt.stream))
			v := startCDC(t, dir, "validate", env, "validate", "--config", cfg)
			if code := v.wait(30 * time.Second); code != tt.code {
				t.Fatalf("validate exited %d, want %d; stderr:\n%s", code, tt.code, v.stderr())
			}
			lines := strings.Split(strings.TrimSpace(v.stderr()), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tt.line) {
				t.Fatalf("validate printed:\n%s\nwant one line starting %q", v.stderr(), tt.line)
			}
			t.Logf("validate: %s", lines[0])
			if tt.code == 0 && !strings.Contains(readFile(t, v.out), "pipeline helpdesk: ok") {
				t.Fatalf("validate with only a warning printed no ok line:\n%s", readFile(t, v.out))
			}
		})
	}
}

// TestNATSPoisonEvent: a message larger than the stream's max_msg_size is
// refused for good; with on_error: dead_letter it goes to cdc_dead_letters
// with the server's reason and the sink goes on with the events after it.
func TestNATSPoisonEvent(t *testing.T) {
	srv := startNATS(t)
	natsStream(t, srv, jetstream.StreamConfig{Name: "HELPDESK", Subjects: []string{"helpdesk.>"}, MaxMsgSize: 4000})
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`      - name: bus
        kind: nats
        servers: [%s]
        subject: helpdesk.events
        stream: HELPDESK
        on_error: dead_letter
`, srv.URL()))
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)

	store := marten.Store{Layout: marten.LayoutDefault, Schema: "helpdesk"}
	s := store.NewStreamID()
	e := marten.SampleEvents(s, "incident_logged", "incident_noted", "incident_closed")
	e[1].Data = json.RawMessage(fmt.Sprintf(`{"Note":%q}`, strings.Repeat("x", 6000)))
	_, _, err := store.QuickAppend(t.Context(), pool, s, "incident", "", e)
	mustDo(t, "append", err)
	pgtest.Eventually(t, 20*time.Second, func() bool { return natsCount(t, srv, "HELPDESK") >= 2 }, "the event after the poison one reaches the stream")
	run.stopOK()
	ms := natsMessages(t, srv, "HELPDESK")
	if len(ms) != 2 || ms[0].id != e[0].ID || ms[1].id != e[2].ID {
		t.Fatalf("the stream holds %v; want the first and last events, not the oversized one", ms)
	}
	var id, msg string
	mustDo(t, "dead letter", pool.QueryRow(context.Background(), `SELECT event_id, error FROM helpdesk.cdc_dead_letters WHERE sink = 'bus'`).Scan(&id, &msg))
	if id != e[1].ID || !strings.Contains(msg, "message size exceeds maximum") {
		t.Fatalf("dead letter %s %q; want the oversized event with the server's reason", id, msg)
	}
	t.Logf("dead letter: %s", msg)
}
