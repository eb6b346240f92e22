// Package deploy_test checks the deployment files of deploy/ and the top of
// the repository (docker-compose.yml, .dockerignore) against the code: the
// metrics the Grafana dashboard and the Prometheus alerts query are those
// cdc exports, with their labels; the Kubernetes manifests hold a
// configuration cdc accepts, probes on cdc's admin endpoints and a grace
// period longer than its shutdown; the compose file has its listeners,
// health checks and profile. The directory holds no Go code but these
// tests.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/metrics"
)

// root is the repository's top directory, from this package's.
const root = ".."

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unmarshal decodes the single YAML document of path into v.
func unmarshal(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(read(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// documents returns every YAML document of data.
func documents(t *testing.T, name string, data []byte) []*yaml.Node {
	t.Helper()
	var out []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(n.Content) > 0 {
			out = append(out, &n)
		}
	}
}

type nopSink struct{}

func (nopSink) Write(context.Context, cdc.Batch) error { return nil }
func (nopSink) Close(context.Context) error            { return nil }

// family is a metric family cdc exports.
type family struct {
	labels    map[string]bool
	histogram bool
}

// exported returns the metrics cdc exports, gathered from a registry with
// one wrapped sink and one probed pipeline whose slot has every figure, by
// the names PromQL knows them by: a histogram's _bucket (with le), _sum
// and _count, never its bare name.
func exported(t *testing.T) map[string]family {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Sink("helpdesk", "bus", nopSink{})
	safe := int64(1 << 30)
	m.AddProbe("helpdesk", func(context.Context) metrics.Snapshot {
		return metrics.Snapshot{Active: true, RetainedWAL: 1, WALStatus: "reserved", SafeWALSize: &safe,
			Sinks: []metrics.SinkSnapshot{{Name: "bus"}}}
	})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]family{}
	for _, f := range families {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		if f.GetType().String() != "HISTOGRAM" {
			out[f.GetName()] = family{labels: labels}
			continue
		}
		bucket := maps.Clone(labels)
		bucket["le"] = true
		out[f.GetName()+"_bucket"] = family{labels: bucket, histogram: true}
		out[f.GetName()+"_sum"] = family{labels: labels, histogram: true}
		out[f.GetName()+"_count"] = family{labels: labels, histogram: true}
	}
	if len(out) < 10 {
		t.Fatalf("cdc exports only %v", slices.Sorted(maps.Keys(out)))
	}
	return out
}

// baseName is the family a PromQL name belongs to: a histogram's series
// name without its suffix.
func baseName(name string, fams map[string]family) string {
	if fams[name].histogram {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, s); ok {
				return b
			}
		}
	}
	return name
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = map[string]bool{"instance": true, "job": true}

