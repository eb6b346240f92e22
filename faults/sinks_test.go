package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/examples/helpdesk"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/netproxy"
	"github.com/martencdc/cdc/internal/pgtest"
)

// Guarantee is what a sink promises about re-delivery (README,
// Guarantees).
type Guarantee int

const (
	// AtLeastOnce sinks (stdout, file, kafka) may hold an event more than
	// once after a failure.
	AtLeastOnce Guarantee = iota
	// EffectivelyOnce sinks (elastic) absorb re-deliveries: the target
	// keeps one copy.
	EffectivelyOnce
	// ExactlyOnce sinks (postgres) apply each event once.
	ExactlyOnce
)

// String names the guarantee as README does.
func (g Guarantee) String() string {
	return [...]string{"at least once", "effectively once", "exactly once"}[g]
}

// Pos orders events: the commit LSN of the transaction, then seq_id, which
// grows in WAL order within a transaction of this workload (one stream per
// transaction, a single tenant).
type Pos struct {
	LSN cdc.LSN
	Seq int64
}

// after reports whether p comes after q.
func (p Pos) after(q Pos) bool { return p.LSN > q.LSN || (p.LSN == q.LSN && p.Seq > q.Seq) }

// String formats the position for messages.
func (p Pos) String() string { return fmt.Sprintf("%s/seq %d", p.LSN, p.Seq) }

// Record is one event as a sink holds it.
type Record struct {
	Unit string // the ordering unit: first deliveries must follow commit order within it
	ID   string
	Pos  Pos
	Torn bool // an unparsable line (a write torn by SIGKILL): not an event
}

// Sink is a sink of the configuration together with a reader of what its
// target holds.
type Sink interface {
	// Name is the sink's name in the configuration.
	Name() string
	// Kind is its kind: stdout, file, kafka, elastic, postgres.
	Kind() string
	// Guarantee is its re-delivery guarantee.
	Guarantee() Guarantee
	// Ordered reports whether the target keeps an order to check.
	Ordered() bool

	// yaml is the sink's entry in the sinks list, indented.
	yaml() string
	// environ is the environment its configuration refers to.
	environ() []string
	// poll returns what the target holds beyond what earlier polls
	// returned. fresh lists the ids the workload recorded since the last
	// poll; full asks for everything (Check), not just what is cheap.
	// Only the watcher calls it, one call at a time.
	poll(ctx context.Context, fresh []string, full bool) ([]Record, error)
	// absorbed counts re-deliveries the target took without keeping a
	// second copy (Elasticsearch's 409s).
	absorbed() int64
}

// batchYAML is the batch policy of every sink: small batches, so that a
// fault finds several in flight.
const batchYAML = "batch: {max_events: 200, max_wait: 5ms}"

// stdoutMaxEvents is batchYAML's max_events: the most lines one write of
// the stdout sink adds.
const stdoutMaxEvents = 200

// envelope is what the harness reads of a delivered JSON envelope.
type envelope struct {
	ID    string `json:"id"`
	SeqID int64  `json:"seq_id"`
	LSN   string `json:"lsn"`
}

// parseEnvelope turns one JSON line into a record of unit.
func parseEnvelope(unit string, line []byte) Record {
	var env envelope
	if err := json.Unmarshal(line, &env); err != nil || env.ID == "" {
		return Record{Unit: unit, Torn: true}
	}
	lsn, err := cdc.ParseLSN(env.LSN)
	if err != nil {
		return Record{Unit: unit, Torn: true}
	}
	return Record{Unit: unit, ID: env.ID, Pos: Pos{LSN: lsn, Seq: env.SeqID}}
}

// lineReader reads the complete lines appended to a file since the last
// read.
type lineReader struct {
	path    string
	off     int64
	partial []byte
}

// read returns the complete lines appended since the last call (a missing
// file has none yet).
func (r *lineReader) read() ([][]byte, error) {
	f, err := os.Open(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", r.path, err)
	}
	defer f.Close()
	if _, err := f.Seek(r.off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seek %s: %w", r.path, err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.path, err)
	}
	r.off += int64(len(b))
	b = append(r.partial, b...)
	var lines [][]byte
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, b[:i])
		b = b[i+1:]
	}
	r.partial = append([]byte(nil), b...)
	return lines, nil
}

