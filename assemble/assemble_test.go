package assemble_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/assemble"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/metrics"
	"github.com/martencdc/cdc/replication"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

// store is a Marten event store in schema helpdesk of a new database.
type store struct {
	dsn  string
	pool *pgxpool.Pool
}

func newStore(t *testing.T) store {
	t.Helper()
	dsn := pgtest.NewMartenDatabase(t, pg, "helpdesk")
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return store{dsn: dsn, pool: pool}
}

// parse parses a configuration with ${DSN} and ${DIR} set.
func parse(t *testing.T, s store, yaml string) *config.Pipeline {
	t.Helper()
	dir := t.TempDir()
	env := func(k string) (string, bool) {
		switch k {
		case "DSN":
			return s.dsn, true
		case "DIR":
			return dir, true
		}
		return "", false
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml), env)
	if err != nil {
		t.Fatal(err)
	}
	return &cfg.Pipelines[0]
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), "\n")
}

// TestOpenEveryKind assembles a pipeline with a sink of every kind from a
// configuration, runs it, and checks that each target received the events
// appended, that each sink's writes were counted and that each checkpoint
// was saved.
func TestOpenEveryKind(t *testing.T) {
	s := newStore(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	es := esfake.New()
	defer es.Close()
	pc := parse(t, s, `pipelines:
  - name: every
    source: {dsn: "${DSN}", schema: helpdesk}
    standby_retry: 100ms
    status_interval: 100ms
    sinks:
      - {name: out, kind: stdout}
      - {name: files, kind: file, path: "${DIR}/{{.Type}}.jsonl"}
      - {name: bus, kind: kafka, brokers: [`+kc.ListenAddrs()[0]+`], topic: "events", create_topics: true}
      - {name: search, kind: elastic, addresses: ["`+es.URL()+`"], index: events}
      - {name: archive, kind: postgres, dsn: "${DSN}", mode: events, table: archive_events, on_error: dead_letter}
`)
	var out, logs syncBuffer
	reg, m := metrics.NewRegistry()
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := assemble.New(assemble.Options{Stdout: &out, Metrics: m, Logger: log}).Open(t.Context(), pc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	pgtest.Eventually(t, 30*time.Second, func() bool { return p.State() == replication.StateStreaming }, "pipeline streams")

	st := marten.Store{Layout: marten.LayoutDefault, Schema: "helpdesk"}
	stream := st.NewStreamID()
	events := marten.SampleEvents(stream, "incident_logged", "incident_closed")
	if _, _, err := st.QuickAppend(t.Context(), s.pool, stream, "incident", marten.DefaultTenantID, events); err != nil {
		t.Fatal(err)
	}
	n := int64(len(events))
	var archived int64
	pgtest.Eventually(t, 30*time.Second, func() bool {
		_ = s.pool.QueryRow(t.Context(), `SELECT count(*) FROM archive_events`).Scan(&archived)
		var kafka int64
		for _, pi := range kc.PartitionInfos("events") {
			kafka += pi.HighWatermark
		}
		files, _ := filepath.Glob(filepath.Join(filepath.Dir(pc.Sinks[1].Options.(*config.FileOptions).Path), "*.jsonl"))
		return int64(out.lines()) == n && kafka == n && int64(len(es.Docs("events"))) == n && archived == n && len(files) == 2
	}, "every sink has the %d events", n)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	delivered := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "cdc_events_delivered_total" {
			continue
		}
		for _, mm := range f.GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == "sink" {
					delivered[l.GetValue()] = mm.GetCounter().GetValue()
				}
			}
		}
	}
	for _, sc := range pc.Sinks {
		if delivered[sc.Name] != float64(n) {
			t.Errorf("sink %s: cdc_events_delivered_total %v, want %d", sc.Name, delivered[sc.Name], n)
		}
		var events int64
		err := s.pool.QueryRow(t.Context(), `SELECT events FROM helpdesk.cdc_checkpoints WHERE pipeline = 'every' AND sink = $1`, sc.Name).Scan(&events)
		if err != nil || events != n {
			t.Errorf("sink %s: checkpoint counts %d events (%v), want %d", sc.Name, events, err, n)
		}
	}

	checkLogs(t, logs.String())

	res, err := assemble.Teardown(t.Context(), pc, true)
	if err != nil || !res.Slot.Dropped || !res.Publication.Dropped || res.Checkpoints.Deleted != int64(len(pc.Sinks)) {
		t.Fatalf("teardown: %+v, %v", res, err)
	}
}

