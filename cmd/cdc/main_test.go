package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

// TestMain doubles as the cdc command: the end-to-end tests run this test
// binary as a child process with CDC_TEST_MAIN=1, so they exercise the real
// main (signals, exit codes, stdout) without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("CDC_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(pgtest.Run(m, &pg))
}

// child is a cdc process started by a test.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    string // file receiving stdout
	errOut string // file receiving stderr
	done   chan struct{}
	err    error
}

// startCDC runs `cdc args...` as a child process with env added to the
// environment; stdout and stderr go to files in dir named after tag.
func startCDC(t *testing.T, dir, tag string, env []string, args ...string) *child {
	t.Helper()
	c := &child{t: t, out: filepath.Join(dir, tag+".out"), errOut: filepath.Join(dir, tag+".err"), done: make(chan struct{})}
	stdout, err := os.Create(c.out)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(c.errOut)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(os.Args[0], args...)
	c.cmd.Dir = dir
	c.cmd.Env = append(append(os.Environ(), "CDC_TEST_MAIN=1"), env...)
	c.cmd.Stdout, c.cmd.Stderr = stdout, stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			b, _ := os.ReadFile(c.errOut)
			t.Logf("%s stderr:\n%s", tag, b)
		}
	})
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// startStreaming is startCDC for `cdc run --config cfg` that returns once
// this process streams from the helpdesk slot of the database of pool.
func startStreaming(t *testing.T, dir, tag string, env []string, cfg string, pool *pgxpool.Pool) *child {
	t.Helper()
	c := startCDC(t, dir, tag, env, "run", "--config", cfg)
	pgtest.Eventually(t, 15*time.Second, func() bool { return holderPID(t, pool) == c.pid() || c.wait0() }, "%s streams", tag)
	return c
}

// kill ends the process with SIGKILL: no flush, no checkpoint.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-c.done
}

// stop sends SIGTERM and returns the exit code.
func (c *child) stop() int {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	return c.wait(30 * time.Second)
}

// stopOK sends SIGTERM and fails the test unless the process exits 0.
func (c *child) stopOK() {
	c.t.Helper()
	if code := c.stop(); code != 0 {
		c.t.Fatalf("cdc exited %d after SIGTERM", code)
	}
}

// wait waits for the process to exit and returns its exit code.
func (c *child) wait(timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("cdc did not exit within %v", timeout)
	}
	var exit *exec.ExitError
	if errors.As(c.err, &exit) {
		return exit.ExitCode()
	}
	if c.err != nil {
		c.t.Fatal(c.err)
	}
	return 0
}

func (c *child) stderr() string {
	b, _ := os.ReadFile(c.errOut)
	return string(b)
}

// delivered is one line of the stdout sink.
type delivered struct {
	ID       string `json:"id"`
	SeqID    int64  `json:"seq_id"`
	StreamID string `json:"stream_id"`
	Version  int64  `json:"version"`
	Type     string `json:"type"`
	LSN      string `json:"lsn"`
	lsn      cdc.LSN
}

// readOutput parses the JSON lines a cdc process wrote. A last line cut short
// by SIGKILL is ignored.
func readOutput(t *testing.T, path string) []delivered {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []delivered
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var d delivered
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			continue // a torn last line
		}
		if d.lsn, err = cdc.ParseLSN(d.LSN); err != nil {
			t.Fatalf("line with bad lsn %q", d.LSN)
		}
		out = append(out, d)
	}
	return out
}

// readFile returns the contents of path.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	mustDo(t, "read "+path, err)
	return string(b)
}