// StdoutSink is a stdout sink. Its target is the stdout of every cdc
// child, in start order: one stream, one ordering unit.
type StdoutSink struct {
	name    string
	e       *Env
	readers map[*Proc]*lineReader
	closed  map[*Proc]bool // children whose output was read to the end
}

// Stdout adds a stdout sink named name.
func (e *Env) Stdout(name string) *StdoutSink {
	s := &StdoutSink{name: name, e: e, readers: map[*Proc]*lineReader{}, closed: map[*Proc]bool{}}
	e.addSink(s)
	return s
}

// Name is the sink's name.
func (s *StdoutSink) Name() string { return s.name }

// Kind is "stdout".
func (s *StdoutSink) Kind() string { return "stdout" }

// Guarantee is AtLeastOnce.
func (s *StdoutSink) Guarantee() Guarantee { return AtLeastOnce }

// Ordered is true: the lines of the children, in start order, are one stream.
func (s *StdoutSink) Ordered() bool     { return true }
func (s *StdoutSink) environ() []string { return nil }
func (s *StdoutSink) absorbed() int64   { return 0 }

func (s *StdoutSink) yaml() string {
	return fmt.Sprintf("      - name: %s\n        kind: stdout\n        %s\n", s.name, batchYAML)
}

func (s *StdoutSink) poll(ctx context.Context, fresh []string, full bool) ([]Record, error) {
	var out []Record
	for _, p := range s.e.procsSnapshot() {
		if s.closed[p] {
			continue
		}
		exited := p.Exited() // before reading: everything it wrote is then in the file
		r := s.readers[p]
		if r == nil {
			r = &lineReader{path: p.StdoutPath}
			s.readers[p] = r
		}
		lines, err := r.read()
		if err != nil {
			return out, err
		}
		for _, l := range lines {
			out = append(out, parseEnvelope("stdout", l))
		}
		if exited {
			if len(r.partial) > 0 {
				out = append(out, Record{Unit: "stdout", Torn: true}) // the last line, cut by SIGKILL
			}
			s.closed[p] = true
		}
	}
	return out, nil
}

// FileSink is a file sink writing every event to one file,
// out/<name>.jsonl in the Env's directory: one ordering unit.
type FileSink struct {
	name   string
	r      lineReader
	paused atomic.Bool
}

// File adds a file sink named name.
func (e *Env) File(name string) *FileSink {
	s := &FileSink{name: name, r: lineReader{path: filepath.Join(e.Dir, "out", name+".jsonl")}}
	e.addSink(s)
	return s
}

// Name is the sink's name.
func (s *FileSink) Name() string { return s.name }

// Kind is "file".
func (s *FileSink) Kind() string { return "file" }

// Guarantee is AtLeastOnce.
func (s *FileSink) Guarantee() Guarantee { return AtLeastOnce }

// Ordered is true: the file is one stream.
func (s *FileSink) Ordered() bool     { return true }
func (s *FileSink) environ() []string { return nil }
func (s *FileSink) absorbed() int64   { return 0 }

func (s *FileSink) yaml() string {
	return fmt.Sprintf("      - name: %s\n        kind: file\n        path: out/%s.jsonl\n        %s\n", s.name, s.name, batchYAML)
}

// Full makes the sink's file a symbolic link to /dev/full (on), so that
// every write of the sink fails with ENOSPC, a full disk, which it retries;
// off removes the link, and the sink creates the file when it writes
// again. The harness does not read the file while it is on. Call it before
// the sink first wrote: the link takes the file's place. It skips the test
// where there is no /dev/full.
func (s *FileSink) Full(t *testing.T, on bool) {
	t.Helper()
	if !on {
		mustDo(t, "remove the link to /dev/full", os.Remove(s.r.path))
		s.paused.Store(false)
		return
	}
	if fi, err := os.Stat("/dev/full"); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Skipf("no /dev/full to fill the disk with: %v", err)
	}
	s.paused.Store(true)
	mustDo(t, "make the directory of the file sink", os.MkdirAll(filepath.Dir(s.r.path), 0o755))
	mustDo(t, "link the file sink's file to /dev/full", os.Symlink("/dev/full", s.r.path))
}

func (s *FileSink) poll(ctx context.Context, fresh []string, full bool) ([]Record, error) {
	if s.paused.Load() {
		return nil, nil
	}
	lines, err := s.r.read()
	out := make([]Record, 0, len(lines))
	for _, l := range lines {
		out = append(out, parseEnvelope("file", l))
	}
	return out, err
}

