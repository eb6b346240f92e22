package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/martencdc/cdc"
)

// fileSinkDoc is a configuration with one sink whose kind-specific keys,
// at line 6 onwards, are keys.
func fileSinkDoc(kind, keys string) string {
	return `pipelines:
  - name: a
    source: {dsn: x}
    sinks:
      - name: out
        kind: ` + kind + "\n" + keys
}

func TestParseFileSink(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		env    map[string]string
		path   string   // the parsed path, when no error
		fields []string // the template's fields, when no error
		want   []string // the lines of the error
	}{
		{
			name:   "templated path",
			doc:    fileSinkDoc("file", "        path: \"out/{{.TenantID}}/{{.Type}}.jsonl\"\n"),
			path:   "out/{{.TenantID}}/{{.Type}}.jsonl",
			fields: []string{"Type", "TenantID"},
		},
		{
			name: "constant path",
			doc:  fileSinkDoc("file", "        path: /var/lib/cdc/events.jsonl\n"),
			path: "/var/lib/cdc/events.jsonl",
		},
		{
			name:   "environment in the path",
			doc:    fileSinkDoc("file", "        path: '${OUT:-out}/{{$.Type}}-{{.Timestamp.Format \"2006-01\"}}.jsonl'\n"),
			env:    map[string]string{"OUT": "/data"},
			path:   `/data/{{$.Type}}-{{.Timestamp.Format "2006-01"}}.jsonl`,
			fields: []string{"Type", "Timestamp"},
		},
		{
			name: "missing path",
			doc:  fileSinkDoc("file", ""),
			want: []string{"cdc.yaml:5: pipelines[0].sinks[0].path: required"},
		},
		{
			name: "empty path",
			doc:  fileSinkDoc("file", "        path: ''\n"),
			want: []string{"cdc.yaml:7: pipelines[0].sinks[0].path: must not be empty"},
		},
		{
			name: "path not a string",
			doc:  fileSinkDoc("file", "        path: [a, b]\n"),
			want: []string{"cdc.yaml:7: pipelines[0].sinks[0].path: want a string, got a list"},
		},
		{
			name: "unknown field",
			doc:  fileSinkDoc("file", "        batch: {max_events: 10}\n        path: \"out/{{.Typ}}.jsonl\"\n"),
			want: []string{"cdc.yaml:8: pipelines[0].sinks[0].path: invalid template: unknown field .Typ (did you mean .Type?); " +
				"the event fields are ID, SeqID, StreamID, Version, Type, DotnetType, TenantID, Timestamp, Data, CorrelationID, CausationID, Headers, UserName, LSN, CommitTime, TxID"},
		},
		{
			name: "template syntax",
			doc:  fileSinkDoc("file", "        path: \"out/{{.Type\"\n"),
			want: []string{"cdc.yaml:7: pipelines[0].sinks[0].path: invalid template: unclosed action"},
		},
		{
			name: "bad method",
			doc:  fileSinkDoc("file", "        path: 'out/{{.Timestamp.Formt \"2006\"}}'\n"),
			want: []string{"cdc.yaml:7: pipelines[0].sinks[0].path: invalid template: at <.Timestamp.Formt>: can't evaluate field Formt in type route.utcTime"},
		},
		{
			name: "unset variable",
			doc:  fileSinkDoc("file", "        path: '${NOPE}/{{.Type}}'\n"),
			want: []string{"cdc.yaml:7: pipelines[0].sinks[0].path: environment variable NOPE is not set and ${NOPE} has no default"},
		},
		{
			name: "unknown key",
			doc:  fileSinkDoc("file", "        path: out.jsonl\n        topic: x\n"),
			want: []string{"cdc.yaml:8: pipelines[0].sinks[0].topic: unknown key (known: name, kind, include, exclude, tenants, batch, on_error, start, marten_progress, path)"},
		},
		{
			name: "path on stdout",
			doc:  fileSinkDoc("stdout", "        path: out.jsonl\n"),
			want: []string{"cdc.yaml:7: pipelines[0].sinks[0].path: unknown key (known: name, kind, include, exclude, tenants, batch, on_error, start, marten_progress)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("cdc.yaml", []byte(tt.doc), env(tt.env))
			if tt.want != nil {
				if err == nil {
					t.Fatalf("no error, config %+v", cfg)
				}
				if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.Pipelines[0].Sinks[0]
			if s.Kind != "file" || s.Batch != (cdc.BatchPolicy{}).WithDefaults() || s.OnError != OnErrorStop {
				t.Errorf("sink = %+v", s)
			}
			o, ok := s.Options.(*FileOptions)
			if !ok {
				t.Fatalf("options %T, want *FileOptions", s.Options)
			}
			if o.Kind() != "file" || o.Path != tt.path || o.Template == nil || o.Template.String() != tt.path {
				t.Fatalf("options = %+v, want path %q", o, tt.path)
			}
			if got := o.Template.Fields(); !reflect.DeepEqual(got, tt.fields) && len(got)+len(tt.fields) > 0 {
				t.Errorf("template fields = %q, want %q", got, tt.fields)
			}
		})
	}
}