// TestOpenRefuses: problems that retrying cannot fix stop Open with an
// error of the right kind, naming what is wrong and no connection string.
func TestOpenRefuses(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	for _, tc := range []struct {
		name  string
		yaml  string
		check func(error) bool
		want  string
	}{
		{"unparsable dsn", `pipelines:
  - name: p
    source: {dsn: "postgres://a:b@host:notaport/x"}
    sinks: [{name: out, kind: stdout}]
`, func(err error) bool { var ce *assemble.ConfigError; return errors.As(err, &ce) }, "source.dsn"},
		{"missing kafka topic", `pipelines:
  - name: p
    source: {dsn: "${DSN}", schema: helpdesk}
    sinks: [{name: bus, kind: kafka, brokers: [` + kc.ListenAddrs()[0] + `], topic: absent}]
`, func(err error) bool { return errors.Is(err, cdc.ErrMisconfigured) }, `"absent" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			pc := parse(t, s, tc.yaml)
			p, err := assemble.New(assemble.Options{}).Open(t.Context(), pc)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			if !tc.check(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %T %q, want one naming %q", err, err, tc.want)
			}
			if strings.Contains(err.Error(), "a:b@") {
				t.Fatalf("error shows the connection string: %v", err)
			}
		})
	}
}

// TestValidate: a good pipeline has no problems; a bad sink is one line
// naming it.
func TestValidate(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	s := newStore(t)
	good := parse(t, s, `pipelines:
  - name: p
    source: {dsn: "${DSN}", schema: helpdesk}
    sinks: [{name: out, kind: stdout}]
`)
	if problems := assemble.Validate(t.Context(), good); len(problems) != 0 {
		t.Fatalf("problems of a good pipeline: %q", problems)
	}
	bad := parse(t, s, `pipelines:
  - name: p
    source: {dsn: "${DSN}", schema: helpdesk}
    sinks: [{name: bus, kind: kafka, brokers: [`+kc.ListenAddrs()[0]+`], topic: absent}]
`)
	problems := assemble.Validate(t.Context(), bad)
	if len(problems) != 1 || !strings.HasPrefix(problems[0].Error(), "sink bus: ") || !strings.Contains(problems[0].Error(), `"absent"`) {
		t.Fatalf("problems %q, want one line about sink bus and topic absent", problems)
	}
	var slots int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("validate left %d slots (%v)", slots, err)
	}
}

// checkLogs checks the log keys of every record (JSON lines): each record
// has a component, none has a key twice, and every record about a sink
// names its pipeline.
func checkLogs(t *testing.T, logs string) {
	t.Helper()
	components := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		keys := map[string]string{}
		dec := json.NewDecoder(strings.NewReader(line))
		if _, err := dec.Token(); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			key := k.(string)
			if _, dup := keys[key]; dup {
				t.Errorf("log key %q twice: %s", key, line)
			}
			keys[key] = fmt.Sprint(v)
		}
		if keys["component"] == "" {
			t.Errorf("log record without a component: %s", line)
		}
		if keys["sink"] != "" && keys["pipeline"] == "" {
			t.Errorf("log record of sink %s without its pipeline: %s", keys["sink"], line)
		}
		components[keys["component"]] = true
	}
	for _, c := range []string{"assemble", "replication", "pipeline", "kafka", "postgres"} {
		if !components[c] {
			t.Errorf("no log record of component %s", c)
		}
	}
}
