package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseElasticSink(t *testing.T) {
	tests := []struct {
		name string
		keys string
		env  map[string]string
		want *ElasticOptions // IndexTemplate is checked through Index
		errs []string
	}{
		{
			name: "defaults",
			keys: "        addresses: [http://es:9200]\n        index: helpdesk-events\n",
			want: &ElasticOptions{Addresses: []string{"http://es:9200"}, Index: "helpdesk-events", Mode: "events"},
		},
		{
			name: "every key",
			keys: `        addresses: [https://es1:9200, "https://es2:9200"]
        index: "helpdesk-{{lower .TenantID}}"
        mode: latest
        index_settings: deploy/es-index.json
        username: cdc
        password: "${ES_PASSWORD}"
        workers: 4
        flush_bytes: 2MiB
        request_timeout: 10s
        tls: {ca_file: /etc/es-ca.pem}
`,
			env: map[string]string{"ES_PASSWORD": "s3cret"},
			want: &ElasticOptions{Addresses: []string{"https://es1:9200", "https://es2:9200"}, Index: "helpdesk-{{lower .TenantID}}",
				Mode: "latest", IndexSettings: "deploy/es-index.json", Username: "cdc", Password: "s3cret",
				Workers: 4, FlushBytes: 2 << 20, RequestTimeout: 10 * time.Second, TLS: &TLSOptions{CAFile: "/etc/es-ca.pem"}},
		},
		{
			name: "api key",
			keys: "        addresses: [http://es:9200]\n        index: i\n        api_key: ${ES_KEY}\n",
			env:  map[string]string{"ES_KEY": "Zm9vOmJhcg=="},
			want: &ElasticOptions{Addresses: []string{"http://es:9200"}, Index: "i", Mode: "events", APIKey: "Zm9vOmJhcg=="},
		},
		{
			name: "missing keys",
			keys: "",
			errs: []string{
				"cdc.yaml:5: pipelines[0].sinks[0].addresses: required",
				"cdc.yaml:5: pipelines[0].sinks[0].index: required",
			},
		},
		{
			name: "bad values",
			keys: `        addresses: [es:9200, "http://elastic:hunter2@es:9200"]
        index: "x-{{.Tenant}}"
        mode: newest
        password: hunter2
        api_key: k
`,
			errs: []string{
				`cdc.yaml:7: pipelines[0].sinks[0].addresses[0]: want an http:// or https:// URL with a host, got "es:9200"`,
				`cdc.yaml:7: pipelines[0].sinks[0].addresses[1]: put credentials in username/password or api_key, not in the URL`,
				`cdc.yaml:8: pipelines[0].sinks[0].index: invalid template: unknown field .Tenant`,
				`cdc.yaml:9: pipelines[0].sinks[0].mode: want one of events, latest, got "newest"`,
				`cdc.yaml:10: pipelines[0].sinks[0].password: password without username`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			cfg, err := Parse("cdc.yaml", []byte(fileSinkDoc("elastic", tt.keys)), env)
			if tt.errs != nil {
				checkErrorLines(t, err, tt.errs, "hunter2")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o, ok := cfg.Pipelines[0].Sinks[0].Options.(*ElasticOptions)
			if !ok {
				t.Fatalf("options %T", cfg.Pipelines[0].Sinks[0].Options)
			}
			if o.IndexTemplate == nil || o.IndexTemplate.String() != tt.want.Index {
				t.Errorf("index template %v, want %q", o.IndexTemplate, tt.want.Index)
			}
			o.IndexTemplate = nil
			if !reflect.DeepEqual(o, tt.want) {
				t.Errorf("options\n got %+v\nwant %+v", o, tt.want)
			}
		})
	}
}

// checkErrorLines fails unless err has exactly one line starting with each
// of want, and does not show secret.
func checkErrorLines(t *testing.T, err error, want []string, secret string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.Split(err.Error(), "\n")
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("error lacks a line starting %q; got:\n%s", w, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d error lines, want %d:\n%s", len(got), len(want), err)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the secret:\n%s", err)
	}
}
