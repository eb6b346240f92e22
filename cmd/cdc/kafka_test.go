package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

// startKafka starts an in-process Kafka cluster (kfake: the real wire
// protocol) with three brokers, closed when the test ends.
func startKafka(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// kafkaYAML is c's bootstrap brokers as a YAML flow list.
func kafkaYAML(c *kfake.Cluster) string {
	return "[" + strings.Join(c.ListenAddrs(), ", ") + "]"
}

// kafkaRecord is one consumed Kafka message.
type kafkaRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Value     []byte
	Headers   map[string]string
	env       delivered // Value parsed as an envelope, when it is one
}

// consumer reads every topic matching a regular expression from the start,
// in the background, until the test ends.
type consumer struct {
	mu   sync.Mutex
	recs []kafkaRecord
}

func consume(t *testing.T, c *kfake.Cluster, topicRegex string) *consumer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeRegex(), kgo.ConsumeTopics(topicRegex),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	k := &consumer{}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fetches := cl.PollFetches(ctx)
			fetches.EachRecord(func(r *kgo.Record) {
				rec := kafkaRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key),
					Value: r.Value, Headers: map[string]string{}}
				for _, h := range r.Headers {
					rec.Headers[h.Key] = string(h.Value)
				}
				if json.Unmarshal(r.Value, &rec.env) == nil && rec.env.LSN != "" {
					rec.env.lsn, _ = cdc.ParseLSN(rec.env.LSN)
				}
				k.mu.Lock()
				k.recs = append(k.recs, rec)
				k.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return k
}

func (k *consumer) snapshot() []kafkaRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.recs)
}

// ids returns the set of event ids (from the event-id header) consumed.
func (k *consumer) ids() map[string]int {
	out := map[string]int{}
	for _, r := range k.snapshot() {
		out[r.Headers["event-id"]]++
	}
	return out
}

// has reports whether every id in want was consumed.
func (k *consumer) has(want map[string]bool) bool {
	got := k.ids()
	for id := range want {
		if got[id] == 0 {
			return false
		}
	}
	return true
}

// checkPartitionOrder fails unless, in every partition, each stream's
// events first appear in version order (re-deliveries after a failure may
// repeat a tail, never go back before what was already there).
func checkPartitionOrder(t *testing.T, recs []kafkaRecord) {
	t.Helper()
	type tp struct {
		topic     string
		partition int32
	}
	last := map[tp]map[string]int64{}
	seen := map[string]bool{}
	streamPartition := map[string]tp{}
	for _, r := range recs {
		p := tp{r.Topic, r.Partition}
		if last[p] == nil {
			last[p] = map[string]int64{}
		}
		stream := r.Headers["stream-id"]
		if prev, ok := streamPartition[r.Topic+"/"+stream]; ok && prev != p {
			t.Fatalf("stream %s in partitions %d and %d of %s", stream, prev.partition, p.partition, r.Topic)
		}
		streamPartition[r.Topic+"/"+stream] = p
		id := r.Topic + "/" + r.Headers["event-id"]
		if seen[id] {
			continue // a re-delivery
		}
		seen[id] = true
		if v := r.env.Version; v <= last[p][stream] {
			t.Fatalf("%s[%d]@%d: stream %s version %d first appears after version %d", r.Topic, r.Partition, r.Offset, stream, v, last[p][stream])
		}
		last[p][stream] = r.env.Version
	}
}

