package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/martencdc/cdc/config"
)

// compose is what the tests read of docker-compose.yml.
type compose struct {
	Services map[string]service `yaml:"services"`
}

type service struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Restart     string            `yaml:"restart"`
	Profiles    []string          `yaml:"profiles"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// mounts returns the service's bind mounts, container path -> host path.
func (s service) mounts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Errorf("volume %q: want host:container[:mode]", v)
			continue
		}
		out[parts[1]] = parts[0]
	}
	return out
}

// dependsOn returns the conditions the service waits for, per service
// ("service_started" for the list form).
func (s service) dependsOn(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := s.DependsOn.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = "service_started"
		}
	default:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for n, c := range m {
			out[n] = c.Condition
		}
	}
	return out
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	var c compose
	unmarshal(t, "docker-compose.yml", &c)
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return c
}

// listeners parses a Kafka listener list, NAME://host:port,...
func listeners(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(l, "://")
		if !ok {
			t.Fatalf("listener %q", l)
		}
		out[name] = addr
	}
	return out
}

// TestCompose: docker-compose.yml parses; Kafka has a listener for the
// containers (which deploy/cdc.yaml uses) and one for the host (its
// published port); NATS runs with JetStream and deploy/cdc.yaml's nats sink
// uses it; Kafka, Elasticsearch, NATS and PostgreSQL have health checks
// (pg_isready over TCP, so the init-phase server does not count) and cdc
// waits for them, restarts unless stopped and serves metrics; the
// observability profile brings Prometheus and Grafana; every bind mount
// exists.
func TestCompose(t *testing.T) {
	c := loadCompose(t)

	kafka := c.Services["kafka"]
	ls := listeners(t, kafka.Environment["KAFKA_LISTENERS"])
	adv := listeners(t, kafka.Environment["KAFKA_ADVERTISED_LISTENERS"])
	protocols := listeners(t, strings.ReplaceAll(kafka.Environment["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ":", "://"))
	var internal, external string
	for name, addr := range adv {
		if _, ok := ls[name]; !ok {
			t.Errorf("kafka advertises %s, which it does not listen on", name)
		}
		if _, ok := protocols[name]; !ok {
			t.Errorf("kafka listener %s has no security protocol", name)
		}
		switch {
		case strings.HasPrefix(addr, "kafka:"):
			internal = name
		case strings.HasPrefix(addr, "localhost:"):
			external = name
		}
	}
	if internal == "" || external == "" || internal == external {
		t.Fatalf("kafka advertises %v: want one listener as kafka:PORT (containers) and one as localhost:PORT (host)", adv)
	}
	if kafka.Environment["KAFKA_INTER_BROKER_LISTENER_NAME"] != internal {
		t.Errorf("inter-broker listener %q, want %s", kafka.Environment["KAFKA_INTER_BROKER_LISTENER_NAME"], internal)
	}
	_, extPort, _ := strings.Cut(adv[external], ":")
	_, extListen, _ := strings.Cut(ls[external], ":")
	if !slices.Contains(kafka.Ports, extPort+":"+extListen) {
		t.Errorf("kafka publishes %v: want %s:%s, the host's listener", kafka.Ports, extPort, extListen)
	}

	cfg, err := config.Parse("deploy/cdc.yaml", read(t, "deploy/cdc.yaml"), func(k string) (string, bool) { return "secret", k == "PGPASSWORD" })
	if err != nil {
		t.Fatal(err)
	}
	natsSinks := 0
	for _, p := range cfg.Pipelines {
		for _, s := range p.Sinks {
			if o, ok := s.Options.(*config.KafkaOptions); ok && !slices.Equal(o.Brokers, []string{adv[internal]}) {
				t.Errorf("deploy/cdc.yaml: sink %s has brokers %v, want the containers' listener %s", s.Name, o.Brokers, adv[internal])
			}
			if o, ok := s.Options.(*config.NATSOptions); ok {
				natsSinks++
				if !slices.Equal(o.Servers, []string{"nats:4222"}) {
					t.Errorf("deploy/cdc.yaml: sink %s has servers %v, want the nats service, nats:4222", s.Name, o.Servers)
				}
			}
		}
	}
	if natsSinks == 0 {
		t.Error("deploy/cdc.yaml has no nats sink for the nats service")
	}
	natsSvc := c.Services["nats"]
	if !slices.Contains(natsSvc.Command, "--jetstream") || !slices.Contains(natsSvc.Ports, "4222:4222") {
		t.Errorf("nats: command %v, ports %v; want JetStream on (--jetstream) and 4222 published", natsSvc.Command, natsSvc.Ports)
	}

	for _, tc := range []struct {
		service string
		want    []string // in the health check's command line
	}{
		{"kafka", []string{"kafka-broker-api-versions.sh", "--bootstrap-server", adv[internal]}},
		{"elasticsearch", []string{"curl", "/_cluster/health"}},
		{"nats", []string{"wget", "localhost:8222/healthz?js-enabled-only=true"}},
		{"postgres", []string{"pg_isready", "-h localhost", "-U postgres", "-d helpdesk"}},
	} {
		hc := c.Services[tc.service].Healthcheck
		if hc == nil {
			t.Errorf("%s has no health check", tc.service)
			continue
		}
		line := strings.Join(hc.Test, " ")
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s's health check %q lacks %q", tc.service, line, w)
			}
		}
	}

	cdc := c.Services["cdc"]
	if cdc.Restart != "unless-stopped" {
		t.Errorf("cdc restart: %q, want unless-stopped", cdc.Restart)
	}
	deps := cdc.dependsOn(t)
	for _, s := range []string{"postgres", "kafka", "elasticsearch", "nats"} {
		if deps[s] != "service_healthy" {
			t.Errorf("cdc depends on %s: %q, want service_healthy", s, deps[s])
		}
	}
	if port := imageMetricsPort(t); !slices.Contains(cdc.Ports, port+":"+port) {
		t.Errorf("cdc publishes %v, not its metrics port %s", cdc.Ports, port)
	}
	if cdc.mounts(t)["/etc/cdc/cdc.yaml"] != "./deploy/cdc.yaml" {
		t.Errorf("cdc mounts %v: want ./deploy/cdc.yaml at /etc/cdc/cdc.yaml, where the image's CMD reads it", cdc.Volumes)
	}

	for name, image := range map[string]string{"prometheus": "prom/prometheus:", "grafana": "grafana/grafana:"} {
		s, ok := c.Services[name]
		if !ok || !strings.HasPrefix(s.Image, image) || !slices.Equal(s.Profiles, []string{"observability"}) {
			t.Errorf("service %s: image %q, profiles %v; want %s* in profile observability", name, s.Image, s.Profiles, image)
		}
	}
	for name, s := range c.Services {
		if len(s.Profiles) > 0 && name != "prometheus" && name != "grafana" {
			t.Errorf("service %s is in profiles %v: only the observability services are optional", name, s.Profiles)
		}
		for _, host := range s.mounts(t) {
			if _, err := os.Stat(filepath.Join(root, host)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, host, err)
			}
		}
	}
}

// dockerignore is .dockerignore's patterns, compiled: Docker's syntax (a
// path relative to the context, * within a segment, ** across segments,
// ! to re-include), matching a path or any directory above it.
type dockerignore []struct {
	re      *regexp.Regexp
	exclude bool
}

func loadDockerignore(t *testing.T) dockerignore {
	t.Helper()
	var out dockerignore
	sc := bufio.NewScanner(bytes.NewReader(read(t, ".dockerignore")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exclude := !strings.HasPrefix(line, "!")
		line = strings.Trim(strings.TrimPrefix(line, "!"), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case line[i] == '*':
				re.WriteString("[^/]*")
			case line[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(line[i : i+1]))
			}
		}
		re.WriteString("(?:/.*)?$")
		out = append(out, struct {
			re      *regexp.Regexp
			exclude bool
		}{regexp.MustCompile(re.String()), exclude})
	}
	return out
}

// ignored reports whether path (relative, slash-separated) stays out of
// the build context: the last pattern that matches decides.
func (d dockerignore) ignored(path string) bool {
	ignored := false
	for _, p := range d {
		if p.re.MatchString(path) {
			ignored = p.exclude
		}
	}
	return ignored
}

// TestDockerignore: the build context keeps what the Dockerfile builds
// from (go.mod, go.sum, every Go file outside testdata, what they embed)
// and leaves out the repository's history, docs and test data.
func TestDockerignore(t *testing.T) {
	d := loadDockerignore(t)
	keep := []string{"go.mod", "go.sum"}
	embed := regexp.MustCompile(`(?m)^//go:embed (.+)$`)
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if e.IsDir() && (e.Name() == ".git" || e.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !e.IsDir() && strings.HasSuffix(rel, ".go") {
			keep = append(keep, rel)
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range embed.FindAllStringSubmatch(string(b), -1) {
				for _, pat := range strings.Fields(m[1]) {
					files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), pat))
					for _, f := range files {
						r, _ := filepath.Rel(root, f)
						keep = append(keep, filepath.ToSlash(r))
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keep) < 100 {
		t.Fatalf("found only %d Go files", len(keep))
	}
	for _, f := range keep {
		if d.ignored(f) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", f)
		}
	}
	for _, f := range []string{".git", ".git/HEAD", "docs/architecture.md", "README.md", "decoder/testdata/x", "cmd/cdc/cdc.test"} {
		if !d.ignored(f) {
			t.Errorf(".dockerignore keeps %s in the build context", f)
		}
	}
}
