package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/natsserver"
	"github.com/martencdc/cdc/route"
)

// TestInspect checks what cdc validate reports of a nats sink: problems,
// and a warning when the duplicate window is shorter than
// MinDuplicateWindow (2 × ack_timeout 5s + 10s here). Inspect creates nothing.
func TestInspect(t *testing.T) {
	srv := startServer(t, natsserver.Config{})
	createStream(t, srv.URL(), jetstream.StreamConfig{Name: "SHORT", Subjects: []string{"short.>"}, Duplicates: 10 * time.Second})
	createStream(t, srv.URL(), jetstream.StreamConfig{Name: "LONG", Subjects: []string{"long.>"}, Duplicates: time.Minute})
	cases := []struct {
		name     string
		cfg      Config
		problems []string // each in one problem, in order
		warnings []string
	}{
		{name: "existing stream", cfg: Config{Stream: "LONG", Subject: route.MustParse("long.{{.Type}}")}},
		{name: "missing stream", cfg: Config{Stream: "MISSING"},
			problems: []string{"nats stream MISSING does not exist: create it or set create_stream: true"}},
		{name: "missing stream to create", cfg: Config{Stream: "MISSING", CreateStream: true}},
		{name: "stream to create with a short window", cfg: Config{Stream: "MISSING", CreateStream: true, DuplicateWindow: 5 * time.Second},
			warnings: []string{"the duplicate_window of the stream cdc creates (5s) is shorter than 20s (2 × ack_timeout 5s + 10s of retry backoff)"}},
		{name: "stream with a short window", cfg: Config{Stream: "SHORT", Subject: route.MustParse("short.{{.Type}}")},
			warnings: []string{"the duplicate window of stream SHORT (10s) is shorter than 20s"}},
		{name: "constant subject of no stream", cfg: Config{Stream: "LONG", Subject: route.MustParse("elsewhere.x")},
			problems: []string{`nats stream LONG does not take subject "elsewhere.x" (no stream does)`}},
		{name: "constant subject of another stream", cfg: Config{Stream: "LONG", Subject: route.MustParse("short.x")},
			problems: []string{`subject "short.x" belongs to nats stream SHORT, not LONG`}},
		{name: "unreachable server", cfg: Config{Servers: []string{closedAddr(t)}, Stream: "LONG"},
			problems: []string{"connect to nats"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSink(t, srv.URL(), c.cfg)
			problems, warnings := s.Inspect(context.Background())
			match(t, "problems", problems, c.problems)
			match(t, "warnings", warnings, c.warnings)
		})
	}
	nc, js := client(t, srv.URL())
	defer nc.Close()
	if _, err := js.Stream(context.Background(), "MISSING"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("after Inspect, stream MISSING: %v, want it still missing", err)
	}
}

// TestNoJetStream: a server without JetStream is a problem for cdc
// validate and a misconfiguration for cdc run.
func TestNoJetStream(t *testing.T) {
	srv := startServer(t, natsserver.Config{NoJetStream: true})
	s := newSink(t, srv.URL(), Config{CreateStream: true})
	problems, _ := s.Inspect(context.Background())
	match(t, "problems", problems, []string{"JetStream is not enabled for this account"})
	if err := s.Prepare(context.Background()); !errors.Is(err, cdc.ErrMisconfigured) || !strings.Contains(err.Error(), "JetStream is not enabled") {
		t.Errorf("Prepare = %v, want cdc.ErrMisconfigured saying JetStream is not enabled", err)
	}
}

// TestPrepare checks that Prepare creates a missing stream with
// create_stream, and is a misconfiguration without.
func TestPrepare(t *testing.T) {
	srv := startServer(t, natsserver.Config{})
	err := newSink(t, srv.URL(), Config{}).Prepare(context.Background())
	if !errors.Is(err, cdc.ErrMisconfigured) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Prepare without the stream = %v, want cdc.ErrMisconfigured", err)
	}
	s := newSink(t, srv.URL(), Config{CreateStream: true, StreamSubjects: []string{"events.>", "more.>"}, MaxAge: time.Hour, Retention: RetentionInterest})
	if err := s.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	nc, js := client(t, srv.URL())
	defer nc.Close()
	st, err := js.Stream(context.Background(), testStream)
	if err != nil {
		t.Fatal(err)
	}
	c := st.CachedInfo().Config
	if len(c.Subjects) != 2 || c.MaxAge != time.Hour || c.Retention != jetstream.InterestPolicy || c.Duplicates != DefaultDuplicateWindow {
		t.Errorf("created stream: subjects %v, max age %s, retention %s, duplicates %s", c.Subjects, c.MaxAge, c.Retention, c.Duplicates)
	}
	// A second sink finds it and leaves it as it is.
	if err := newSink(t, srv.URL(), Config{CreateStream: true, MaxAge: time.Minute}).Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err = js.Stream(context.Background(), testStream); err != nil || st.CachedInfo().Config.MaxAge != time.Hour {
		t.Errorf("the existing stream was changed: %v", err)
	}
}