// TestKafkaDelivery: a concurrent workload with gaps (late commits and
// rollbacks) into a Kafka sink whose topic is per event type, beside the
// stdout sink: every committed event reaches Kafka once, no rolled-back
// event does, each stream stays in one partition and in order, and every
// message carries the SPEC headers and, as its value, exactly the envelope
// the stdout sink printed.
func TestKafkaDelivery(t *testing.T) {
	kc := startKafka(t)
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`      - name: bus
        kind: kafka
        brokers: %s
        topic: "helpdesk.{{.Type}}"
        create_topics: true
        topic_partitions: 6
        compression: lz4
        batch: {max_events: 500, max_wait: 5ms}
`, kafkaYAML(kc)))
	k := consume(t, kc, `^helpdesk\..*`)
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)
	w := startWriters(t, pool, 4, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return len(k.snapshot()) >= 300 }, "kafka receives events")
	committed, rolledBack := w.finish(t)
	pgtest.Eventually(t, 30*time.Second, func() bool { return k.has(committed) && allDelivered(t, committed, run.out) }, "every committed event in Kafka")
	run.stopOK()

	lines := stdoutLines(t, run.out)
	recs := k.snapshot()
	counts := map[string]int{}
	for _, r := range recs {
		id := r.Headers["event-id"]
		counts[id]++
		if counts[id] > 1 {
			t.Fatalf("event %s in Kafka twice without any failure", id)
		}
		if rolledBack[id] || !committed[id] {
			t.Fatalf("event %s in Kafka was not committed", id)
		}
		if string(r.Value) != lines[id] {
			t.Fatalf("value of %s:\n got %s\nwant %s (the stdout line)", id, r.Value, lines[id])
		}
		e := r.env
		want := map[string]string{"event-id": e.ID, "event-type": e.Type, "stream-id": e.StreamID, "tenant-id": "*DEFAULT*",
			"seq-id": fmt.Sprint(e.SeqID), "lsn": e.LSN}
		for h, v := range want {
			if r.Headers[h] != v {
				t.Fatalf("event %s: header %s = %q, want %q", id, h, r.Headers[h], v)
			}
		}
		if r.Topic != "helpdesk."+e.Type || r.Key != e.StreamID {
			t.Fatalf("event %s in topic %s with key %s, want helpdesk.%s keyed by stream %s", id, r.Topic, r.Key, e.Type, e.StreamID)
		}
	}
	if len(counts) != len(committed) {
		t.Fatalf("%d events in Kafka, %d committed", len(counts), len(committed))
	}
	checkPartitionOrder(t, recs)
	if n := len(kc.PartitionInfos("helpdesk.incident_logged")); n != 6 {
		t.Fatalf("created topic has %d partitions, want 6", n)
	}
	t.Logf("%d events committed (%d rolled back) in %d topics", len(committed), len(rolledBack), len(topicsOf(recs)))
}

func topicsOf(recs []kafkaRecord) map[string]bool {
	out := map[string]bool{}
	for _, r := range recs {
		out[r.Topic] = true
	}
	return out
}

// envelopes returns the consumed records' values as delivered events.
func envelopes(recs []kafkaRecord) []delivered {
	out := make([]delivered, len(recs))
	for i, r := range recs {
		out[i] = r.env
	}
	return out
}

// TestKafkaCrash: SIGKILL `cdc run` while it produces to Kafka, and start
// it again: nothing committed is missing, nothing rolled back is there, and
// the only duplicates are events after the Kafka sink's checkpoint at the
// time of the kill (the unacknowledged tail).
func TestKafkaCrash(t *testing.T) {
	kc := startKafka(t)
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`      - name: bus
        kind: kafka
        brokers: %s
        topic: helpdesk.events
        create_topics: true
        topic_partitions: 4
        batch: {max_events: 200, max_wait: 5ms}
`, kafkaYAML(kc)))
	k := consume(t, kc, `^helpdesk\.events$`)
	env := []string{"CDC_TEST_DSN=" + dsn}
	first := startStreaming(t, dir, "first", env, cfg, pool)
	w := startWriters(t, pool, 4, time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return len(k.snapshot()) >= 400 }, "first run produces")
	first.kill()
	cp, ok := checkpointOf(t, pool, "bus")
	if !ok {
		t.Fatal("no Kafka checkpoint after the first run")
	}
	atKill := len(k.snapshot())

	second := startCDC(t, dir, "second", env, "run", "--config", cfg)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return len(k.snapshot()) >= atKill+300 }, "second run produces")
	committed, rolledBack := w.finish(t)
	pgtest.Eventually(t, 30*time.Second, func() bool { return k.has(committed) }, "every committed event in Kafka")
	second.stopOK()

	recs := k.snapshot()
	pos := positions(envelopes(recs))
	counts := map[string]int{}
	dups := 0
	for _, r := range recs {
		id := r.Headers["event-id"]
		if rolledBack[id] || !committed[id] {
			t.Fatalf("event %s in Kafka was not committed", id)
		}
		counts[id]++
		if counts[id] == 2 {
			dups++
			if pos[id].Compare(cp) <= 0 {
				t.Fatalf("event %s at %s produced twice though the checkpoint %s covered it", id, pos[id], cp)
			}
		}
	}
	checkPartitionOrder(t, recs)
	t.Logf("%d events committed (%d rolled back); %d messages in Kafka at the kill, checkpoint %s; %d events produced twice (the unacknowledged tail)",
		len(committed), len(rolledBack), atKill, cp, dups)
}

