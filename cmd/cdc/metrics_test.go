package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc/internal/pgtest"
)

// TestMetricsEndpoints: --metrics-addr serves /healthz, /readyz and the
// Prometheus metrics of SPEC §7.
func TestMetricsEndpoints(t *testing.T) {
	dsn, pool := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	c := startCDC(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, "run", "--config", cfg, "--metrics-addr", "127.0.0.1:0", "--log-format", "json")
	var addr string
	pgtest.Eventually(t, 15*time.Second, func() bool {
		c.wait0()
		for _, line := range strings.Split(c.stderr(), "\n") {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving metrics" {
				addr = l.Addr
			}
		}
		return addr != "" && holderPID(t, pool) == c.pid()
	}, "metrics served and streaming")
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
	} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	c.stopOK()
}