var (
	stringRE   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	selectorRE = regexp.MustCompile(`\b(cdc_[a-zA-Z0-9_]*)\s*(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	labelValRE = regexp.MustCompile(`^\s*label_values\(\s*(cdc_[a-zA-Z0-9_]*\s*(?:\{[^}]*\})?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	identRE    = regexp.MustCompile(`[a-zA-Z_][a-zA-Z0-9_]*`)
)

// query is what a PromQL expression asks of cdc's metrics.
type query struct {
	metrics []string        // cdc_ names, as written
	labels  map[string]bool // labels of those metrics, and the target labels
}

// checkPromQL checks that expr (from where) names only metrics cdc
// exports, matches and groups only on labels they have, and has balanced
// brackets; it returns what it asks.
func checkPromQL(t *testing.T, where, expr string, fams map[string]family) query {
	t.Helper()
	if m := labelValRE.FindStringSubmatch(expr); m != nil { // a Grafana variable query
		expr = "count by (" + m[2] + ") (" + m[1] + ")"
	}
	bare := stringRE.ReplaceAllString(expr, `""`)
	stack := []rune{}
	for _, r := range bare {
		switch r {
		case '(', '{', '[':
			stack = append(stack, r)
		case ')', '}', ']':
			open := map[rune]rune{')': '(', '}': '{', ']': '['}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				t.Errorf("%s: unbalanced %q in %s", where, r, expr)
				return query{}
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		t.Errorf("%s: unclosed %q in %s", where, stack, expr)
	}
	q := query{labels: maps.Clone(targetLabels)}
	for _, m := range selectorRE.FindAllStringSubmatch(bare, -1) {
		name := m[1]
		f, ok := fams[name]
		if !ok {
			t.Errorf("%s: %s is not a metric cdc exports (%v)", where, name, slices.Sorted(maps.Keys(fams)))
			continue
		}
		q.metrics = append(q.metrics, name)
		maps.Copy(q.labels, f.labels)
		for _, l := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			if !f.labels[l[1]] && !targetLabels[l[1]] {
				t.Errorf("%s: %s has no label %q (it has %v)", where, name, l[1], slices.Sorted(maps.Keys(f.labels)))
			}
		}
	}
	if len(q.metrics) == 0 {
		t.Errorf("%s: no cdc metric in %s", where, expr)
	}
	for _, g := range groupingRE.FindAllStringSubmatch(bare, -1) {
		for _, l := range identRE.FindAllString(g[1], -1) {
			if !q.labels[l] {
				t.Errorf("%s: groups by %q, which none of %v has", where, l, q.metrics)
			}
		}
	}
	return q
}

var (
	legendRE = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	dollarRE = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
)

// grafanaTarget is a query of a dashboard panel.
type grafanaTarget struct {
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
	Datasource   struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
}

type grafanaPanel struct {
	Type    string          `json:"type"`
	Title   string          `json:"title"`
	Targets []grafanaTarget `json:"targets"`
	Panels  []grafanaPanel  `json:"panels"`
}

type dashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// TestDashboard: every query of the Grafana dashboard names metrics and
// labels cdc exports (its legends too), it uses the datasource variable,
// and every metric cdc exports is on a panel.
func TestDashboard(t *testing.T) {
	fams := exported(t)
	var d dashboard
	if err := json.Unmarshal(read(t, "deploy/grafana/dashboards/cdc.json"), &d); err != nil {
		t.Fatalf("cdc.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("cdc.json: uid %q, title %q", d.UID, d.Title)
	}
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			hasDatasourceVar = hasDatasourceVar || (v.Name == "datasource" && v.Query == "prometheus")
		case "query":
			q, _ := v.Query.(map[string]any)
			expr, _ := q["query"].(string)
			if s, ok := v.Query.(string); ok {
				expr = s
			}
			checkPromQL(t, "variable "+v.Name, expr, fams)
		}
	}
	if !hasDatasourceVar {
		t.Error("cdc.json: no datasource variable of type prometheus named datasource")
	}
	used := map[string]bool{}
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				where := "panel " + strings.TrimSpace(p.Title)
				q := checkPromQL(t, where, tg.Expr, fams)
				for _, m := range q.metrics {
					used[baseName(m, fams)] = true
				}
				for _, l := range legendRE.FindAllStringSubmatch(tg.LegendFormat, -1) {
					if !q.labels[l[1]] {
						t.Errorf("%s: legend {{%s}} is not a label of %v", where, l[1], q.metrics)
					}
				}
				if tg.Datasource.Type != "prometheus" || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s: datasource %+v, want the ${datasource} variable", where, tg.Datasource)
				}
			}
		}
	}
	walk(d.Panels)
	for name := range fams {
		if base := baseName(name, fams); strings.HasPrefix(base, "cdc_") && !used[base] {
			t.Errorf("cdc exports %s, which no panel of cdc.json shows", base)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlerts: every alert of deploy/prometheus/alerts.yml queries metrics
// and labels cdc exports, its annotations name only labels it has, and
// together they cover the slot (safe_wal_size, the growth of retained WAL,
// wal_status unreserved and lost), a lagging sink, a failing sink, no
// instance streaming (and none scraped), and dead letters.
func TestAlerts(t *testing.T) {
	fams := exported(t)
	var rules ruleFile
	unmarshal(t, "deploy/prometheus/alerts.yml", &rules)
	var all strings.Builder
	names := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			where := "alert " + r.Alert
			if r.Alert == "" || names[r.Alert] {
				t.Errorf("group %s: alert name %q missing or repeated", g.Name, r.Alert)
			}
			names[r.Alert] = true
			q := checkPromQL(t, where, r.Expr, fams)
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", where, err)
				}
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", where)
			}
			for _, text := range r.Annotations {
				for _, l := range dollarRE.FindAllStringSubmatch(text, -1) {
					if !q.labels[l[1]] {
						t.Errorf("%s: annotation uses $labels.%s, not a label of %v", where, l[1], q.metrics)
					}
				}
			}
			all.WriteString(r.Expr + "\n")
		}
	}
	exprs := all.String()
	for _, want := range []string{
		"cdc_slot_safe_wal_size_bytes",
		"predict_linear(cdc_slot_retained_wal_bytes",
		`cdc_slot_wal_status{status="unreserved"}`,
		`cdc_slot_wal_status{status="lost"}`,
		"cdc_sink_lag_seconds",
		"cdc_sink_pending_events",
		"rate(cdc_events_delivered_total",
		"sum by (pipeline) (cdc_replication_active) == 0",
		"absent(cdc_replication_active)",
		"increase(cdc_dead_letters_total",
	} {
		if !strings.Contains(exprs, want) {
			t.Errorf("no alert uses %s", want)
		}
	}
}

