package faults

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/internal/netproxy"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

// Schema is the schema of Marten's tables in every test database
// (Marten's DatabaseSchemaName).
const Schema = "helpdesk"

// Pipeline is the name of the pipeline of every configuration.
const Pipeline = "helpdesk"

// slots numbers the replication slots: slot names are cluster-wide, and
// tests share a cluster.
var slots atomic.Int64

// cleanupTimeout bounds each cleanup step.
const cleanupTimeout = 30 * time.Second

// Options configures NewEnv.
type Options struct {
	// OwnCluster gives the test a cluster of its own, for faults that hit
	// the whole server (Crash, Restart). Default: the shared cluster.
	OwnCluster bool
	// Settings are server settings of the own cluster (see
	// pgcluster.Options.Settings); ignored without OwnCluster.
	Settings map[string]string
	// SourceParams are extra query parameters of the DSN cdc uses for the
	// source, e.g. url.Values{"options": {"-c wal_sender_timeout=2s"}}.
	SourceParams url.Values
	// CheckpointProxy gives cdc's checkpoint connections (checkpoints.dsn:
	// the same database) a proxy of their own, Env.CheckpointProxy, so that
	// a test can break the replication path and leave the checkpoints'
	// alone. Default: they share the source's proxy.
	CheckpointProxy bool
}

// Env is one fault test's world: a Marten store, the proxy through which
// cdc reaches PostgreSQL, the sinks, the cdc children, the workload and the
// watcher. Its methods may be called from the test's goroutine only,
// except where said.
type Env struct {
	t       *testing.T
	log     *slog.Logger
	Cluster *pgcluster.Cluster // the cluster holding the store
	Dir     string             // the cdc children's working directory
	DB      string             // the store's database name
	DSN     string             // direct connection to the store, for the tests' own use
	Pool    *pgxpool.Pool      // on DSN
	Proxy   *netproxy.Proxy    // in front of Cluster; cdc's source connections go through it
	Slot    string             // the pipeline's replication slot, unique in the cluster
	// CheckpointProxy is in front of Cluster for cdc's checkpoint
	// connections (Options.CheckpointProxy); nil when they use Proxy.
	CheckpointProxy *netproxy.Proxy

	sourceParams url.Values
	sinks        []Sink
	names        map[string]bool
	configs      int

	mu       sync.Mutex // guards procs and workload
	procs    []*Proc
	workload *Workload

	watch  *watcher
	faults []*Fault
	report *Report // the last Check's, written to -faults.report
}

// NewEnv makes a test's world: a database with Marten's schema in schema
// helpdesk (on the shared cluster, or on a cluster of its own with
// opts.OwnCluster), a pool on it, a proxy in front of the cluster for cdc,
// and a working directory. Everything is torn down when the test ends,
// cdc children first.
func NewEnv(t *testing.T, opts Options) *Env {
	t.Helper()
	e := &Env{t: t, Dir: t.TempDir(), names: map[string]bool{}, sourceParams: opts.SourceParams,
		Slot: fmt.Sprintf("faults_%d", slots.Add(1))}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	e.log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	e.Cluster = pg
	if opts.OwnCluster {
		c, err := pgcluster.Start(t.Context(), pgcluster.Options{Settings: opts.Settings, Logger: e.log})
		if err != nil {
			t.Fatalf("start a cluster of the test's own: %v", err)
		}
		t.Cleanup(func() {
			if err := c.Stop(); err != nil {
				t.Errorf("stop the test's cluster: %v", err)
			}
		})
		e.Cluster = c
	}
	e.DSN = pgtest.NewMartenDatabase(t, e.Cluster, Schema)
	e.DB = databaseOf(t, e.DSN)
	t.Cleanup(func() { e.dropSlots(e.DB) })
	e.Pool = newPool(t, e.DSN)
	e.Proxy = newProxy(t, e.Cluster.Port())
	if opts.CheckpointProxy {
		e.CheckpointProxy = newProxy(t, e.Cluster.Port())
	}
	e.watch = newWatcher(e)
	t.Cleanup(e.writeReport)
	return e
}