// TestKafkaOutage: while every produce request fails, the Kafka sink is
// retried and holds its checkpoint (and the slot its WAL) while the stdout
// sink goes on; when the brokers recover, the Kafka sink catches up from
// its checkpoint with nothing missing and each stream in order.
func TestKafkaOutage(t *testing.T) {
	kc := startKafka(t, kfake.SeedTopics(4, "helpdesk.events"))
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`      - name: bus
        kind: kafka
        brokers: %s
        topic: helpdesk.events
        write_timeout: 2s
`, kafkaYAML(kc)))
	k := consume(t, kc, `^helpdesk\.events$`)
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)
	w := startWriters(t, pool, 2, 2*time.Millisecond)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return len(k.snapshot()) >= 100 }, "kafka receives events")

	outage := kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	mustDo(t, "wait for a refused produce", outage.Wait(t.Context(), 1))
	// Counted at the broker: a consumer may still be fetching what was
	// produced just before the outage.
	before := topicEnd(t, kc, "helpdesk.events")
	lines := countLines(run.out)
	pgtest.Eventually(t, 30*time.Second, func() bool { w.check(t); return countLines(run.out) >= lines+300 }, "stdout goes on during the outage")
	if n := topicEnd(t, kc, "helpdesk.events"); n != before {
		t.Fatalf("%d messages reached Kafka during the outage", n-before)
	}
	// The slot keeps the WAL of every transaction the Kafka sink lacks: it
	// confirms no further than the commit of the first one (WAL without
	// events after the sink's flush position may be confirmed: nothing in
	// it is sent again or missed).
	var confirmedText, cpText string
	mustDo(t, "slot", pool.QueryRow(t.Context(), `SELECT s.confirmed_flush_lsn::text, c.lsn::text
FROM pg_replication_slots s, helpdesk.cdc_checkpoints c WHERE s.slot_name = 'cdc_helpdesk' AND c.sink = 'bus' AND c.pipeline = 'helpdesk'`).Scan(&confirmedText, &cpText))
	confirmed, err := cdc.ParseLSN(confirmedText)
	mustDo(t, "confirmed", err)
	checkpointLSN, err := cdc.ParseLSN(cpText)
	mustDo(t, "checkpoint", err)
	var firstMissed cdc.LSN
	for _, d := range readOutput(t, run.out) {
		if d.lsn > checkpointLSN && (firstMissed == 0 || d.lsn < firstMissed) {
			firstMissed = d.lsn
		}
	}
	if firstMissed == 0 || confirmed > firstMissed {
		t.Fatalf("slot confirmed %s, past the commit %s of the first transaction the Kafka sink lacks (its checkpoint: %s)", confirmed, firstMissed, checkpointLSN)
	}
	outage.Remove()

	committed, _ := w.finish(t)
	pgtest.Eventually(t, 60*time.Second, func() bool { return k.has(committed) }, "kafka catches up after the outage")
	run.stopOK()
	recs := k.snapshot()
	checkPartitionOrder(t, recs)
	ids := k.ids()
	dups := 0
	for _, n := range ids {
		dups += n - 1
	}
	t.Logf("outage refused %d produce requests; %d events committed, %d messages, %d duplicates; during the outage the Kafka sink's checkpoint was %s and the slot confirmed %s",
		outage.Hits(), len(committed), len(recs), dups, checkpointLSN, confirmed)
}

