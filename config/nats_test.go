package config

import (
	"reflect"
	"testing"
	"time"
)

func TestParseNATSSink(t *testing.T) {
	tests := []struct {
		name string
		keys string
		env  map[string]string
		want *NATSOptions // SubjectTemplate is checked through Subject
		errs []string     // the lines of the error
	}{
		{
			name: "defaults",
			keys: "        servers: [nats:4222]\n        subject: helpdesk.events\n        stream: HELPDESK\n",
			want: &NATSOptions{Servers: []string{"nats:4222"}, Subject: "helpdesk.events", Stream: "HELPDESK",
				Value: "envelope", StreamRetention: "limits", StreamStorage: "file"},
		},
		{
			name: "every key",
			keys: `        servers: [nats://n1:4222, "tls://n2:4223"]
        subject: "helpdesk.{{.TenantID}}.{{.Type}}"
        stream: HELPDESK
        create_stream: true
        stream_subjects: ["helpdesk.>"]
        stream_retention: workqueue
        stream_max_age: 720h
        stream_replicas: 3
        stream_storage: memory
        duplicate_window: 10m
        value: data
        max_in_flight: 128
        ack_timeout: 5s
        client_name: projector
        user: cdc
        password: "${NATS_PASSWORD}"
        tls: {ca_file: /etc/ca.pem}
`,
			env: map[string]string{"NATS_PASSWORD": "s3cret"},
			want: &NATSOptions{Servers: []string{"nats://n1:4222", "tls://n2:4223"}, Subject: "helpdesk.{{.TenantID}}.{{.Type}}",
				Stream: "HELPDESK", CreateStream: true, StreamSubjects: []string{"helpdesk.>"}, StreamRetention: "workqueue",
				StreamMaxAge: 720 * time.Hour, StreamReplicas: 3, StreamStorage: "memory", DuplicateWindow: 10 * time.Minute,
				Value: "data", MaxInFlight: 128, AckTimeout: 5 * time.Second, ClientName: "projector",
				User: "cdc", Password: "s3cret", TLS: &TLSOptions{CAFile: "/etc/ca.pem"}},
		},
		{
			name: "missing servers, subject and stream",
			keys: "",
			errs: []string{
				"cdc.yaml:5: pipelines[0].sinks[0].servers: required",
				"cdc.yaml:5: pipelines[0].sinks[0].subject: required",
				"cdc.yaml:5: pipelines[0].sinks[0].stream: required",
			},
		},
		{
			name: "bad values",
			keys: `        servers: ["nats://cdc:hunter2@n1:4222", "http://n2", "a b"]
        subject: "helpdesk..{{.Type}}x"
        stream: "HELP.DESK"
        value: avro
        max_in_flight: 0
        duplicate_window: 1m
        stream_subjects: ["a.>.b"]
`,
			errs: []string{
				`cdc.yaml:7: pipelines[0].sinks[0].servers[0]: the URL holds credentials: set user and password (or token) instead, so that they never show in logs`,
				`cdc.yaml:7: pipelines[0].sinks[0].servers[1]: scheme "http": want nats:// or tls://`,
				`cdc.yaml:7: pipelines[0].sinks[0].servers[2]: not host:port or a URL (it holds ',' or blanks)`,
				`cdc.yaml:9: pipelines[0].sinks[0].stream: stream name "HELP.DESK" holds one of . * > / \ or blanks`,
				`cdc.yaml:10: pipelines[0].sinks[0].value: want one of envelope, data, got "avro"`,
				`cdc.yaml:11: pipelines[0].sinks[0].max_in_flight: must be greater than 0, got 0`,
				`cdc.yaml:12: pipelines[0].sinks[0].duplicate_window: duplicate_window only applies to a stream cdc creates: set create_stream: true, or change the existing stream with the nats CLI`,
				`cdc.yaml:13: pipelines[0].sinks[0].stream_subjects[0]: subject "a.>.b" has > before its last token`,
				`cdc.yaml:13: pipelines[0].sinks[0].stream_subjects: stream_subjects only applies to a stream cdc creates: set create_stream: true, or change the existing stream with the nats CLI`,
			},
		},
		{
			name: "constant subject",
			keys: "        servers: [n:4222]\n        subject: \"a..b\"\n        stream: S\n",
			errs: []string{`cdc.yaml:8: pipelines[0].sinks[0].subject: subject "a..b" has an empty token (a leading, trailing or doubled dot)`},
		},
		{
			name: "two ways to authenticate",
			keys: "        servers: [n:4222]\n        subject: a\n        stream: S\n        user: cdc\n        password: hunter2\n        token: hunter2\n",
			errs: []string{`cdc.yaml:5: pipelines[0].sinks[0]: set one of user and password, token, nkey_file or creds_file, not several`},
		},
		{
			name: "window longer than max age",
			keys: "        servers: [n:4222]\n        subject: a\n        stream: S\n        create_stream: true\n        stream_max_age: 1m\n        duplicate_window: 2m\n",
			errs: []string{`cdc.yaml:12: pipelines[0].sinks[0].duplicate_window: duplicate_window 2m0s is longer than stream_max_age 1m0s`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			cfg, err := Parse("cdc.yaml", []byte(fileSinkDoc("nats", tt.keys)), env)
			if tt.errs != nil {
				checkErrorLines(t, err, tt.errs, "hunter2")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o, ok := cfg.Pipelines[0].Sinks[0].Options.(*NATSOptions)
			if !ok {
				t.Fatalf("options %T", cfg.Pipelines[0].Sinks[0].Options)
			}
			if o.SubjectTemplate == nil || o.SubjectTemplate.String() != tt.want.Subject {
				t.Errorf("subject template %v, want %q", o.SubjectTemplate, tt.want.Subject)
			}
			o.SubjectTemplate = nil
			if !reflect.DeepEqual(o, tt.want) {
				t.Errorf("options\n got %+v\nwant %+v", o, tt.want)
			}
		})
	}
}