// TestAuth writes through servers that require a user and password, a
// token or an NKey; a wrong secret fails without showing it.
func TestAuth(t *testing.T) {
	const secret = "hunter2-s3cret"
	nkeyUser, nkeyOther := newNKey(t), newNKey(t)
	cases := []struct {
		name      string
		server    natsserver.Config
		good, bad Auth
	}{
		{"user and password", natsserver.Config{Username: "cdc", Password: secret},
			Auth{User: "cdc", Password: secret}, Auth{User: "cdc", Password: secret + "x"}},
		{"token", natsserver.Config{Token: secret}, Auth{Token: secret}, Auth{Token: secret + "x"}},
		{"nkey", natsserver.Config{NKey: nkeyUser.public}, Auth{NKeyFile: nkeyUser.seedFile}, Auth{NKeyFile: nkeyOther.seedFile}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startServer(t, c.server)
			s := newSink(t, srv.URL(), Config{Auth: c.good, CreateStream: true})
			if err := s.Write(context.Background(), cdc.Batch{Events: makeEvents(2, 2, 0, 1)}); err != nil {
				t.Fatal(err)
			}
			bad := newSink(t, srv.URL(), Config{Auth: c.bad, CreateStream: true})
			err := bad.Write(context.Background(), cdc.Batch{Events: makeEvents(2, 2, 0, 1)})
			if err == nil || errors.Is(err, cdc.ErrMisconfigured) {
				t.Fatalf("Write with a wrong secret = %v, want a plain error", err)
			}
			t.Logf("Write with a wrong secret: %v", err)
			for _, text := range []string{err.Error(), c.bad.String(), fmtV(c.bad)} {
				if strings.Contains(text, secret) {
					t.Errorf("%q shows the secret", text)
				}
			}
		})
	}
}

// TestValidate checks Config.Validate's refusals.
func TestValidate(t *testing.T) {
	good := func() Config {
		return Config{Servers: []string{"n:4222"}, Subject: route.MustParse("a.{{.Type}}"), Stream: "S"}
	}
	cases := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"no servers", func(c *Config) { c.Servers = nil }, "no servers"},
		{"credentials in a URL", func(c *Config) { c.Servers = []string{"nats://u:hunter2@n:4222"} }, "holds credentials"},
		{"no subject", func(c *Config) { c.Subject = nil }, "no subject template"},
		{"no stream", func(c *Config) { c.Stream = "" }, "no stream name"},
		{"no prefix to derive the stream's subjects", func(c *Config) {
			c.CreateStream, c.Subject = true, route.MustParse("{{.Type}}")
		}, "set stream_subjects"},
		{"window longer than max age", func(c *Config) { c.MaxAge, c.DuplicateWindow = time.Minute, time.Hour }, "longer than stream_max_age"},
		{"two ways to authenticate", func(c *Config) { c.Auth = Auth{User: "u", Token: "t"} }, "not several"},
		{"password without user", func(c *Config) { c.Auth = Auth{Password: "p"} }, "password without user"},
		{"unknown value", func(c *Config) { c.Value = "avro" }, `value "avro"`},
		{"replicas", func(c *Config) { c.Replicas = 7 }, "stream_replicas 7"},
	}
	for _, c := range cases {
		cfg := good()
		c.change(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error saying %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", c.name, err)
		}
	}
	cfg := good()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate of a good configuration: %v", err)
	}
}

// nkey is a user NKey: its public key, and a file holding its seed.
type nkey struct{ public, seedFile string }

func newNKey(t *testing.T) nkey {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(f, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return nkey{pub, f}
}

// match fails the test unless got has one line per want, each containing
// it.
func match(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s %q, want %d containing %q", what, got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] = %q, want it to contain %q", what, i, got[i], want[i])
		}
	}
}

// closedAddr returns an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func fmtV(a Auth) string { return fmt.Sprintf("%v %+v %#v", a, a, a) }
