package main

import (
	"bufio"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

// TestMetricsEndpoints: --metrics-addr serves /healthz, /readyz and the
// Prometheus metrics of SPEC §7.
func TestMetricsEndpoints(t *testing.T) {
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	c := startCDC(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, "run", "--config", cfg, "--metrics-addr", "127.0.0.1:0", "--log-format", "json")
	addr := metricsAddr(t, c)
	pgtest.Eventually(t, 15*time.Second, func() bool { c.wait0(); return holderPID(t, pool) == c.pid() }, "streaming")
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	// The slot shows as held a moment before the stream reports streaming.
	pgtest.Eventually(t, 10*time.Second, func() bool {
		code, body := get("/readyz")
		return code == 200 && strings.Contains(body, "pipeline helpdesk: streaming")
	}, "/readyz says streaming")
	w := startWriters(t, pool, 1, time.Millisecond)
	pgtest.Eventually(t, 15*time.Second, func() bool { return countLines(c.out) >= 20 }, "delivers")
	w.halt()
	committed, _ := w.snapshot()
	pgtest.Eventually(t, 15*time.Second, func() bool { return countLines(c.out) >= len(committed) }, "delivers everything")
	var body string
	pgtest.Eventually(t, 10*time.Second, func() bool {
		_, body = get("/metrics")
		return strings.Contains(body, `cdc_events_delivered_total{pipeline="helpdesk",sink="out"} `+strconv.Itoa(len(committed)))
	}, "delivered counter reaches %d", len(committed))
	for _, m := range []string{
		`cdc_batches_total{pipeline="helpdesk",sink="out"}`,
		`cdc_sink_batch_duration_seconds_bucket{pipeline="helpdesk",sink="out",le=`,
		`cdc_sink_lag_bytes{pipeline="helpdesk",sink="out"}`,
		`cdc_sink_lag_seconds{pipeline="helpdesk",sink="out"} 0`,
		`cdc_slot_retained_wal_bytes{pipeline="helpdesk"}`,
		`cdc_replication_active{pipeline="helpdesk"} 1`,
		`cdc_dead_letters_total{pipeline="helpdesk",sink="out"} 0`,
		`cdc_slot_wal_status{pipeline="helpdesk",status="reserved"} 1`,
		`cdc_slot_wal_status{pipeline="helpdesk",status="lost"} 0`,
	} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	// The test cluster keeps max_slot_wal_keep_size at -1: PostgreSQL
	// reports safe_wal_size NULL, and cdc exports nothing rather than a
	// made-up figure.
	if strings.Contains(body, "cdc_slot_safe_wal_size_bytes{") {
		t.Errorf("/metrics has cdc_slot_safe_wal_size_bytes with max_slot_wal_keep_size unlimited")
	}
	c.stopOK()
}

// metricsAddr waits for c to log the address it serves metrics on.
func metricsAddr(t *testing.T, c *child) string {
	t.Helper()
	return loggedAddr(t, c, "serving metrics")
}

// loggedAddr waits for c to log the record msg with an addr and returns it.
func loggedAddr(t *testing.T, c *child, msg string) string {
	t.Helper()
	var addr string
	pgtest.Eventually(t, 15*time.Second, func() bool {
		c.wait0()
		for _, line := range strings.Split(c.stderr(), "\n") {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg {
				addr = l.Addr
			}
		}
		return addr != ""
	}, "%s", msg)
	return addr
}

// documentedMetrics reads the table of README.md's "Metrics" section:
// metric name -> its label names, sorted.
func documentedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Metrics\n")
	if !ok {
		t.Fatal(`README.md has no "### Metrics" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `(cdc_[a-z_]+)` \\| ([^|]*) \\|")
	label := regexp.MustCompile("`([a-z_]+)`")
	out := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		var labels []string
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			labels = append(labels, l[1])
		}
		slices.Sort(labels)
		out[m[1]] = labels
	}
	if len(out) < 10 {
		t.Fatalf("README.md's Metrics table lists %d metrics: %v", len(out), out)
	}
	return out
}

// exposition is what a scrape of /metrics exports, by metric family.
type exposition struct {
	labels map[string][]string            // family -> label names, sorted (without a histogram's le)
	series map[string]map[string]struct{} // family -> its series' label sets, as k="v",...
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseExposition reads Prometheus's text format: "# TYPE" lines name the
// families; a histogram's _bucket, _sum and _count samples belong to it.
func parseExposition(t *testing.T, body string) exposition {
	t.Helper()
	e := exposition{labels: map[string][]string{}, series: map[string]map[string]struct{}{}}
	types := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		family := m[1]
		if _, ok := types[family]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(family, suffix); ok && types[base] == "histogram" {
					family = base
				}
			}
		}
		var names, pairs []string
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			if l[1] == "le" && types[family] == "histogram" {
				continue
			}
			names = append(names, l[1])
			pairs = append(pairs, l[1]+"="+strconv.Quote(l[2]))
		}
		slices.Sort(names)
		slices.Sort(pairs)
		e.labels[family] = names
		if e.series[family] == nil {
			e.series[family] = map[string]struct{}{}
		}
		e.series[family][strings.Join(pairs, ",")] = struct{}{}
	}
	return e
}

// TestMetricsFromStart: the first scrape of a cdc run that has just started,
// before any event, exports every metric README.md documents, with its
// labels, and no cdc_ metric it does not document. The cluster limits
// max_slot_wal_keep_size so that PostgreSQL reports a safe_wal_size.
func TestMetricsFromStart(t *testing.T) {
	cluster, err := pgcluster.Start(t.Context(), pgcluster.Options{Settings: map[string]string{"max_slot_wal_keep_size": "1GB"}})
	mustDo(t, "start a cluster", err)
	t.Cleanup(func() { _ = cluster.Stop() })
	dsn := pgtest.NewMartenDatabase(t, cluster, "helpdesk")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	c := startCDC(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, "run", "--config", cfg, "--metrics-addr", "127.0.0.1:0", "--log-format", "json")
	addr := metricsAddr(t, c)
	// The listener is up while the pipeline opens; its series exist once
	// it is open.
	pgtest.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return !strings.Contains(string(b), "starting")
	}, "the pipeline is open")

	resp, err := http.Get("http://" + addr + "/metrics")
	mustDo(t, "scrape /metrics", err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	mustDo(t, "read /metrics", err)
	got := parseExposition(t, string(b))

	documented := documentedMetrics(t)
	for name, labels := range documented {
		have, ok := got.labels[name]
		switch {
		case !ok:
			t.Errorf("%s (README.md) is not exported by the first scrape", name)
		case !slices.Equal(have, labels):
			t.Errorf("%s has labels %v, README.md says %v", name, have, labels)
		}
	}
	for name := range got.labels {
		if _, ok := documented[name]; strings.HasPrefix(name, "cdc_") && !ok {
			t.Errorf("%s is exported but not in README.md's Metrics table", name)
		}
	}
	for name, labels := range documented {
		want := `pipeline="helpdesk"`
		if slices.Contains(labels, "sink") {
			want += `,sink="out"`
		}
		found := false
		for series := range got.series[name] {
			found = found || strings.HasPrefix(series, want) || strings.HasSuffix(series, want)
		}
		if !found && got.labels[name] != nil {
			t.Errorf("%s has no series for %s: %v", name, want, slices.Collect(maps.Keys(got.series[name])))
		}
	}
	statuses := slices.Sorted(maps.Keys(got.series["cdc_slot_wal_status"]))
	want := []string{`pipeline="helpdesk",status="extended"`, `pipeline="helpdesk",status="lost"`,
		`pipeline="helpdesk",status="reserved"`, `pipeline="helpdesk",status="unreserved"`}
	if !slices.Equal(statuses, want) {
		t.Errorf("cdc_slot_wal_status series %v, want %v", statuses, want)
	}
	if !strings.Contains(string(b), `cdc_slot_wal_status{pipeline="helpdesk",status="reserved"} 1`) {
		t.Errorf("a fresh slot's wal_status is not reserved")
	}
	if t.Failed() {
		t.Logf("the first scrape of /metrics:\n%s", b)
	}
	// Stop once streaming, as an operator would, not in the middle of the start.
	pgtest.Eventually(t, 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && strings.Contains(string(body), "pipeline helpdesk: streaming")
	}, "/readyz says streaming")
	c.stopOK()
}

// TestAdminWhileStarting: while cdc waits for an unreachable database, the
// admin listener already answers: /healthz 200 (alive: a liveness probe
// must not restart it), /readyz 503 "starting".
func TestAdminWhileStarting(t *testing.T) {
	down := closedAddr(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	c := startCDC(t, dir, "run", []string{"CDC_TEST_DSN=postgres://cdc@" + down + "/helpdesk"}, "run", "--config", cfg, "--metrics-addr", "127.0.0.1:0", "--log-format", "json")
	addr := metricsAddr(t, c)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		mustDo(t, "GET "+path, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while starting: %d", code)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body != "pipeline helpdesk: starting: waiting for the databases\n" {
		t.Fatalf("/readyz while starting: %d %q", code, body)
	}
	if code := c.stop(); code != 0 {
		t.Fatalf("SIGTERM while starting: exit %d\n%s", code, c.stderr())
	}
}