// KafkaOptions configures Env.Kafka.
type KafkaOptions struct {
	// Brokers is the number of brokers. Default 1.
	Brokers int
	// Partitions of the topic faults.events, created at start. Default 4.
	Partitions int32
	// WriteTimeout is the sink's write_timeout. Default 5s.
	WriteTimeout string
}

// KafkaSink is a kafka sink producing every event to the topic
// faults.events of an in-process kfake cluster. Every broker is reached
// through a netproxy (kfake advertises the proxies' addresses in its
// metadata), so tests can reset or freeze the connections of cdc; the
// harness's own consumer dials the brokers directly. Each partition is an
// ordering unit.
type KafkaSink struct {
	name    string
	Cluster *kfake.Cluster
	// Proxies are in front of the brokers, in broker order.
	Proxies []*netproxy.Proxy
	opts    KafkaOptions

	client *kgo.Client
	mu     sync.Mutex
	recs   []Record
	next   int
	stop   context.CancelFunc
	done   chan struct{}
}

// kafkaTopic is the topic of every Kafka sink.
const kafkaTopic = "faults.events"

// Kafka adds a kafka sink named name, on a kfake cluster of its own.
func (e *Env) Kafka(name string, o KafkaOptions) *KafkaSink {
	e.t.Helper()
	if o.Brokers <= 0 {
		o.Brokers = 1
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if o.WriteTimeout == "" {
		o.WriteTimeout = "5s"
	}
	s := &KafkaSink{name: name, opts: o}
	var mu sync.Mutex
	direct := map[string]string{} // proxy address -> broker address
	listen := func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		p, err := netproxy.New(ln.Addr().String())
		if err != nil {
			ln.Close()
			return nil, err
		}
		mu.Lock()
		s.Proxies = append(s.Proxies, p)
		direct[p.Addr()] = ln.Addr().String()
		mu.Unlock()
		return &proxiedListener{Listener: ln, proxy: p}, nil
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(o.Brokers), kfake.ListenFn(listen), kfake.SeedTopics(o.Partitions, kafkaTopic))
	mustDo(e.t, "start kfake", err)
	e.t.Cleanup(c.Close)
	s.Cluster = c

	dial := func(ctx context.Context, network, host string) (net.Conn, error) {
		mu.Lock()
		if real, ok := direct[host]; ok {
			host = real
		}
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.Dialer(dial), kgo.ConsumeTopics(kafkaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	mustDo(e.t, "start the Kafka consumer", err)
	s.client = cl
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go s.consume(ctx)
	e.t.Cleanup(func() { cancel(); <-s.done; cl.Close() })
	e.addSink(s)
	return s
}

// consume collects every record of the topic until ctx ends.
func (s *KafkaSink) consume(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		fetches := s.client.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) {
			rec := Record{Unit: fmt.Sprintf("%s/%d", r.Topic, r.Partition)}
			var lsn, seq string
			for _, h := range r.Headers {
				switch h.Key {
				case "event-id":
					rec.ID = string(h.Value)
				case "lsn":
					lsn = string(h.Value)
				case "seq-id":
					seq = string(h.Value)
				}
			}
			l, err1 := cdc.ParseLSN(lsn)
			n, err2 := strconv.ParseInt(seq, 10, 64)
			if rec.ID == "" || err1 != nil || err2 != nil {
				rec.Torn = true
			}
			rec.Pos = Pos{LSN: l, Seq: n}
			s.mu.Lock()
			s.recs = append(s.recs, rec)
			s.mu.Unlock()
		})
	}
}

// Name is the sink's name.
func (s *KafkaSink) Name() string { return s.name }

// Kind is "kafka".
func (s *KafkaSink) Kind() string { return "kafka" }

// Guarantee is AtLeastOnce.
func (s *KafkaSink) Guarantee() Guarantee { return AtLeastOnce }

// Ordered is true: each partition is one stream.
func (s *KafkaSink) Ordered() bool     { return true }
func (s *KafkaSink) environ() []string { return nil }
func (s *KafkaSink) absorbed() int64   { return 0 }

func (s *KafkaSink) yaml() string {
	return fmt.Sprintf(`      - name: %s
        kind: kafka
        brokers: [%s]
        topic: %s
        write_timeout: %s
        %s
`, s.name, strings.Join(s.Cluster.ListenAddrs(), ", "), kafkaTopic, s.opts.WriteTimeout, batchYAML)
}

