package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPprofAddr: --pprof-addr serves Go's profiles on a listener of its
// own, apart from the metrics one.
func TestPprofAddr(t *testing.T) {
	dsn, _ := martenStore(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	c := startCDC(t, dir, "run", []string{"CDC_TEST_DSN=" + dsn}, "run", "--config", cfg,
		"--metrics-addr", "127.0.0.1:0", "--pprof-addr", "127.0.0.1:0", "--log-format", "json")
	addrs := map[string]string{"serving pprof": loggedAddr(t, c, "serving pprof"), "serving metrics": metricsAddr(t, c)}
	if addrs["serving pprof"] == addrs["serving metrics"] {
		t.Fatalf("pprof and metrics share the address %s", addrs["serving pprof"])
	}
	tests := []struct {
		addr, path string
		code       int
		body       string // part of the body, when code is 200
	}{
		{addrs["serving pprof"], "/debug/pprof/", http.StatusOK, "goroutine"},
		{addrs["serving pprof"], "/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile"},
		{addrs["serving metrics"], "/debug/pprof/", http.StatusNotFound, ""},
	}
	for _, tc := range tests {
		resp, err := http.Get("http://" + tc.addr + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s%s: %d, want %d with %q; body:\n%.300s", tc.addr, tc.path, resp.StatusCode, tc.code, tc.body, b)
		}
	}
	c.stopOK()
}
