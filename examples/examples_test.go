package examples_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/examples/helpdesk"
	"github.com/martencdc/cdc/sinks/elastic"
	"github.com/martencdc/cdc/sinks/file"
	"github.com/martencdc/cdc/sinks/kafka"
	"github.com/martencdc/cdc/sinks/nats"
	"github.com/martencdc/cdc/sinks/postgres"
)

// exampleFiles returns every configuration in this directory and the
// directories below it, as paths relative to it.
func exampleFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml", "*/*.yaml", "*/*.yml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	return files
}

// header is what an example's leading comment claims.
type header struct {
	env     []string // Environment: the variables it reads
	sinks   []string // Sinks: "pipeline/sink (kind)"
	configs []string // the --config arguments of its commands
	pipes   []string // the --pipeline arguments of its commands
}

var (
	envName    = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	sinkClaim  = regexp.MustCompile(`^[a-z][a-z0-9_]*/[a-z][a-z0-9_-]* \([a-z]+\)$`)
	configFlag = regexp.MustCompile(`--config (\S+)`)
	pipeFlag   = regexp.MustCompile(`--pipeline (\S+)`)
)

// parseHeader reads the comment lines before the first line of YAML. It
// needs the lines "Services:", "Environment:" (a comma-separated list of
// variable names, or "none"), "Sinks:" (a comma-separated list of
// "pipeline/sink (kind)") and "Run:".
func parseHeader(t *testing.T, data []byte) header {
	t.Helper()
	var h header
	found := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		text := strings.TrimSpace(strings.TrimPrefix(line, "#"))
		for _, m := range configFlag.FindAllStringSubmatch(text, -1) {
			h.configs = append(h.configs, m[1])
		}
		for _, m := range pipeFlag.FindAllStringSubmatch(text, -1) {
			h.pipes = append(h.pipes, m[1])
		}
		key, value, ok := strings.Cut(text, ":")
		if !ok || !slices.Contains([]string{"Services", "Environment", "Sinks", "Run"}, key) {
			continue
		}
		found[key] = true
		value = strings.TrimSpace(value)
		switch key {
		case "Environment":
			if value == "none" {
				continue
			}
			for _, v := range strings.Split(value, ",") {
				v = strings.TrimSpace(v)
				if !envName.MatchString(v) {
					t.Errorf("header: Environment: %q is not a variable name (want NAME, NAME, ... or none)", v)
				}
				h.env = append(h.env, v)
			}
		case "Sinks":
			for _, s := range strings.Split(value, ",") {
				s = strings.TrimSpace(s)
				if !sinkClaim.MatchString(s) {
					t.Errorf("header: Sinks: %q: want pipeline/sink (kind)", s)
				}
				h.sinks = append(h.sinks, s)
			}
		}
	}
	for _, key := range []string{"Services", "Environment", "Sinks", "Run"} {
		if !found[key] {
			t.Errorf("header: no %q line in the leading comment (want Services:, Environment:, Sinks: and Run:)", key+":")
		}
	}
	if len(h.configs) == 0 {
		t.Errorf("header: no command with --config: say how to run the example")
	}
	return h
}

