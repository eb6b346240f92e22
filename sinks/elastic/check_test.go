package elastic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/route"
)

// handler is a tiny stand-in server answering every request with status
// and body, with the product header when product is set.
func handler(t *testing.T, status int, body string, product bool) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if product {
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// closedURL returns the URL of a server that is gone.
func closedURL(t *testing.T) string {
	ts := httptest.NewServer(http.NotFoundHandler())
	u := ts.URL
	ts.Close()
	return u
}

// TestCheck checks the lines of Check for each kind of problem.
func TestCheck(t *testing.T) {
	const secret = "s3cret-password"
	forbidden := `{"error":{"root_cause":[],"type":"security_exception","reason":"action [cluster:monitor/main] is unauthorized for user [cdc]"},"status":403}`
	tests := []struct {
		name string
		srv  []esfake.Option
		addr func(t *testing.T) string // instead of the fake's URL
		cfg  Config
		want []string // substrings of the one line expected; none: no line
	}{
		{name: "healthy"},
		{name: "healthy with a templated index", cfg: Config{Index: route.MustParse("x-{{.Type}}")}},
		{name: "unreachable", addr: closedURL, want: []string{"unreachable"}},
		{name: "not elasticsearch", addr: func(t *testing.T) string { return handler(t, 200, `{"name":"x"}`, false) },
			want: []string{"not Elasticsearch", "X-Elastic-Product"}},
		{name: "no credentials", srv: []esfake.Option{esfake.WithBasicAuth("cdc", secret)},
			want: []string{"401", "authentication required", "set username and password, or api_key"}},
		{name: "wrong password", srv: []esfake.Option{esfake.WithBasicAuth("cdc", secret)}, cfg: Config{Username: "cdc", Password: "wrong-" + secret},
			want: []string{"401", `authentication as user "cdc" failed`}},
		{name: "right password", srv: []esfake.Option{esfake.WithBasicAuth("cdc", secret)}, cfg: Config{Username: "cdc", Password: secret}},
		{name: "wrong api key", srv: []esfake.Option{esfake.WithAPIKey("kid", secret)}, cfg: Config{APIKey: apiKey("kid", "wrong")},
			want: []string{"401", "authentication with an API key failed"}},
		{name: "right api key", srv: []esfake.Option{esfake.WithAPIKey("kid", secret)}, cfg: Config{APIKey: apiKey("kid", secret)}},
		{name: "forbidden", addr: func(t *testing.T) string { return handler(t, 403, forbidden, true) }, cfg: Config{Username: "cdc", Password: secret},
			want: []string{"403", "forbidden", "security_exception", "unauthorized for user [cdc]"}},
		{name: "tls without the ca", srv: []esfake.Option{esfake.WithTLS()}, want: []string{"TLS handshake failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.srv...)
			cfg := tt.cfg
			if tt.addr != nil {
				cfg.Addresses = []string{tt.addr(t)}
			}
			s := newSink(t, srv, cfg)
			lines := s.Check(context.Background())
			if len(tt.want) == 0 {
				if len(lines) != 0 {
					t.Fatalf("Check: %q", lines)
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("Check: %q, want one line", lines)
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("Check: %q, want %q in it", lines[0], w)
				}
			}
			if strings.Contains(lines[0], secret) {
				t.Errorf("Check: %q holds the secret", lines[0])
			}
		})
	}
}

func apiKey(id, key string) string { return base64.StdEncoding.EncodeToString([]byte(id + ":" + key)) }

// TestAuthAndTLS writes through each way of connecting.
func TestAuthAndTLS(t *testing.T) {
	tests := []struct {
		name string
		srv  []esfake.Option
		cfg  func(srv *esfake.Server) Config
	}{
		{"basic auth", []esfake.Option{esfake.WithBasicAuth("cdc", "pw")}, func(*esfake.Server) Config {
			return Config{Username: "cdc", Password: "pw"}
		}},
		{"api key", []esfake.Option{esfake.WithAPIKey("kid", "k")}, func(*esfake.Server) Config {
			return Config{APIKey: apiKey("kid", "k")}
		}},
		{"tls and basic auth", []esfake.Option{esfake.WithTLS(), esfake.WithBasicAuth("cdc", "pw")}, func(srv *esfake.Server) Config {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(srv.CACertPEM())
			return Config{Username: "cdc", Password: "pw", TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.srv...)
			for _, mode := range []Mode{ModeEvents, ModeLatest} {
				cfg := tt.cfg(srv)
				cfg.Mode = mode
				cfg.Index = route.MustParse("cdc-" + string(mode))
				cfg.IndexSettings = json.RawMessage(`{"settings":{"number_of_shards":1}}`)
				s := newSink(t, srv, cfg)
				if lines := s.Check(context.Background()); len(lines) != 0 {
					t.Fatalf("Check: %q", lines)
				}
				if err := s.Prepare(context.Background()); err != nil {
					t.Fatal(err)
				}
				events := makeEvents(5, 2, 10, 1)
				write(t, s, events)
				want := 10
				if mode == ModeLatest {
					want = 5
				}
				if n := len(srv.Docs("cdc-" + string(mode))); n != want {
					t.Fatalf("%s: %d documents, want %d", mode, n, want)
				}
			}
		})
	}
}

// TestWriteUnauthorized writes with refused credentials: a plain error
// that says so and holds no secret.
func TestWriteUnauthorized(t *testing.T) {
	srv := newServer(t, esfake.WithBasicAuth("cdc", "pw"))
	for _, mode := range []Mode{ModeEvents, ModeLatest} {
		s := newSink(t, srv, Config{Mode: mode, Username: "cdc", Password: "not-the-pw"})
		err := s.Write(context.Background(), cdcBatch(makeEvents(2, 1, 10, 1)))
		if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "not-the-pw") {
			t.Fatalf("%s: %v", mode, err)
		}
	}
}