func (s *KafkaSink) poll(ctx context.Context, fresh []string, full bool) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]Record(nil), s.recs[s.next:]...)
	s.next = len(s.recs)
	return out, nil
}

// ResetConnections resets every connection to every broker (those of cdc
// and those of the harness's consumer, which reconnects).
func (s *KafkaSink) ResetConnections() int {
	n := 0
	for _, p := range s.Proxies {
		n += p.Reset()
	}
	return n
}

// proxiedListener is a broker's listener whose address is its proxy's, so
// that kfake advertises the proxy.
type proxiedListener struct {
	net.Listener
	proxy *netproxy.Proxy
}

// Addr is the proxy's address.
func (l *proxiedListener) Addr() net.Addr {
	a, err := net.ResolveTCPAddr("tcp", l.proxy.Addr())
	if err != nil {
		return l.Listener.Addr()
	}
	return a
}

// Close closes the proxy and the listener.
func (l *proxiedListener) Close() error {
	return errors.Join(l.proxy.Close(), l.Listener.Close())
}

// ElasticSink is an elastic sink in events mode writing every event to the
// index faults-events of an in-process esfake server. Elasticsearch keeps
// one document per event id and no order.
type ElasticSink struct {
	name    string
	Server  *esfake.Server
	waiting map[string]bool // ids the workload wrote, not yet found
	found   map[string]bool
}

// elasticIndex is the index of every Elasticsearch sink.
const elasticIndex = "faults-events"

// Elastic adds an elastic sink named name, on an esfake server of its own.
func (e *Env) Elastic(name string) *ElasticSink {
	es := esfake.New()
	e.t.Cleanup(es.Close)
	s := &ElasticSink{name: name, Server: es, waiting: map[string]bool{}, found: map[string]bool{}}
	e.addSink(s)
	return s
}

// Name is the sink's name.
func (s *ElasticSink) Name() string { return s.name }

// Kind is "elastic".
func (s *ElasticSink) Kind() string { return "elastic" }

// Guarantee is EffectivelyOnce.
func (s *ElasticSink) Guarantee() Guarantee { return EffectivelyOnce }

// Ordered is false: an index keeps no order.
func (s *ElasticSink) Ordered() bool     { return false }
func (s *ElasticSink) environ() []string { return nil }
func (s *ElasticSink) absorbed() int64   { return s.Server.Stats().ItemConflicts }

func (s *ElasticSink) yaml() string {
	return fmt.Sprintf("      - name: %s\n        kind: elastic\n        addresses: [%s]\n        index: %s\n        %s\n",
		s.name, s.Server.URL(), elasticIndex, batchYAML)
}

// poll looks up the documents of the ids the workload wrote that were not
// found yet (cheap); full reads the whole index, which also finds
// documents of events the workload does not know.
func (s *ElasticSink) poll(ctx context.Context, fresh []string, full bool) ([]Record, error) {
	for _, id := range fresh {
		if !s.found[id] {
			s.waiting[id] = true
		}
	}
	var out []Record
	if full {
		for id := range s.Server.Docs(elasticIndex) {
			if !s.found[id] {
				s.found[id] = true
				delete(s.waiting, id)
				out = append(out, Record{ID: id})
			}
		}
		return out, nil
	}
	for id := range s.waiting {
		if _, ok := s.Server.Doc(elasticIndex, id); ok {
			s.found[id] = true
			delete(s.waiting, id)
			out = append(out, Record{ID: id})
		}
	}
	return out, nil
}

// PostgresOptions configures Env.Postgres.
type PostgresOptions struct {
	// OwnProxy puts the target behind a proxy of its own (Proxy), so that
	// tests can cut the target off without touching the source. Default:
	// the target is reached through the Env's proxy, like the source.
	OwnProxy bool
	// ReadModels adds the read models of Marten's Helpdesk sample (17
	// projections, examples/helpdesk), checked by CheckReadModels.
	ReadModels bool
	// SlowApply makes every insert into faults_applied take this long
	// more (a statement trigger that sleeps), so that batches stay open
	// long enough for a test to catch cdc inside one. Default 0.
	SlowApply time.Duration
	// Gate names an event type for a projection "gate" that inserts the
	// event's id and the flag of faults_gate into faults_gated, whose check
	// constraint faults_gated_open refuses a closed gate: once the test
	// calls CloseGate, the target rejects the next event of that type for
	// good, and the sink stops just before it (on_error: stop).
	Gate string
}

