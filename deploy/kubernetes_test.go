package deploy_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/martencdc/cdc/admin"
	"github.com/martencdc/cdc/config"
)

// object is a Kubernetes manifest: the fields common to every kind, the
// data of ConfigMaps and Secrets, and the spec left to decode per kind.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
	Resources  []string          `yaml:"resources"` // a Kustomization's
	file       string
}

func (o object) String() string { return fmt.Sprintf("%s %s (%s)", o.Kind, o.Metadata.Name, o.file) }

func (o object) spec(t *testing.T, v any) {
	t.Helper()
	if err := o.Spec.Decode(v); err != nil {
		t.Fatalf("%s: spec: %v", o, err)
	}
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// selects reports whether s selects objects labelled labels: it must not be
// empty, and every label it asks for must be there.
func (s labelSelector) selects(labels map[string]string) bool {
	if len(s.MatchLabels) == 0 {
		return false
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		SecretRef *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe    *probe `yaml:"startupProbe"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type deploymentSpec struct {
	Replicas int           `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
			SecurityContext               struct {
				RunAsNonRoot *bool `yaml:"runAsNonRoot"`
			} `yaml:"securityContext"`
			Containers []container `yaml:"containers"`
			Volumes    []struct {
				Name      string                 `yaml:"name"`
				ConfigMap *struct{ Name string } `yaml:"configMap"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

// manifests reads every document of every YAML file of deploy/kubernetes.
func manifests(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy/kubernetes/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range documents(t, f, b) {
			var o object
			if err := doc.Decode(&o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			o.file = filepath.Base(f)
			if o.APIVersion == "" || o.Kind == "" {
				t.Errorf("%s: a document without apiVersion or kind", o.file)
			}
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of kind.
func one(t *testing.T, objs []object, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s in deploy/kubernetes, have %v", kind, found)
	}
	return found[0]
}

// flag returns the value of --name in args ("" if absent).
func flag(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestKubernetes: the manifests of deploy/kubernetes hold together and fit
// cdc: the ConfigMap's cdc.yaml parses with every ${VAR} set from the
// Deployment's environment and the Secret; probes are on the admin
// endpoints cdc serves, on the port of --admin-addr; two replicas or
// more (one streams, one stands by); a grace period longer than the
// configuration's shutdown_timeout plus 5 s; non-root with a read-only
// root filesystem; the Service, the ServiceMonitor and the
// PodDisruptionBudget select what they must; the PrometheusRule holds the
// alerts of deploy/prometheus/alerts.yml.
func TestKubernetes(t *testing.T) {
	objs := manifests(t)

	kust := one(t, objs, "Kustomization")
	var files []string
	for _, o := range objs {
		if o.Kind != "Kustomization" && !slices.Contains(files, o.file) {
			files = append(files, o.file)
		}
	}
	slices.Sort(files)
	if got := slices.Sorted(slices.Values(kust.Resources)); !slices.Equal(got, files) {
		t.Errorf("kustomization.yaml lists %v, the directory has %v", got, files)
	}

	dep := one(t, objs, "Deployment")
	var ds deploymentSpec
	dep.spec(t, &ds)
	pod := ds.Template.Spec
	if ds.Replicas < 2 {
		t.Errorf("%d replicas: want 2 or more, one streaming and one standing by", ds.Replicas)
	}
	if !ds.Selector.selects(ds.Template.Metadata.Labels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", ds.Selector.MatchLabels, ds.Template.Metadata.Labels)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("container args %v: want cdc run", c.Args)
	}

	// The configuration, from the ConfigMap mounted where --config points.
	cfgPath := flag(c.Args, "--config")
	cm := one(t, objs, "ConfigMap")
	var cfgData string
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
				if key, ok := strings.CutPrefix(cfgPath, strings.TrimSuffix(m.MountPath, "/")+"/"); ok {
					cfgData = cm.Data[key]
				}
			}
		}
	}
	if cfgData == "" {
		t.Fatalf("--config %s is not a key of the ConfigMap %s mounted in the container", cfgPath, cm.Metadata.Name)
	}
	secret := one(t, objs, "Secret")
	secretValue := func(name, key string) (string, bool) {
		if name != secret.Metadata.Name {
			t.Errorf("the container refers to Secret %s; deploy/kubernetes has %s", name, secret.Metadata.Name)
			return "", false
		}
		if v, ok := secret.StringData[key]; ok {
			return v, true
		}
		v, ok := secret.Data[key]
		return v, ok
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			v, ok := secretValue(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			if !ok {
				t.Errorf("env %s: Secret %s has no key %s", e.Name, secret.Metadata.Name, e.ValueFrom.SecretKeyRef.Key)
				continue
			}
			env[e.Name] = v
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		}
	}
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			for k := range secret.StringData {
				env[k], _ = secretValue(e.SecretRef.Name, k)
			}
		}
	}
	cfg, err := config.Parse(cm.file+": "+cfgPath, []byte(cfgData), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("the ConfigMap's configuration, with the container's environment:\n%v", err)
	}

	// Grace period: longer than a clean stop of the slowest pipeline.
	var shutdown time.Duration
	for _, p := range cfg.Pipelines {
		shutdown = max(shutdown, p.ShutdownTimeout)
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= shutdown+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %s: want more than shutdown_timeout %s + 5s to close the sinks", grace, shutdown)
	}

	// Probes: cdc's admin endpoints, on the --admin-addr port (or its
	// former name, --metrics-addr).
	adminAddr := flag(c.Args, "--admin-addr")
	if adminAddr == "" {
		adminAddr = flag(c.Args, "--metrics-addr")
	}
	_, metricsPort, err := net.SplitHostPort(adminAddr)
	if err != nil {
		t.Fatalf("--admin-addr in %v: %v", c.Args, err)
	}
	containerPort := func(p any) string {
		for _, cp := range c.Ports {
			if cp.Name == fmt.Sprint(p) {
				return fmt.Sprint(cp.ContainerPort)
			}
		}
		return fmt.Sprint(p)
	}
	srv := httptest.NewServer(admin.Handler(prometheus.NewRegistry(), nil))
	defer srv.Close()
	for _, tc := range []struct {
		name  string
		probe *probe
		path  string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"startup", c.StartupProbe, "/healthz"},
	} {
		if tc.probe == nil || tc.probe.HTTPGet == nil {
			t.Errorf("no %s probe (httpGet)", tc.name)
			continue
		}
		if tc.probe.HTTPGet.Path != tc.path {
			t.Errorf("%s probe on %s, want %s", tc.name, tc.probe.HTTPGet.Path, tc.path)
		}
		if port := containerPort(tc.probe.HTTPGet.Port); port != metricsPort {
			t.Errorf("%s probe on port %s, cdc serves its admin endpoints on %s (--admin-addr)", tc.name, port, metricsPort)
		}
		resp, err := http.Get(srv.URL + tc.probe.HTTPGet.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s probe: cdc's admin listener answers %s with %d", tc.name, tc.probe.HTTPGet.Path, resp.StatusCode)
		}
	}

	// Security: the image's nonroot user, nothing writable but volumes.
	if (pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot) &&
		(c.SecurityContext.RunAsNonRoot == nil || !*c.SecurityContext.RunAsNonRoot) {
		t.Error("runAsNonRoot is not set")
	}
	if !c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not set")
	}
	if p := c.SecurityContext.AllowPrivilegeEscalation; p == nil || *p {
		t.Error("allowPrivilegeEscalation is not false")
	}

	// The Service of the metrics port, its ServiceMonitor, the PDB.
	svc := one(t, objs, "Service")
	var ss struct {
		Selector                 map[string]string `yaml:"selector"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Ports                    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	svc.spec(t, &ss)
	if !(labelSelector{MatchLabels: ss.Selector}).selects(ds.Template.Metadata.Labels) {
		t.Errorf("Service %s selects %v, not the pods %v", svc.Metadata.Name, ss.Selector, ds.Template.Metadata.Labels)
	}
	if !ss.PublishNotReadyAddresses {
		t.Error("the metrics Service must publish pods that are not ready: a pod whose sink fails is not ready, and its metrics matter then")
	}
	var sm struct {
		Selector  labelSelector `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	}
	mon := one(t, objs, "ServiceMonitor")
	if mon.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %s", mon.APIVersion)
	}
	mon.spec(t, &sm)
	if !sm.Selector.selects(svc.Metadata.Labels) {
		t.Errorf("the ServiceMonitor selects %v, not the Service's labels %v", sm.Selector.MatchLabels, svc.Metadata.Labels)
	}
	if len(sm.Endpoints) == 0 {
		t.Error("the ServiceMonitor has no endpoints")
	}
	for _, e := range sm.Endpoints {
		i := slices.IndexFunc(ss.Ports, func(p struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		}) bool {
			return p.Name == e.Port
		})
		switch {
		case i < 0:
			t.Errorf("the ServiceMonitor scrapes port %q, which the Service does not name", e.Port)
		case containerPort(ss.Ports[i].TargetPort) != metricsPort:
			t.Errorf("Service port %s targets %v, not the metrics port %s", e.Port, ss.Ports[i].TargetPort, metricsPort)
		}
		if e.Path != "" && e.Path != "/metrics" {
			t.Errorf("the ServiceMonitor scrapes %s", e.Path)
		}
	}
	// The PrometheusRule holds the alerts of deploy/prometheus/alerts.yml.
	rule := one(t, objs, "PrometheusRule")
	var want, got any
	unmarshal(t, "deploy/prometheus/alerts.yml", &want)
	rule.spec(t, &got)
	if rule.APIVersion != "monitoring.coreos.com/v1" || !reflect.DeepEqual(got, want) {
		t.Errorf("%s: spec differs from deploy/prometheus/alerts.yml; indent that file under spec:", rule)
	}

	pdb := one(t, objs, "PodDisruptionBudget")
	var ps struct {
		Selector       labelSelector `yaml:"selector"`
		MinAvailable   *int          `yaml:"minAvailable"`
		MaxUnavailable *int          `yaml:"maxUnavailable"`
	}
	pdb.spec(t, &ps)
	if !ps.Selector.selects(ds.Template.Metadata.Labels) {
		t.Errorf("the PodDisruptionBudget selects %v, not the pods %v", ps.Selector.MatchLabels, ds.Template.Metadata.Labels)
	}
	if (ps.MaxUnavailable == nil || *ps.MaxUnavailable < 1 || *ps.MaxUnavailable >= ds.Replicas) &&
		(ps.MinAvailable == nil || *ps.MinAvailable < 1 || *ps.MinAvailable >= ds.Replicas) {
		t.Errorf("the PodDisruptionBudget must keep a pod and let one go: minAvailable %v, maxUnavailable %v", ps.MinAvailable, ps.MaxUnavailable)
	}
}