// stdoutLines maps event ids to the lines the stdout sink printed.
func stdoutLines(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		for _, line := range strings.Split(strings.TrimSpace(readFile(t, p)), "\n") {
			var d delivered
			if json.Unmarshal([]byte(line), &d) == nil {
				out[d.ID] = line
			}
		}
	}
	return out
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// writeConfig writes a configuration for the Marten store at dsn (schema
// helpdesk), with one stdout sink, and returns its path. The DSN goes
// through the environment, as a password would.
func writeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	cfg := `pipelines:
  - name: helpdesk
    source:
      dsn: ${CDC_TEST_DSN}
      schema: helpdesk
    standby_retry: 100ms
    status_interval: 200ms
    sinks:
      - name: out
        kind: stdout
        batch: {max_events: 50, max_wait: 5ms}
` + extra
	path := filepath.Join(dir, "cdc.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writers append helpdesk events to schema helpdesk through
// mt_quick_append_events from several goroutines until stopped; a tenth of
// the transactions roll back and some commit late.
type writers struct {
	mu         sync.Mutex
	committed  map[string]bool
	rolledBack map[string]bool
	stop       context.CancelFunc
	wg         sync.WaitGroup
	errs       chan error
}

func startWriters(t *testing.T, pool *pgxpool.Pool, n int, pause time.Duration) *writers {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{committed: map[string]bool{}, rolledBack: map[string]bool{}, stop: cancel, errs: make(chan error, n)}
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			hd := marten.NewHelpdesk(rng)
			for ctx.Err() == nil {
				if err := w.one(ctx, pool, hd, rng); err != nil {
					if ctx.Err() == nil {
						w.errs <- err
					}
					return
				}
				time.Sleep(pause)
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

func (w *writers) one(ctx context.Context, pool *pgxpool.Pool, hd *marten.Helpdesk, rng *mrand.Rand) error {
	stream, events := hd.Next()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, _, err := marten.QuickAppend(ctx, tx, "helpdesk", stream, "incident", marten.DefaultTenantID, events); err != nil {
		return err
	}
	if rng.IntN(10) == 0 {
		if err := tx.Rollback(ctx); err != nil {
			return err
		}
		w.mu.Lock()
		for _, e := range events {
			w.rolledBack[e.ID] = true
		}
		w.mu.Unlock()
		return nil
	}
	if rng.IntN(10) == 0 {
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
	}
	// Commit with a context that is not cancelled by halt: once the
	// decision to commit is taken, the test must know the outcome.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	w.mu.Lock()
	for _, e := range events {
		w.committed[e.ID] = true
	}
	w.mu.Unlock()
	return nil
}

// halt stops the writers and returns the committed event ids.
func (w *writers) halt() {
	w.stop()
	w.wg.Wait()
}

func (w *writers) snapshot() (committed, rolledBack map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	committed, rolledBack = make(map[string]bool, len(w.committed)), make(map[string]bool, len(w.rolledBack))
	for k := range w.committed {
		committed[k] = true
	}
	for k := range w.rolledBack {
		rolledBack[k] = true
	}
	return committed, rolledBack
}

// finish stops the writers, fails the test if one failed, and returns the
// event ids committed and rolled back.
func (w *writers) finish(t *testing.T) (committed, rolledBack map[string]bool) {
	t.Helper()
	w.halt()
	w.check(t)
	return w.snapshot()
}

func (w *writers) check(t *testing.T) {
	t.Helper()
	select {
	case err := <-w.errs:
		t.Fatalf("writer: %v", err)
	default:
	}
}

// martenStore makes a database with Marten's schema in schema helpdesk and
// returns its DSN and a pool.
func martenStore(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	dsn := pgtest.NewMartenDatabase(t, pg, "helpdesk")
	return dsn, storePool(t, dsn)
}

// checkpointOf reads the sink's checkpoint row.
func checkpointOf(t *testing.T, pool *pgxpool.Pool, sink string) (cdc.Position, bool) {
	t.Helper()
	var lsn string
	var idx int64
	err := pool.QueryRow(t.Context(), `SELECT lsn::text, tx_index FROM helpdesk.cdc_checkpoints WHERE pipeline = 'helpdesk' AND sink = $1`, sink).Scan(&lsn, &idx)
	if err != nil {
		return cdc.Position{}, false
	}
	l, err := cdc.ParseLSN(lsn)
	if err != nil {
		t.Fatal(err)
	}
	return cdc.Position{LSN: l, Index: uint32(idx)}, true
}

// positions assigns each delivered event its position: the commit LSN, and
// its index within the transaction, which for one quick append is its
// version minus the first version the transaction wrote.
func positions(all ...[]delivered) map[string]cdc.Position {
	first := map[cdc.LSN]int64{}
	for _, out := range all {
		for _, d := range out {
			if v, ok := first[d.lsn]; !ok || d.Version < v {
				first[d.lsn] = d.Version
			}
		}
	}
	pos := map[string]cdc.Position{}
	for _, out := range all {
		for _, d := range out {
			pos[d.ID] = cdc.Position{LSN: d.lsn, Index: uint32(d.Version - first[d.lsn])}
		}
	}
	return pos
}

// checkStream fails unless out is in strictly increasing position order.
func checkStream(t *testing.T, name string, out []delivered, pos map[string]cdc.Position) {
	t.Helper()
	for i := 1; i < len(out); i++ {
		if pos[out[i].ID].Compare(pos[out[i-1].ID]) <= 0 {
			t.Fatalf("%s: line %d at %s after %s: not in commit order, or repeated", name, i, pos[out[i].ID], pos[out[i-1].ID])
		}
	}
}

// holderPID returns the pid of the cdc process holding the helpdesk slot
// (from the application_name it reports), or 0.
func holderPID(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var app *string
	err := pool.QueryRow(t.Context(), `SELECT r.application_name FROM pg_replication_slots s
JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = 'cdc_helpdesk'`).Scan(&app)
	if err != nil || app == nil {
		return 0
	}
	i := strings.LastIndexByte(*app, ':')
	if i < 0 {
		return 0
	}
	var pid int
	if _, err := fmt.Sscan((*app)[i+1:], &pid); err != nil {
		return 0
	}
	return pid
}

var interruptSignal = os.Interrupt

// allDelivered reports whether every committed event appears in the output
// files together.
func allDelivered(t *testing.T, committed map[string]bool, files ...string) bool {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range files {
		for _, d := range readOutput(t, f) {
			seen[d.ID] = true
		}
	}
	for id := range committed {
		if !seen[id] {
			return false
		}
	}
	return true
}

// closedAddr returns a local address nothing listens on: connections to it
// are refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustDo(t, "listen", err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