// PostgresSink is a postgres sink in projections mode into a database of
// its own on the Env's cluster. Its projection "applied" inserts one row
// per event applied into faults_applied, which has no unique key: an event
// applied twice shows as two rows, and the serial column n gives the order
// of application (one ordering unit).
type PostgresSink struct {
	name string
	DB   string        // the target database
	DSN  string        // direct connection to it, for the test
	Pool *pgxpool.Pool // on DSN
	// Proxy is the proxy cdc reaches the target through: its own with
	// PostgresOptions.OwnProxy, else the Env's.
	Proxy *netproxy.Proxy

	e      *Env
	opts   PostgresOptions
	last   int64
	paused atomic.Bool
	cdcDSN string
}

// appliedDDL is the table of the "applied" projection.
const appliedDDL = `CREATE TABLE faults_applied (
  n bigserial PRIMARY KEY,
  event_id text NOT NULL,
  lsn pg_lsn NOT NULL,
  seq_id bigint NOT NULL,
  stream_id text NOT NULL,
  version bigint NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
)`

// appliedSQL is the statement of the "applied" projection.
const appliedSQL = `insert into faults_applied (event_id, lsn, seq_id, stream_id, version) values ($id, $lsn, $seq_id, $stream_id, $version)`

// gateSQL is the statement of the "gate" projection (PostgresOptions.Gate).
const gateSQL = `insert into faults_gated (event_id, open) select $id, open from faults_gate`

// CloseGate makes the target reject the next event of the type
// PostgresOptions.Gate names (a check constraint).
func (s *PostgresSink) CloseGate() {
	t := s.e.t
	t.Helper()
	if s.opts.Gate == "" {
		t.Fatalf("sink %s has no gate", s.name)
	}
	_, err := s.Pool.Exec(t.Context(), `UPDATE faults_gate SET open = false`)
	mustDo(t, "close the gate of sink "+s.name, err)
}

// Postgres adds a postgres sink named name, into a new database of the
// Env's cluster.
func (e *Env) Postgres(name string, o PostgresOptions) *PostgresSink {
	e.t.Helper()
	s := &PostgresSink{name: name, e: e, opts: o, Proxy: e.Proxy}
	s.DSN = pgtest.NewDatabase(e.t, e.Cluster)
	s.DB = databaseOf(e.t, s.DSN)
	s.Pool = newPool(e.t, s.DSN)
	ddl := appliedDDL
	if o.ReadModels {
		ddl += ";\n" + helpdesk.DDL
	}
	if o.Gate != "" {
		ddl += `;
CREATE TABLE faults_gate (open boolean NOT NULL);
INSERT INTO faults_gate VALUES (true);
CREATE TABLE faults_gated (event_id text NOT NULL, open boolean NOT NULL CONSTRAINT faults_gated_open CHECK (open))`
	}
	if o.SlowApply > 0 {
		ddl += fmt.Sprintf(`;
CREATE FUNCTION faults_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(%f); RETURN NULL; END $$;
CREATE TRIGGER faults_slow AFTER INSERT ON faults_applied FOR EACH STATEMENT EXECUTE FUNCTION faults_slow()`, o.SlowApply.Seconds())
	}
	_, err := s.Pool.Exec(e.t.Context(), ddl)
	mustDo(e.t, "create the tables of sink "+name, err)
	if o.OwnProxy {
		s.Proxy = newProxy(e.t, e.Cluster.Port())
	}
	s.cdcDSN = e.proxiedDSN(s.DB, s.Proxy, nil)
	e.addSink(s)
	return s
}

// Name is the sink's name.
func (s *PostgresSink) Name() string { return s.name }

// Kind is "postgres".
func (s *PostgresSink) Kind() string { return "postgres" }

// Guarantee is ExactlyOnce.
func (s *PostgresSink) Guarantee() Guarantee { return ExactlyOnce }

// Ordered is true: faults_applied.n is the order of application.
func (s *PostgresSink) Ordered() bool   { return true }
func (s *PostgresSink) absorbed() int64 { return 0 }