// TestKafkaTemplatesAndFormats: topics per tenant and per type from
// templates (created on first use), both value formats, keys by event id,
// the fnv1a partitioner and compression, with every header round-tripping:
// correlation-id and causation-id only when set.
func TestKafkaTemplatesAndFormats(t *testing.T) {
	kc := startKafka(t)
	k := consume(t, kc, `^(tenant|type)\..*`)
	r := startLayoutWith(t, layoutConfig{layout: marten.LayoutConjoined, schema: "public", sinks: fmt.Sprintf(`      - name: by-tenant
        kind: kafka
        brokers: %[1]s
        topic: "tenant.{{.TenantID}}"
        key: id
        partitioner: fnv1a
        value: data
        compression: gzip
        create_topics: true
        topic_partitions: 3
      - name: by-type
        kind: kafka
        brokers: %[1]s
        topic: "type.{{.Type}}"
        compression: zstd
        create_topics: true
`, kafkaYAML(kc))})
	var want []string
	for _, tenant := range []string{"acme", "globex"} {
		ids, _ := r.writeEveryPath(tenant)
		want = append(want, ids...)
	}
	got := r.finish(want[len(want)-1])
	table := tableEvents(t, r.pool, "public")
	checkExact(t, "out", got, want, table)
	wantSet := map[string]bool{}
	for _, id := range want {
		wantSet[id] = true
	}
	pgtest.Eventually(t, 20*time.Second, func() bool {
		n := map[string]int{}
		for _, rec := range k.snapshot() {
			n[rec.Topic[:strings.IndexByte(rec.Topic, '.')]]++
		}
		return n["tenant"] >= len(want) && n["type"] >= len(want)
	}, "both kafka sinks produce every event")

	lines := stdoutLines(t, r.cdc.out)
	recs := k.snapshot()
	for _, rec := range recs {
		id := rec.Headers["event-id"]
		row, ok := table[id]
		if !ok || !wantSet[id] {
			t.Fatalf("%s: event %s was not to be delivered", rec.Topic, id)
		}
		wantHeaders := map[string]string{"event-id": id, "event-type": row.Type, "stream-id": row.StreamID,
			"tenant-id": *row.TenantID, "seq-id": fmt.Sprint(row.SeqID), "lsn": got[slices.IndexFunc(got, func(e envelope) bool { return e.ID == id })].LSN}
		if c := row.CorrelationID; c != nil && *c != "" {
			wantHeaders["correlation-id"] = *c
		}
		if c := row.CausationID; c != nil && *c != "" {
			wantHeaders["causation-id"] = *c
		}
		if !maps.Equal(rec.Headers, wantHeaders) {
			t.Fatalf("%s: headers of %s = %v, want %v", rec.Topic, id, rec.Headers, wantHeaders)
		}
		switch {
		case strings.HasPrefix(rec.Topic, "tenant."):
			if rec.Topic != "tenant."+*row.TenantID || rec.Key != id || compactJSON(rec.Value) != compactJSON(row.Data) {
				t.Fatalf("%s: event %s of tenant %s with key %s and value %s; want its tenant's topic, its id as key and its data %s",
					rec.Topic, id, *row.TenantID, rec.Key, rec.Value, row.Data)
			}
		default:
			if rec.Topic != "type."+row.Type || rec.Key != row.StreamID || string(rec.Value) != lines[id] {
				t.Fatalf("%s: event %s with key %s and value %s; want topic type.%s, the stream id as key and the envelope %s",
					rec.Topic, id, rec.Key, rec.Value, row.Type, lines[id])
			}
		}
	}
	checkPartitionOrder(t, slices.DeleteFunc(slices.Clone(recs), func(r kafkaRecord) bool { return strings.HasPrefix(r.Topic, "tenant.") }))
	if n := len(kc.PartitionInfos("tenant.acme")); n != 3 {
		t.Fatalf("tenant.acme has %d partitions, want 3", n)
	}
	t.Logf("%d events, %d messages in %d topics", len(want), len(recs), len(topicsOf(recs)))
}