// TestIndexSettings checks that an index is created with the settings the
// first time the sink meets it, and only then.
func TestIndexSettings(t *testing.T) {
	settings := `{"settings":{"number_of_shards":1,"number_of_replicas":0},"mappings":{"properties":{"type":{"type":"keyword"}}}}`
	srv := newServer(t)
	s := newSink(t, srv, Config{Index: route.MustParse("helpdesk-{{.Type}}"), IndexSettings: json.RawMessage(settings)})
	events := makeEvents(4, 3, 10, 1)
	write(t, s, events)
	write(t, s, makeEvents(4, 3, 10, 100))
	for _, typ := range eventTypes {
		name := "helpdesk-" + typ
		if got := srv.IndexBody(name); !jsonEqual(t, got, []byte(settings)) {
			t.Errorf("index %s created with %s", name, got)
		}
	}
	if got := srv.Stats().IndexCreates; got != int64(len(eventTypes)) {
		t.Errorf("%d indices created, want %d", got, len(eventTypes))
	}

	// An index created by someone else meanwhile is fine.
	other := newSink(t, srv, Config{Index: route.MustParse("helpdesk-{{.Type}}"), IndexSettings: json.RawMessage(settings)})
	write(t, other, events)
}

// TestPrepare creates a constant index with its settings, and reports
// settings Elasticsearch refuses.
func TestPrepare(t *testing.T) {
	tests := []struct {
		name     string
		index    string
		settings string
		created  bool
		err      error
	}{
		{"constant with settings", "cdc", `{"settings":{"number_of_shards":2}}`, true, nil},
		{"constant without settings", "cdc", ``, false, nil},
		{"templated", "cdc-{{.Type}}", `{"settings":{"number_of_shards":2}}`, false, nil},
		{"refused settings", "cdc", `{"setings":{"number_of_shards":2}}`, false, ErrIndexSettings},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			cfg := Config{Index: route.MustParse(tt.index)}
			if tt.settings != "" {
				cfg.IndexSettings = json.RawMessage(tt.settings)
			}
			s := newSink(t, srv, cfg)
			err := s.Prepare(context.Background())
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("Prepare: %v, want %v", err, tt.err)
			}
			if got := len(srv.Indices()) == 1; got != tt.created {
				t.Fatalf("indices %v, want created %v", srv.Indices(), tt.created)
			}
			if tt.created {
				if err := s.Prepare(context.Background()); err != nil {
					t.Fatalf("second Prepare: %v", err)
				}
			}
			if tt.err != nil {
				err := s.Write(context.Background(), cdcBatch(makeEvents(1, 1, 10, 1)))
				if !errors.Is(err, ErrIndexSettings) {
					t.Fatalf("Write: %v, want ErrIndexSettings", err)
				}
			}
		})
	}
	srv := newServer(t)
	s := newSink(t, srv, Config{Addresses: []string{closedURL(t)}, IndexSettings: json.RawMessage(`{}`)})
	if err := s.Prepare(context.Background()); err == nil || errors.Is(err, ErrIndexSettings) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Prepare of an unreachable server: %v", err)
	}
}

// TestValidate checks the configuration errors.
func TestValidate(t *testing.T) {
	idx := route.MustParse("cdc")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no addresses", Config{Index: idx}, "no addresses"},
		{"not a url", Config{Addresses: []string{"es:9200"}, Index: idx}, "addresses[0]"},
		{"credentials in the url", Config{Addresses: []string{"http://u:secret@es:9200"}, Index: idx}, "credentials in the address"},
		{"no index", Config{Addresses: []string{"http://es:9200"}}, "no index"},
		{"invalid constant index", Config{Addresses: []string{"http://es:9200"}, Index: route.MustParse("CDC")}, "lowercase"},
		{"mode", Config{Addresses: []string{"http://es:9200"}, Index: idx, Mode: "newest"}, "mode"},
		{"settings not an object", Config{Addresses: []string{"http://es:9200"}, Index: idx, IndexSettings: json.RawMessage(`[]`)}, "not a JSON object"},
		{"username alone", Config{Addresses: []string{"http://es:9200"}, Index: idx, Username: "u"}, "without a password"},
		{"both auths", Config{Addresses: []string{"http://es:9200"}, Index: idx, Username: "u", Password: "p", APIKey: "k"}, "choose one"},
		{"tls over http", Config{Addresses: []string{"http://es:9200"}, Index: idx, TLS: &tls.Config{}}, "https"},
		{"flush bytes", Config{Addresses: []string{"http://es:9200"}, Index: idx, FlushBytes: 10}, "flush_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error holds the password: %v", err)
			}
		})
	}
}