// TestExamples parses every example as cdc would and holds it to its
// header: the sinks it names, the environment variables it documents, and
// the commands it shows. A file that does not parse fails the test.
func TestExamples(t *testing.T) {
	files := exampleFiles(t)
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	seen := map[string]bool{}
	for _, f := range files {
		seen[f] = true
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			h := parseHeader(t, data)

			// Resolve the documented variables, and only those.
			values := map[string]string{}
			for _, name := range h.env {
				values[name] = "example-" + strings.ToLower(name)
			}
			used := map[string]bool{}
			lookup := func(name string) (string, bool) {
				v, ok := values[name]
				if !ok {
					t.Errorf("uses ${%s}, which the header's Environment: line does not list", name)
					return "", false
				}
				used[name] = true
				return v, true
			}
			cfg, err := config.Parse(f, data, lookup)
			if err != nil {
				t.Fatalf("config.Parse: %v", err)
			}
			for _, name := range h.env {
				if !used[name] {
					t.Errorf("the header lists %s under Environment:, but the configuration does not use it", name)
				}
			}

			var got []string
			for i := range cfg.Pipelines {
				p := &cfg.Pipelines[i]
				for j := range p.Sinks {
					got = append(got, fmt.Sprintf("%s/%s (%s)", p.Name, p.Sinks[j].Name, p.Sinks[j].Kind))
				}
			}
			if !sameSet(got, h.sinks) {
				t.Errorf("the header's Sinks: says %v, the configuration has %v", h.sinks, got)
			}
			for _, c := range h.configs {
				if want := "examples/" + filepath.ToSlash(f); c != want {
					t.Errorf("the header runs --config %s: want --config %s (commands run from the repository root)", c, want)
				}
			}
			for _, name := range h.pipes {
				if _, ok := cfg.Pipeline(name); !ok {
					t.Errorf("the header runs --pipeline %s, which the configuration does not have", name)
				}
			}

			secrets := slices.Collect(func(yield func(string) bool) {
				for _, v := range values {
					if !yield(v) {
						return
					}
				}
			})
			for i := range cfg.Pipelines {
				p := &cfg.Pipelines[i]
				checkSecret(t, p.Name+": source.dsn", dsnPassword(p.Source.DSN), secrets)
				checkSecret(t, p.Name+": checkpoints.dsn", dsnPassword(p.Checkpoints.DSN), secrets)
				for j := range p.Sinks {
					checkSinkOffline(t, p, &p.Sinks[j], secrets)
				}
			}
			if check, ok := specific[f]; ok {
				check(t, cfg)
			}
		})
	}
	for f := range specific {
		if !seen[f] {
			t.Errorf("example %s, which has checks of its own here, is gone: update the checks", f)
		}
	}
}

// checkSinkOffline builds the sink as cdc's assemble package does, short of
// connecting anything: the checks cdc validate can make without services
// (templates, option ranges, the Postgres projections' placeholders and
// statements, the DSN's syntax). It also checks that the sink's secrets
// come from the environment.
func checkSinkOffline(t *testing.T, p *config.Pipeline, sc *config.Sink, secrets []string) {
	t.Helper()
	where := p.Name + "/" + sc.Name
	ctx := context.Background()
	var (
		s   cdc.Sink
		err error
	)
	switch o := sc.Options.(type) {
	case *config.StdoutOptions:
		return
	case *config.FileOptions:
		s, err = file.New(file.Config{Path: o.Template})
	case *config.KafkaOptions:
		kc := kafka.Config{
			Brokers: o.Brokers, Topic: o.TopicTemplate, Key: o.Key, Partitioner: o.Partitioner,
			Value: o.Value, Compression: o.Compression, CreateTopics: o.CreateTopics,
			TopicPartitions: o.TopicPartitions, TopicReplicationFactor: o.TopicReplicationFactor,
			MaxMessageBytes: o.MaxMessageBytes, WriteTimeout: o.WriteTimeout, ClientID: o.ClientID,
		}
		if o.TLS != nil {
			kc.TLS = &tls.Config{} // the files are on the machine that runs cdc
		}
		if o.SASL != nil {
			kc.SASL = &kafka.SASL{Mechanism: o.SASL.Mechanism, Username: o.SASL.Username, Password: o.SASL.Password}
			checkSecret(t, where+": sasl.password", o.SASL.Password, secrets)
		}
		s, err = kafka.New(kc)
	case *config.NATSOptions:
		nc := nats.Config{
			Servers: o.Servers, Subject: o.SubjectTemplate, Stream: o.Stream, CreateStream: o.CreateStream,
			StreamSubjects: o.StreamSubjects, Retention: o.StreamRetention, MaxAge: o.StreamMaxAge,
			Replicas: o.StreamReplicas, Storage: o.StreamStorage, DuplicateWindow: o.DuplicateWindow,
			Value: o.Value, MaxInFlight: o.MaxInFlight, AckTimeout: o.AckTimeout, Name: o.ClientName,
			Auth: nats.Auth{User: o.User, Password: o.Password, Token: o.Token, NKeyFile: o.NKeyFile, CredsFile: o.CredsFile},
		}
		if o.TLS != nil {
			nc.TLS = &tls.Config{}
		}
		checkSecret(t, where+": password", o.Password, secrets)
		checkSecret(t, where+": token", o.Token, secrets)
		s, err = nats.New(nc)
	case *config.ElasticOptions:
		ec := elastic.Config{
			Addresses: o.Addresses, Index: o.IndexTemplate, Mode: o.Mode, Username: o.Username,
			Password: o.Password, APIKey: o.APIKey, Workers: o.Workers, FlushBytes: o.FlushBytes,
			RequestTimeout: o.RequestTimeout,
		}
		if o.TLS != nil {
			ec.TLS = &tls.Config{}
		}
		if o.IndexSettings != "" {
			path := o.IndexSettings
			if !filepath.IsAbs(path) {
				path = filepath.Join("..", path) // commands run from the repository root
			}
			if ec.IndexSettings, err = os.ReadFile(path); err != nil {
				t.Errorf("%s: index_settings: %v", where, err)
			}
		}
		checkSecret(t, where+": password", o.Password, secrets)
		checkSecret(t, where+": api_key", o.APIKey, secrets)
		s, err = elastic.New(ec)
	case *config.PostgresOptions:
		checkSecret(t, where+": dsn", dsnPassword(o.DSN), secrets)
		pc := postgres.Config{Pipeline: p.Name, Sink: sc.Name, Mode: o.Mode, Table: o.Table}
		for _, pr := range o.Projections {
			r, err := postgres.SQL(pr.Name, pr.On, pr.SQL...)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			pc.Routes = append(pc.Routes, r)
		}
		poolCfg, err := pgxpool.ParseConfig(o.DSN)
		if err != nil {
			t.Errorf("%s: dsn does not parse: %v", where, err)
			return
		}
		// A pool connects on first use only: nothing is dialled here.
		if pc.Pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		defer pc.Pool.Close()
		s, err = postgres.New(pc)
	default:
		t.Errorf("%s: kind %s has no offline check here: add one", where, sc.Kind)
		return
	}
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("%s: close: %v", where, err)
	}
}