// TestKafkaTargetProblems: a constant topic that does not exist (and
// create_topics is false) is one clear line from `cdc validate` and stops
// `cdc run` at start (exit 1); unreachable brokers are one line from
// validate, while run starts and retries.
func TestKafkaTargetProblems(t *testing.T) {
	kc := startKafka(t)
	dsn, pool := martenStore(t)
	env := []string{"CDC_TEST_DSN=" + dsn}
	tests := []struct {
		name, brokers, topic string
		validate             string // the line validate prints
		runExits             bool   // whether run exits 1 at start with the same problem
	}{
		{"missing topic", kafkaYAML(kc), "helpdesk.nowhere",
			`sink bus: kafka topic "helpdesk.nowhere" does not exist and create_topics is false`, true},
		{"unreachable brokers", "[127.0.0.1:1]", "helpdesk.events",
			"sink bus: ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, fmt.Sprintf("      - name: bus\n        kind: kafka\n        brokers: %s\n        topic: %s\n        write_timeout: 2s\n", tt.brokers, tt.topic))
			v := startCDC(t, dir, "validate", env, "validate", "--config", cfg)
			if code := v.wait(30 * time.Second); code != 1 {
				t.Fatalf("validate exited %d, want 1; stderr:\n%s", code, v.stderr())
			}
			lines := strings.Split(strings.TrimSpace(v.stderr()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.validate) {
				t.Fatalf("validate printed:\n%s\nwant one line with %q", v.stderr(), tt.validate)
			}
			t.Logf("validate: %s", lines[0])
			run := startCDC(t, dir, "run", env, "run", "--config", cfg)
			if tt.runExits {
				if code := run.wait(30 * time.Second); code != 1 || !strings.Contains(run.stderr(), tt.validate[len("sink bus: "):]) {
					t.Fatalf("run exited %d, want 1 naming the topic; stderr:\n%s", code, run.stderr())
				}
				return
			}
			pgtest.Eventually(t, 15*time.Second, func() bool { return holderPID(t, pool) == run.pid() || run.wait0() }, "run starts and streams though the brokers are down")
			if code := run.stop(); code != 0 {
				t.Fatalf("run exited %d after SIGTERM", code)
			}
		})
	}
}

// TestKafkaPoisonEvent: a record larger than the topic accepts is refused
// by the broker for good; with on_error: dead_letter it goes to
// cdc_dead_letters with the broker's reason and the sink goes on with the
// events after it.
func TestKafkaPoisonEvent(t *testing.T) {
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
	k := consume(t, kc, `^helpdesk\.events$`)
	run := startStreaming(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, cfg, pool)

	store := marten.Store{Layout: marten.LayoutDefault, Schema: "helpdesk"}
	s := store.NewStreamID()
	e := marten.SampleEvents(s, "incident_logged", "incident_noted", "incident_closed")
	e[1].Data = json.RawMessage(fmt.Sprintf(`{"Note":%q}`, strings.Repeat("x", 6000)))
	_, _, err := store.QuickAppend(t.Context(), pool, s, "incident", "", e)
	mustDo(t, "append", err)
	pgtest.Eventually(t, 20*time.Second, func() bool { return k.ids()[e[2].ID] == 1 }, "the event after the poison one reaches Kafka")
	run.stopOK()
	got := k.ids()
	if got[e[0].ID] != 1 || got[e[1].ID] != 0 {
		t.Fatalf("kafka holds %v; want the first and last events once, not the oversized one", got)
	}
	var id, msg string
	mustDo(t, "dead letter", pool.QueryRow(t.Context(), `SELECT event_id, error FROM helpdesk.cdc_dead_letters WHERE sink = 'bus'`).Scan(&id, &msg))
	if id != e[1].ID || !strings.Contains(strings.ToLower(msg), "message size too large") {
		t.Fatalf("dead letter %s %q; want the oversized event with the broker's reason", id, msg)
	}
	t.Logf("dead letter: %s", msg)
}

// topicEnd returns how many records topic holds on the broker: the sum of
// its partitions' end offsets.
func topicEnd(t *testing.T, c *kfake.Cluster, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	mustDo(t, "kafka client", err)
	defer cl.Close()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(t.Context(), cl)
	mustDo(t, "metadata", err)
	req := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, mtr := range mresp.Topics {
		for _, p := range mtr.Partitions {
			lp := kmsg.NewListOffsetsRequestTopicPartition()
			lp.Partition, lp.Timestamp = p.Partition, -1 // the end
			lt.Partitions = append(lt.Partitions, lp)
		}
	}
	req.Topics = append(req.Topics, lt)
	// Each partition's leader answers for it: shard the request.
	var end int64
	for _, sh := range cl.RequestSharded(t.Context(), req) {
		mustDo(t, "list offsets", sh.Err)
		for _, rt := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					t.Fatalf("list offsets of %s/%d: %v", topic, rp.Partition, err)
				}
				end += rp.Offset
			}
		}
	}
	return end
}
