package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/admin"
	"github.com/martencdc/cdc/applied"
)

// sinks is a local pipeline whose sinks' progress the test sets.
type sinks struct {
	mu    sync.Mutex
	state map[string]applied.Progress
}

func (s *sinks) local() (map[string]applied.Progress, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]applied.Progress{}
	for k, v := range s.state {
		out[k] = v
	}
	return out, true
}

// txs resolves transaction ids from a map; 13 rolled back.
type txs map[uint64]cdc.LSN

func (m txs) TxLSN(_ context.Context, _ string, txid uint64) (cdc.LSN, error) {
	if txid == 13 {
		return 0, applied.ErrTxAborted
	}
	if l, ok := m[txid]; ok {
		return l, nil
	}
	return 0, applied.ErrTxInvalid
}

func get(t *testing.T, base, query string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/v1/wait?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", query, ct)
	}
	return resp.StatusCode, string(b)
}

// TestWaitEndpoint: every answer of /v1/wait, with its status and body.
func TestWaitEndpoint(t *testing.T) {
	since := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	local := &sinks{state: map[string]applied.Progress{
		"ok":      {Reached: 0x2000, Flush: 0x1F00, State: cdc.SinkOK},
		"failing": {Reached: 0x100, Flush: 0x100, State: cdc.SinkFailing, Since: since, Error: "dial tcp: connection refused"},
		"stopped": {Reached: 0x100, Flush: 0x100, State: cdc.SinkStopped, Since: since, Error: "event e1 rejected"},
	}}
	orphan := applied.SourceFunc(func(context.Context) (map[string]applied.Progress, error) {
		return map[string]applied.Progress{"s": {Reached: 0x10, Flush: 0x10, State: cdc.SinkOK, Unstreamed: "no instance streams pipeline orphan: its slot cdc_orphan is not active"}}, nil
	})
	tr := applied.New([]applied.Pipeline{
		{Name: "helpdesk", Sinks: []string{"ok", "failing", "stopped"}, Local: local.local},
		{Name: "orphan", Sinks: []string{"s"}, Table: orphan},
	}, 10*time.Millisecond, nil)
	srv := httptest.NewServer(admin.Endpoints{Waits: tr, Txs: txs{771: 0x1800, 772: 0x3000}}.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		name  string
		query string
		code  int
		body  string // a fragment of the body
	}{
		{"passed", "pipeline=helpdesk&sink=ok&lsn=0/1800", 200,
			`"pipeline":"helpdesk","sink":"ok","lsn":"0/1800","applied":true,"reached_lsn":"0/2000","flush_lsn":"0/1F00","state":"ok","from":"local"`},
		{"passed exactly", "pipeline=helpdesk&sink=ok&lsn=0/2000", 200, `"applied":true`},
		{"timeout", "pipeline=helpdesk&sink=ok&lsn=0/2001&timeout=50ms", 408, `"applied":false,"reached_lsn":"0/2000"`},
		{"timeout in seconds", "pipeline=helpdesk&sink=ok&lsn=0/2001&timeout=0.05", 408, `"state":"ok"`},
		{"failing", "pipeline=helpdesk&sink=failing&lsn=0/1800&timeout=50ms", 503,
			`"applied":false,"reached_lsn":"0/100","flush_lsn":"0/100","state":"failing","since":"2026-05-06T07:08:09Z","error":"dial tcp: connection refused"`},
		{"stopped", "pipeline=helpdesk&sink=stopped&lsn=0/1800&timeout=1m", 503, `"state":"stopped","since":"2026-05-06T07:08:09Z","error":"event e1 rejected"`},
		{"no instance streams", "pipeline=orphan&sink=s&lsn=0/20&timeout=50ms", 503,
			`"applied":false,"reached_lsn":"0/10","flush_lsn":"0/10","state":"ok","error":"no instance streams pipeline orphan: its slot cdc_orphan is not active","from":"checkpoint_table"`},
		{"no instance streams, applied", "pipeline=orphan&sink=s&lsn=0/10", 200, `"applied":true,"reached_lsn":"0/10","flush_lsn":"0/10","state":"ok","from":"checkpoint_table"`},
		{"txid", "pipeline=helpdesk&sink=ok&txid=771", 200, `"lsn":"0/1800","txid":"771","applied":true`},
		{"txid not yet", "pipeline=helpdesk&sink=ok&txid=772&timeout=20ms", 408, `"lsn":"0/3000","txid":"772","applied":false`},
		{"txid rolled back", "pipeline=helpdesk&sink=ok&txid=13", 409, `"txid":"13","applied":false`},
		{"txid unknown", "pipeline=helpdesk&sink=ok&txid=99", 400, `{"error":"parameter txid 99: not a transaction id of this server"}`},
		{"txid not a number", "pipeline=helpdesk&sink=ok&txid=x", 400, `parameter txid \"x\"`},
		{"unknown pipeline", "pipeline=nope&sink=ok&lsn=0/1", 404, `{"error":"unknown pipeline \"nope\""}`},
		{"unknown sink", "pipeline=helpdesk&sink=nope&lsn=0/1", 404, `{"error":"unknown sink \"nope\" in pipeline helpdesk"}`},
		{"bad lsn", "pipeline=helpdesk&sink=ok&lsn=16B3748", 400, `{"error":"parameter lsn \"16B3748\": not an LSN like 0/16B3748"}`},
		{"no lsn", "pipeline=helpdesk&sink=ok", 400, `parameter lsn`},
		{"both", "pipeline=helpdesk&sink=ok&lsn=0/1&txid=771", 400, `not both`},
		{"no pipeline", "sink=ok&lsn=0/1", 400, `parameter pipeline is required`},
		{"no sink", "pipeline=helpdesk&lsn=0/1", 400, `parameter sink is required`},
		{"bad timeout", "pipeline=helpdesk&sink=ok&lsn=0/1&timeout=soon", 400, `parameter timeout \"soon\"`},
		{"long timeout", "pipeline=helpdesk&sink=ok&lsn=0/1&timeout=1h", 400, `more than the maximum 5m0s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv.URL, tc.query)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("GET /v1/wait?%s = %d %s\nwant %d with %s", tc.query, code, body, tc.code, tc.body)
			}
			if code == 200 || code == 408 || code == 409 || code == 503 {
				var r admin.WaitResponse
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	resp, err := http.Post(srv.URL+"/v1/wait?pipeline=helpdesk&sink=ok&lsn=0/1", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestWaitReleasedByAdvance: a wait asleep over HTTP answers 200 as soon as
// the sink advances past its LSN; one for a later LSN stays asleep.
func TestWaitReleasedByAdvance(t *testing.T) {
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}}}, 0, nil)
	srv := httptest.NewServer(admin.Endpoints{Waits: tr}.Handler())
	defer srv.Close()
	type answer struct {
		code int
		body string
	}
	ask := func(lsn string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			code, body := get(t, srv.URL, "pipeline=p&sink=s&timeout=1m&lsn="+url.QueryEscape(lsn))
			ch <- answer{code, body}
		}()
		return ch
	}
	early, late := ask("0/10"), ask("0/30")
	deadline := time.Now().Add(20 * time.Second)
	for tr.Waiters() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the waits did not arrive")
		}
		time.Sleep(time.Millisecond)
	}
	tr.Advance("p", "s", 0x20)
	if a := <-early; a.code != 200 || !strings.Contains(a.body, `"reached_lsn":"0/20"`) {
		t.Fatalf("early wait: %d %s", a.code, a.body)
	}
	if tr.Waiters() != 1 {
		t.Fatalf("%d waiters after the advance, want 1", tr.Waiters())
	}
	tr.Advance("p", "s", 0x30)
	if a := <-late; a.code != 200 {
		t.Fatalf("late wait: %d %s", a.code, a.body)
	}
}

// TestNoWaits: a listener without a tracker answers 404 on /v1/wait.
func TestNoWaits(t *testing.T) {
	srv := httptest.NewServer(admin.Handler(nil, nil))
	defer srv.Close()
	if code, body := get(t, srv.URL, "pipeline=p&sink=s&lsn=0/1"); code != 404 || !strings.Contains(body, "answers no waits") {
		t.Fatalf("%d %s", code, body)
	}
}

// TestIdleWaitsOverHTTP: 2,000 waits asleep over HTTP (each a connection
// and a handler) use no measurable CPU, and one advance releases them all
// with 200. (The tracker alone is measured with 10,000 waiters in package
// applied; here the HTTP path is, with fewer, to spare file descriptors
// and memory on CI.)
func TestIdleWaitsOverHTTP(t *testing.T) {
	const n = 2000
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}}}, 0, nil)
	srv := httptest.NewServer(admin.Endpoints{Waits: tr}.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	codes := make(chan int, n)
	for i := range n {
		go func() {
			resp, err := client.Get(fmt.Sprintf("%s/v1/wait?pipeline=p&sink=s&timeout=2m&lsn=0/%X", srv.URL, i+1))
			if err != nil {
				codes <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for tr.Waiters() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d waits arrived", tr.Waiters(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	const idle = time.Second
	before := cpuTime(t)
	time.Sleep(idle) // measuring an idle interval, not synchronising
	used := cpuTime(t) - before
	t.Logf("%d idle waits over HTTP: %v of CPU over %v (%.2f%% of one core)", n, used, idle, 100*used.Seconds()/idle.Seconds())
	if used > idle/4 { // loose: a loaded machine must not fail it
		t.Errorf("%d idle waits used %v of CPU in %v", n, used, idle)
	}
	tr.Advance("p", "s", n)
	for range n {
		if c := <-codes; c != http.StatusOK {
			t.Fatalf("a wait answered %d", c)
		}
	}
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