// TestPrometheusConfig: the compose file's Prometheus loads alerts.yml from
// where it mounts deploy/prometheus, and scrapes the cdc service on the
// port the image serves metrics on.
func TestPrometheusConfig(t *testing.T) {
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	unmarshal(t, "deploy/prometheus/prometheus.yml", &cfg)
	c := loadCompose(t)
	prom := c.Services["prometheus"]
	mounts := prom.mounts(t)
	if !slices.ContainsFunc(cfg.RuleFiles, func(f string) bool {
		return mounts[filepath.Dir(f)] == "./deploy/prometheus" && filepath.Base(f) == "alerts.yml"
	}) {
		t.Errorf("prometheus.yml's rule_files %v do not load alerts.yml from the mount of deploy/prometheus (%v)", cfg.RuleFiles, mounts)
	}
	if !slices.Contains(prom.Command, "--config.file="+mountedAs(mounts, "./deploy/prometheus")+"/prometheus.yml") {
		t.Errorf("prometheus command %v does not read the mounted prometheus.yml", prom.Command)
	}
	port := imageMetricsPort(t)
	var targets []string
	for _, s := range cfg.ScrapeConfigs {
		if s.MetricsPath != "" && s.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s", s.JobName, s.MetricsPath)
		}
		for _, sc := range s.StaticConfigs {
			targets = append(targets, sc.Targets...)
		}
	}
	if !slices.Contains(targets, "cdc:"+port) {
		t.Errorf("prometheus.yml scrapes %v, not cdc:%s", targets, port)
	}
	if _, ok := c.Services["cdc"]; !ok {
		t.Error("docker-compose.yml has no cdc service")
	}
}

// mountedAs returns the container path where host is mounted.
func mountedAs(mounts map[string]string, host string) string {
	for c, h := range mounts {
		if h == host {
			return c
		}
	}
	return ""
}

// imageMetricsPort is the port of --admin-addr (or its former name
// --metrics-addr) in the Dockerfile's CMD.
func imageMetricsPort(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^CMD .*"--(?:admin|metrics)-addr", ":(\d+)"`).FindSubmatch(read(t, "Dockerfile"))
	if m == nil {
		t.Fatal("the Dockerfile's CMD has no --admin-addr")
	}
	return string(m[1])
}

// TestGrafanaProvisioning: the compose file's Grafana gets the datasource
// and the dashboard provider, the provider reads the directory where the
// dashboards are mounted, and the datasource is the compose Prometheus.
func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		Datasources []struct {
			Name, Type, URL, UID string
		} `yaml:"datasources"`
	}
	unmarshal(t, "deploy/grafana/provisioning/datasources/prometheus.yml", &ds)
	var prov struct {
		Providers []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	unmarshal(t, "deploy/grafana/provisioning/dashboards/cdc.yml", &prov)
	c := loadCompose(t)
	g := c.Services["grafana"]
	mounts := g.mounts(t)
	for _, want := range []struct{ host, container string }{
		{"./deploy/grafana/provisioning/datasources", "/etc/grafana/provisioning/datasources"},
		{"./deploy/grafana/provisioning/dashboards", "/etc/grafana/provisioning/dashboards"},
	} {
		if mounts[want.container] != want.host {
			t.Errorf("grafana mounts %v, want %s at %s", mounts, want.host, want.container)
		}
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || mounts[prov.Providers[0].Options.Path] != "./deploy/grafana/dashboards" {
		t.Errorf("dashboard provider %+v does not read the mount of deploy/grafana/dashboards (%v)", prov.Providers, mounts)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" ||
		ds.Datasources[0].URL != "http://prometheus:9090" || c.Services["prometheus"].Image == "" {
		t.Errorf("datasources %+v: want the compose prometheus service", ds.Datasources)
	}
	if g.Environment["GF_AUTH_ANONYMOUS_ENABLED"] != "true" {
		t.Errorf("grafana environment %v: anonymous viewers not enabled", g.Environment)
	}
}

// TestPromtool runs Prometheus's own checks when promtool is installed
// (Debian: apt-get install prometheus): the syntax of prometheus.yml, the
// rules of alerts.yml and their unit tests (alerts_test.yml), and every
// dashboard query, with Grafana's variables replaced, as PromQL.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus); the other tests check the metric names only")
	}
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dir := filepath.Join(root, "deploy/prometheus")
	run(dir, "check", "config", "--syntax-only", "prometheus.yml")
	run(dir, "check", "rules", "alerts.yml")
	run(dir, "test", "rules", "alerts_test.yml")

	var d dashboard
	if err := json.Unmarshal(read(t, "deploy/grafana/dashboards/cdc.json"), &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$pipeline", ".*", "$sink", ".*", "$__rate_interval", "1m", "$__range", "1h")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			walk(p.Panels)
			for _, tg := range p.Targets {
				rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", len(rules)), Expr: vars.Replace(tg.Expr)})
			}
		}
	}
	walk(d.Panels)
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "dashboard.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(tmp, "check", "rules", "dashboard.yml")
}