// newProxy starts a proxy in front of 127.0.0.1:port, closed when the test
// ends.
func newProxy(t *testing.T, port int) *netproxy.Proxy {
	t.Helper()
	p, err := netproxy.New(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("start a proxy: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	return p
}

// newPool opens a pool on dsn, closed when the test ends.
func newPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatalf("open a pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// databaseOf returns the database name of a pgcluster DSN.
func databaseOf(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// SourceDSN is the DSN cdc uses for the source: the store's database
// through the proxy, with Options.SourceParams.
func (e *Env) SourceDSN() string { return e.proxiedDSN(e.DB, e.Proxy, e.sourceParams) }

// proxiedDSN is the DSN of database db through proxy p.
func (e *Env) proxiedDSN(db string, p *netproxy.Proxy, params url.Values) string {
	q := url.Values{"sslmode": {"disable"}}
	for k, v := range params {
		q[k] = v
	}
	// pgconn does not read '+' in a query value as a space: use %20.
	raw := strings.ReplaceAll(q.Encode(), "+", "%20")
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: p.Addr(), Path: "/" + db, RawQuery: raw}
	return u.String()
}

// dropSlots terminates the walsenders of db's replication slots and drops
// the slots, so that the database can be dropped. It tolerates a cluster
// that is down (an own cluster is thrown away anyway).
func (e *Env) dropSlots(db string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, e.Cluster.DSN(""))
	if err != nil {
		return
	}
	defer pool.Close()
	for ctx.Err() == nil {
		var left int
		err := pool.QueryRow(ctx, `WITH t AS (SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL),
d AS (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active)
SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM d)`, db).Scan(&left)
		if err == nil {
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, db).Scan(&n); err == nil && n == 0 {
				return
			}
		}
		tick := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	e.t.Errorf("replication slots of %s still there after %v", db, cleanupTimeout)
}

// addSink registers a sink; names must be unique.
func (e *Env) addSink(s Sink) {
	e.t.Helper()
	if e.names[s.Name()] {
		e.t.Fatalf("two sinks named %s", s.Name())
	}
	if e.configs > 0 {
		e.t.Fatalf("sink %s added after WriteConfig: add every sink first", s.Name())
	}
	e.names[s.Name()] = true
	e.sinks = append(e.sinks, s)
}

// Sinks returns the sinks added so far.
func (e *Env) Sinks() []Sink { return e.sinks }

// Holder returns the pid of the cdc process that holds the slot (from the
// application_name cdc reports, "cdc helpdesk host:pid"), or 0 when no
// process holds it or the server cannot say.
func (e *Env) Holder() int {
	ctx, cancel := context.WithTimeout(e.t.Context(), 5*time.Second)
	defer cancel()
	var app *string
	err := e.Pool.QueryRow(ctx, `SELECT r.application_name FROM pg_replication_slots s
JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1`, e.Slot).Scan(&app)
	if err != nil || app == nil {
		return 0
	}
	i := strings.LastIndexByte(*app, ':')
	if i < 0 {
		return 0
	}
	pid, err := strconv.Atoi((*app)[i+1:])
	if err != nil {
		return 0
	}
	return pid
}

// Eventually polls cond every 10ms until it holds, and fails the test with
// the message if it has not within timeout. Use it to synchronise with
// the system under test; never sleep.
func (e *Env) Eventually(timeout time.Duration, cond func() bool, msg string, args ...any) {
	e.t.Helper()
	pgtest.Eventually(e.t, timeout, func() bool {
		e.checkChildren()
		return cond()
	}, msg, args...)
}

// checkChildren fails the test when a cdc child exited that was not asked
// to, or a writer reported an error it should not have.
func (e *Env) checkChildren() {
	e.t.Helper()
	e.mu.Lock()
	procs := append([]*Proc(nil), e.procs...)
	e.mu.Unlock()
	for _, p := range procs {
		if p.exitedUnasked() {
			e.t.Fatalf("cdc %s exited unasked: %v\nstderr:\n%s", p.Tag, p.err, tailText(p.Stderr(), 40))
		}
	}
}

// lazy formats the value of a function when a failure message is
// printed, not when the wait begins.
type lazy func() any

func (l lazy) String() string { return fmt.Sprint(l()) }

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// tailText returns the last n lines of s.
func tailText(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mustDo fails the test when err is not nil, saying what was being done.
func mustDo(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// envList returns the environment of a cdc child: the test's own plus
// the variables the configuration refers to.
func (e *Env) envList() []string {
	env := append(os.Environ(), "FAULTS_SOURCE_DSN="+e.SourceDSN())
	if e.CheckpointProxy != nil {
		env = append(env, "FAULTS_CHECKPOINTS_DSN="+e.proxiedDSN(e.DB, e.CheckpointProxy, nil))
	}
	for _, s := range e.sinks {
		env = append(env, s.environ()...)
	}
	return env
}