// dsnPassword returns the password of a libpq URL or key=value connection
// string, or "".
func dsnPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		pw, _ := u.User.Password()
		return pw
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// checkSecret fails when a secret is written into the file rather than
// taken from a documented environment variable.
func checkSecret(t *testing.T, what, value string, secrets []string) {
	t.Helper()
	if value != "" && !slices.Contains(secrets, value) {
		t.Errorf("%s: a secret written into the file: take it from the environment (${VAR})", what)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// specific holds the checks of what each example is for, beyond its header.
var specific = map[string]func(*testing.T, *config.Config){
	"kafka-topic-per-type.yaml": func(t *testing.T, cfg *config.Config) {
		o := onlySink[*config.KafkaOptions](t, cfg)
		if o == nil {
			return
		}
		if !slices.Contains(o.TopicTemplate.Fields(), "Type") {
			t.Errorf("topic %q does not depend on the event type", o.Topic)
		}
		if got, _ := o.TopicTemplate.Render(&cdc.Event{Type: "incident_logged"}); got != "helpdesk.incident_logged" {
			t.Errorf("topic of an incident_logged event: got %q, want helpdesk.incident_logged", got)
		}
	},
	"nats-jetstream.yaml": func(t *testing.T, cfg *config.Config) {
		o := onlySink[*config.NATSOptions](t, cfg)
		if o == nil {
			return
		}
		if !o.CreateStream || o.DuplicateWindow < (&nats.Config{AckTimeout: o.AckTimeout}).MinDuplicateWindow() {
			t.Errorf("create_stream %v, duplicate_window %s: want a stream created with a window cdc validate does not warn about", o.CreateStream, o.DuplicateWindow)
		}
		if got, _ := o.SubjectTemplate.Render(&cdc.Event{TenantID: "acme", Type: "incident_logged"}); got != "helpdesk.acme.incident_logged" {
			t.Errorf("subject of an acme incident_logged event: got %q, want helpdesk.acme.incident_logged", got)
		}
	},
	"elastic-latest-and-events.yaml": func(t *testing.T, cfg *config.Config) {
		modes := map[elastic.Mode]int{}
		for _, s := range cfg.Pipelines[0].Sinks {
			o, ok := s.Options.(*config.ElasticOptions)
			if !ok {
				continue
			}
			modes[o.Mode]++
			if _, constant := o.IndexTemplate.Constant(); o.Mode == elastic.ModeLatest && !constant {
				t.Errorf("sink %s: latest mode with index %q rendered per event: keep it fixed", s.Name, o.Index)
			}
		}
		if modes[elastic.ModeLatest] != 1 || modes[elastic.ModeEvents] != 1 {
			t.Errorf("want one elastic sink in latest mode and one in events mode, got %v", modes)
		}
	},
	"postgres-read-models.yaml": func(t *testing.T, cfg *config.Config) {
		o := onlySink[*config.PostgresOptions](t, cfg)
		if o == nil {
			return
		}
		want := helpdesk.Projections()
		if len(o.Projections) != len(want) {
			t.Fatalf("%d projections, examples/helpdesk has %d", len(o.Projections), len(want))
		}
		for i, w := range want {
			g := o.Projections[i]
			sql := make([]string, len(g.SQL))
			for j, s := range g.SQL {
				sql[j] = strings.TrimSpace(s)
			}
			if g.Name != w.Name || !slices.Equal(g.On, w.On) || !slices.Equal(sql, w.SQL) {
				t.Errorf("projection %d (%s) differs from examples/helpdesk's %s: copy it from helpdesk.Projections", i, g.Name, w.Name)
			}
		}
	},
	"shards-by-tenant.yaml": func(t *testing.T, cfg *config.Config) {
		if len(cfg.Pipelines) < 2 {
			t.Fatalf("%d pipelines, want a shard per pipeline", len(cfg.Pipelines))
		}
		slots, pubs, filters := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, p := range cfg.Pipelines {
			if slots[p.Source.Slot] || pubs[p.Source.Publication] {
				t.Errorf("pipeline %s shares its slot or publication with another shard", p.Name)
			}
			if p.Source.Filter == "" || filters[p.Source.Filter] {
				t.Errorf("pipeline %s: want a row filter of its own, got %q", p.Name, p.Source.Filter)
			}
			slots[p.Source.Slot], pubs[p.Source.Publication], filters[p.Source.Filter] = true, true, true
		}
	},
	"file-archive.yaml": func(t *testing.T, cfg *config.Config) {
		o := onlySink[*config.FileOptions](t, cfg)
		if o == nil {
			return
		}
		e := &cdc.Event{TenantID: "acme", Type: "incident_logged",
			Timestamp: time.Date(2026, 12, 7, 23, 59, 0, 0, time.UTC)}
		got, err := o.Template.Render(e)
		if want := "/var/lib/cdc/archive/acme/2026-12-07.jsonl"; err != nil || got != want {
			t.Errorf("path of an event of tenant acme on 2026-12-07: got %q (%v), want %q", got, err, want)
		}
		if slices.Contains(o.Template.Fields(), "CommitTime") {
			t.Errorf("path %q uses CommitTime, which backfilled events lack", o.Path)
		}
	},
}

// onlySink returns the options of the configuration's one sink, which must
// be of type O.
func onlySink[O config.SinkOptions](t *testing.T, cfg *config.Config) O {
	t.Helper()
	var zero O
	if len(cfg.Pipelines) != 1 || len(cfg.Pipelines[0].Sinks) != 1 {
		t.Errorf("want one pipeline with one sink")
		return zero
	}
	o, ok := cfg.Pipelines[0].Sinks[0].Options.(O)
	if !ok {
		t.Errorf("sink %s: options %T, want %T", cfg.Pipelines[0].Sinks[0].Name, cfg.Pipelines[0].Sinks[0].Options, zero)
	}
	return o
}

// TestScalingDoc parses every YAML block of docs/scaling.md as a whole
// configuration and builds its sinks offline: the guide shows only keys and
// values cdc accepts.
func TestScalingDoc(t *testing.T) {
	const doc = "../docs/scaling.md"
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) == 0 {
		t.Fatalf("%s has no yaml blocks", doc)
	}
	for i, b := range blocks {
		name := fmt.Sprintf("%s, yaml block %d", doc, i+1)
		secrets := map[string]bool{}
		lookup := func(v string) (string, bool) {
			secrets["example-"+strings.ToLower(v)] = true
			return "example-" + strings.ToLower(v), true
		}
		cfg, err := config.Parse(name, []byte(b[1]), lookup)
		if err != nil {
			t.Errorf("config.Parse: %v", err)
			continue
		}
		for p := range cfg.Pipelines {
			for s := range cfg.Pipelines[p].Sinks {
				checkSinkOffline(t, &cfg.Pipelines[p], &cfg.Pipelines[p].Sinks[s], slices.Collect(maps.Keys(secrets)))
			}
		}
	}
}