// envVar is the environment variable holding the DSN cdc uses.
func (s *PostgresSink) envVar() string {
	return "FAULTS_TARGET_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func (s *PostgresSink) environ() []string { return []string{s.envVar() + "=" + s.cdcDSN} }

func (s *PostgresSink) yaml() string {
	projections := []map[string]any{{"name": "applied", "on": []string{"*"}, "sql": appliedSQL}}
	if s.opts.Gate != "" {
		projections = append(projections, map[string]any{"name": "gate", "on": []string{s.opts.Gate}, "sql": gateSQL})
	}
	if s.opts.ReadModels {
		for _, r := range helpdesk.Projections() {
			projections = append(projections, map[string]any{"name": r.Name, "on": r.On, "sql": r.SQL})
		}
	}
	b, err := yaml.Marshal(map[string]any{"projections": projections})
	if err != nil {
		panic(fmt.Sprintf("faults: encode projections: %v", err)) // cannot happen: strings and lists
	}
	return fmt.Sprintf("      - name: %s\n        kind: postgres\n        dsn: ${%s}\n        %s\n", s.name, s.envVar(), batchYAML) +
		indent(string(b), "        ")
}

// PausePolling stops (true) or resumes (false) the harness's reads of the
// target, e.g. while the test renames its database.
func (s *PostgresSink) PausePolling(on bool) { s.paused.Store(on) }

// Applied counts the rows of faults_applied (events applied, duplicates
// included), or -1 when the target cannot be read.
func (s *PostgresSink) Applied(ctx context.Context) int {
	var n int
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM faults_applied`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// Sessions counts cdc's sessions in the target (application_name cdc), or
// -1 when the target cannot say. Once cdc's connections are cut, they end
// only after the server finishes what it had received (a COMMIT included).
func (s *PostgresSink) Sessions(ctx context.Context) int {
	var n int
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'cdc'`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// Applying reports whether a session of the target is inside a
// transaction that inserts into faults_applied (cdc applying a batch).
func (s *PostgresSink) Applying(ctx context.Context) bool {
	var n int
	err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
AND pid <> pg_backend_pid() AND xact_start IS NOT NULL AND query ILIKE '%faults_applied%'`).Scan(&n)
	return err == nil && n > 0
}

// IdleInTransaction counts the sessions in the target that sit idle inside
// a transaction (a paused cdc caught in the middle of a batch), or -1 when
// the target cannot say.
func (s *PostgresSink) IdleInTransaction(ctx context.Context) int {
	var n int
	err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'`).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}

func (s *PostgresSink) poll(ctx context.Context, fresh []string, full bool) ([]Record, error) {
	if s.paused.Load() && !full {
		return nil, nil
	}
	rows, err := s.Pool.Query(ctx, `SELECT n, event_id, lsn::text, seq_id FROM faults_applied WHERE n > $1 ORDER BY n`, s.last)
	if err != nil {
		return nil, fmt.Errorf("read faults_applied of sink %s: %w", s.name, err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var n, seq int64
		var id, lsn string
		if err := rows.Scan(&n, &id, &lsn, &seq); err != nil {
			return out, fmt.Errorf("read faults_applied of sink %s: %w", s.name, err)
		}
		l, err := cdc.ParseLSN(lsn)
		if err != nil {
			return out, fmt.Errorf("read faults_applied of sink %s: lsn %q: %w", s.name, lsn, err)
		}
		s.last = n
		out = append(out, Record{Unit: "faults_applied", ID: id, Pos: Pos{LSN: l, Seq: seq}})
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("read faults_applied of sink %s: %w", s.name, err)
	}
	return out, nil
}

// CheckReadModels fails the test unless the helpdesk read models of the
// target equal a recomputation from mt_events (PostgresOptions.ReadModels).
func (s *PostgresSink) CheckReadModels() {
	t := s.e.t
	t.Helper()
	if !s.opts.ReadModels {
		t.Fatalf("sink %s has no read models", s.name)
	}
	ctx := t.Context()
	events, err := marten.Events(ctx, s.e.Pool, Schema)
	mustDo(t, "read mt_events", err)
	got, err := helpdesk.Read(ctx, s.Pool)
	mustDo(t, "read the read models of sink "+s.name, err)
	if diff := helpdesk.Diff(helpdesk.Recompute(events), got); diff != "" {
		t.Fatalf("sink %s: the read models differ from a recomputation from mt_events:\n%s", s.name, diff)
	}
}

// Stored returns the number of records in the topic (the sum of its
// partitions' high watermarks), as the broker counts them.
func (s *KafkaSink) Stored() int64 {
	var n int64
	for _, p := range s.Cluster.PartitionInfos(kafkaTopic) {
		n += p.HighWatermark
	}
	return n
}
