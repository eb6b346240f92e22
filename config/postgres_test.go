package config

import (
	"reflect"
	"testing"
)

func TestParsePostgresSink(t *testing.T) {
	tests := []struct {
		name string
		keys string
		want *PostgresOptions
		errs []string
	}{
		{
			name: "projections",
			keys: `        dsn: postgres://cdc@db/readmodel
        projections:
          - on: [incident_logged]
            sql: |
              insert into incident_short_info (id, customer_id, status, version)
              values ($stream_id, ($data->>'CustomerId')::uuid, 'Pending', $version)
              on conflict (id) do nothing
          - name: summary
            on: ["incident_*", agent_assigned_to_incident]
            sql:
              - update a set n = n + 1 where id = $stream_id
              - delete from b where id = $id
`,
			want: &PostgresOptions{DSN: "postgres://cdc@db/readmodel", Mode: "projections", Projections: []ProjectionOptions{
				{Name: "projections[0]", On: []string{"incident_logged"}, Line: 9, SQL: []string{
					"insert into incident_short_info (id, customer_id, status, version)\nvalues ($stream_id, ($data->>'CustomerId')::uuid, 'Pending', $version)\non conflict (id) do nothing\n"}},
				{Name: "summary", On: []string{"incident_*", "agent_assigned_to_incident"}, Line: 14, SQL: []string{
					"update a set n = n + 1 where id = $stream_id", "delete from b where id = $id"}},
			}},
		},
		{
			name: "events",
			keys: "        dsn: postgres://db/archive\n        mode: events\n        table: archive.events\n",
			want: &PostgresOptions{DSN: "postgres://db/archive", Mode: "events", Table: "archive.events"},
		},
		{
			name: "missing keys",
			keys: "",
			errs: []string{
				"cdc.yaml:5: pipelines[0].sinks[0].dsn: required",
				"cdc.yaml:5: pipelines[0].sinks[0].projections: required with mode: projections",
			},
		},
		{
			name: "bad projections",
			keys: `        dsn: postgres://db/x
        table: t
        projections:
          - on: ["[bad"]
            sql: []
          - sql: select 1
            when: always
`,
			errs: []string{
				"cdc.yaml:8: pipelines[0].sinks[0].table: only used with mode: events",
				`cdc.yaml:10: pipelines[0].sinks[0].projections[0].on[0]: invalid glob "[bad"`,
				"cdc.yaml:11: pipelines[0].sinks[0].projections[0].sql: must hold at least one statement",
				"cdc.yaml:13: pipelines[0].sinks[0].projections[1].when: unknown key (known: name, on, sql)",
				"cdc.yaml:12: pipelines[0].sinks[0].projections[1].on: required",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("cdc.yaml", []byte(fileSinkDoc("postgres", tt.keys)), func(string) (string, bool) { return "", false })
			if tt.errs != nil {
				checkErrorLines(t, err, tt.errs, "hunter2")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := cfg.Pipelines[0].Sinks[0].Options.(*PostgresOptions)
			if !reflect.DeepEqual(o, tt.want) {
				t.Errorf("options\n got %#v\nwant %#v", o, tt.want)
			}
		})
	}
}
