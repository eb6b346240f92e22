package main

import (
	"bufio"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/pgtest"
)

// BenchmarkLiveLatency runs cdc with a stdout sink and the default batch
// policy, appends one event per transaction at a steady pace (every 100 ms,
// and as close to every millisecond as one client goes), and reports the
// latency from the append's commit returning to cdc printing the event's
// line (p50, p90, max).
//
//	go test ./cmd/cdc -run '^$' -bench LiveLatency -benchtime 1x
func BenchmarkLiveLatency(b *testing.B) {
	for _, tc := range []struct {
		name   string
		events int
		every  time.Duration
	}{
		{"every_100ms", 50, 100 * time.Millisecond},
		{"every_1ms", 2000, time.Millisecond},
	} {
		b.Run(tc.name, func(b *testing.B) { benchLatency(b, tc.events, tc.every) })
	}
}

func benchLatency(b *testing.B, events int, every time.Duration) {
	dsn := pgtest.NewMartenDatabase(b, pg, "helpdesk")
	pool, err := pgxpool.New(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "cdc.yaml")
	if err := os.WriteFile(cfg, []byte(`pipelines:
  - name: helpdesk
    source:
      dsn: ${CDC_TEST_DSN}
      schema: helpdesk
    sinks:
      - name: out
        kind: stdout
`), 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		metricsAddr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(os.Args[0], "run", "--config", cfg, "--log-level", "warn", "--metrics-addr", metricsAddr)
		cmd.Env = append(os.Environ(), "CDC_TEST_MAIN=1", "CDC_TEST_DSN="+dsn)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		printed := map[string]time.Time{}
		lines := make(chan struct{}, 1)
		go func() {
			sc := bufio.NewScanner(out)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				now := time.Now()
				var e struct{ ID string }
				if json.Unmarshal(sc.Bytes(), &e) == nil {
					mu.Lock()
					printed[e.ID] = now
					mu.Unlock()
					select {
					case lines <- struct{}{}:
					default:
					}
				}
			}
		}()
		// Warm up: one event, which also shows the stream is running.
		hd := marten.NewHelpdesk(mrand.New(mrand.NewPCG(1, 2)))
		appendOne := func() (string, time.Time) {
			stream, evs := hd.Next()
			evs = evs[:1]
			if _, _, err := marten.QuickAppend(b.Context(), pool, "helpdesk", stream, "incident", marten.DefaultTenantID, evs); err != nil {
				b.Fatal(err)
			}
			return evs[0].ID, time.Now()
		}
		for warm := false; !warm; {
			appendOne()
			select {
			case <-lines:
				warm = true
			case <-time.After(time.Second):
			}
		}
		committed := map[string]time.Time{}
		tick := time.NewTicker(every)
		start := time.Now()
		for range events {
			<-tick.C
			id, at := appendOne()
			committed[id] = at
		}
		sent := time.Since(start)
		tick.Stop()
		deadline := time.Now().Add(10 * time.Second)
		var lat []time.Duration
		for {
			mu.Lock()
			lat = lat[:0]
			for id, at := range committed {
				if p, ok := printed[id]; ok {
					lat = append(lat, p.Sub(at))
				}
			}
			mu.Unlock()
			if len(lat) == len(committed) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		batches := scrapeBatches(b, metricsAddr)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		// The database is dropped at the end: its slot must go first.
		if _, err := pool.Exec(b.Context(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()`); err != nil {
			b.Fatal(err)
		}
		if len(lat) != len(committed) {
			b.Fatalf("%d of %d events printed", len(lat), len(committed))
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(lat[len(lat)/2]), "p50_ms")
		b.ReportMetric(ms(lat[len(lat)*9/10]), "p90_ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max_ms")
		b.ReportMetric(float64(len(committed))/sent.Seconds(), "events/s")
		b.ReportMetric(float64(len(printed))/batches, "events/batch")
	}
}

// scrapeBatches returns cdc_batches_total of the sink out, from the metrics
// served at addr.
func scrapeBatches(b *testing.B, addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `cdc_batches_total{pipeline="helpdesk",sink="out"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no cdc_batches_total for the sink")
	return 0
}
