package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc"
)

// env returns a lookupEnv function over vars.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// specExample is the example of SPEC §4 restricted to stdout sinks.
const specExample = `pipelines:
  - name: helpdesk                  # unique; names the slot and publication unless set
    source:
      dsn: postgres://cdc:${PGPASSWORD}@db:5432/helpdesk
      schema: helpdesk              # where mt_events lives; default public
      slot: cdc_helpdesk            # default cdc_<name>
      publication: cdc_helpdesk     # default cdc_<name>
      filter: "tenant_id in ('acme','globex')"   # optional publication row filter (PG15+)
      start: now                    # for a new slot: now | beginning
    checkpoints:
      dsn: postgres://cdc:${PGPASSWORD}@db:5432/checkpoints
    standby_retry: 2s
    status_interval: 500ms
    sinks:
      - name: bus
        kind: stdout
        include: ["incident_*"]          # event-type globs; default all
        exclude: []
        tenants: [acme, globex]
        batch: {max_events: 100, max_bytes: 512KiB, max_wait: 50ms}
        on_error: dead_letter
      - name: debug
        kind: stdout                     # JSON lines, for trying things out
`

func TestParseSpecExample(t *testing.T) {
	cfg, err := Parse("cdc.yaml", []byte(specExample), env(map[string]string{"PGPASSWORD": "s3cr:t@#"}))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{Pipelines: []Pipeline{{
		Name: "helpdesk",
		Source: Source{
			DSN:         "postgres://cdc:s3cr%3At%40%23@db:5432/helpdesk",
			Schema:      "helpdesk",
			Slot:        "cdc_helpdesk",
			Publication: "cdc_helpdesk",
			Filter:      "tenant_id in ('acme','globex')",
			Start:       StartNow,
			Timeout:     30 * time.Second,
		},
		Checkpoints:     Checkpoints{DSN: "postgres://cdc:s3cr%3At%40%23@db:5432/checkpoints", Schema: "helpdesk"},
		StandbyRetry:    2 * time.Second,
		StatusInterval:  500 * time.Millisecond,
		ShutdownTimeout: 20 * time.Second,
		FailureGrace:    time.Minute,
		Sinks: []Sink{
			{
				Name:    "bus",
				Kind:    "stdout",
				Include: []string{"incident_*"},
				Tenants: []string{"acme", "globex"},
				Batch:   cdc.BatchPolicy{MaxEvents: 100, MaxBytes: 512 << 10, MaxWait: 50 * time.Millisecond},
				OnError: OnErrorDeadLetter, Start: StartNow,
				Options: &StdoutOptions{},
			},
			{
				Name:    "debug",
				Kind:    "stdout",
				Batch:   cdc.BatchPolicy{}.WithDefaults(),
				OnError: OnErrorStop, Start: StartNow,
				Options: &StdoutOptions{},
			},
		},
	}}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	p, ok := cfg.Pipeline("helpdesk")
	if !ok || p != &cfg.Pipelines[0] {
		t.Errorf("Pipeline(helpdesk) = %p, %v", p, ok)
	}
	if _, ok := cfg.Pipeline("nope"); ok {
		t.Error("Pipeline(nope) found")
	}
	if s, ok := p.Sink("debug"); !ok || s != &p.Sinks[1] {
		t.Errorf("Sink(debug) = %p, %v", s, ok)
	}
	if _, ok := p.Sink("nope"); ok {
		t.Error("Sink(nope) found")
	}
}

func TestParseDefaults(t *testing.T) {
	const doc = `pipelines:
  - name: orders
    source: {dsn: "host=db user=cdc"}
    sinks:
      - {name: out, kind: stdout}
      - name: partial
        kind: stdout
        batch: {max_bytes: 1MB}
`
	cfg, err := Parse("cdc.yaml", []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{Pipelines: []Pipeline{{
		Name: "orders",
		Source: Source{
			DSN:         "host=db user=cdc",
			Schema:      "public",
			Slot:        "cdc_orders",
			Publication: "cdc_orders",
			Start:       StartNow,
			Timeout:     30 * time.Second,
		},
		Checkpoints:     Checkpoints{DSN: "host=db user=cdc", Schema: "public"},
		StandbyRetry:    time.Second,
		StatusInterval:  time.Second,
		ShutdownTimeout: 20 * time.Second,
		FailureGrace:    time.Minute,
		Sinks: []Sink{
			{Name: "out", Kind: "stdout", OnError: OnErrorStop, Start: StartNow, Options: &StdoutOptions{},
				Batch: cdc.BatchPolicy{MaxEvents: 5000, MaxBytes: 4 << 20, MaxWait: 10 * time.Millisecond}},
			{Name: "partial", Kind: "stdout", OnError: OnErrorStop, Start: StartNow, Options: &StdoutOptions{},
				Batch: cdc.BatchPolicy{MaxEvents: 5000, MaxBytes: 1000000, MaxWait: 10 * time.Millisecond}},
		},
	}}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestParseCheckpointsSchemaAndStart(t *testing.T) {
	const doc = `pipelines:
  - name: a
    source: {dsn: x, schema: helpdesk, start: beginning}
    checkpoints: {schema: cdc}
    sinks: [{name: out, kind: stdout}]
  - name: b
    source: {dsn: x, schema: other}
    sinks: [{name: out, kind: stdout}]
`
	cfg, err := Parse("cdc.yaml", []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Pipelines[0], cfg.Pipelines[1]
	if a.Source.Start != StartBeginning || a.Checkpoints != (Checkpoints{DSN: "x", Schema: "cdc"}) {
		t.Errorf("a = %+v", a)
	}
	if b.Checkpoints != (Checkpoints{DSN: "x", Schema: "other"}) || b.Source.Slot != "cdc_b" {
		t.Errorf("b = %+v", b)
	}
}

func TestParseMergeKeys(t *testing.T) {
	const doc = `pipelines:
  - name: a
    source: {dsn: x}
    sinks:
      - &base
        name: one
        kind: stdout
        batch: &batch {max_events: 10, max_wait: 1s}
      - <<: *base
        name: two
        batch:
          <<: *batch
          max_events: 20
`
	cfg, err := Parse("cdc.yaml", []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Pipelines[0].Sinks
	if len(s) != 2 || s[1].Name != "two" || s[1].Kind != "stdout" ||
		s[1].Batch.MaxEvents != 20 || s[1].Batch.MaxWait != time.Second || s[0].Batch.MaxEvents != 10 {
		t.Errorf("sinks = %+v", s)
	}
}

func TestParseEnv(t *testing.T) {
	vars := map[string]string{
		"PGPASSWORD": `p@ss: #w'rd"`,
		"EMPTY":      "",
		"TENANT":     "acme",
		"SINK":       "bus",
		"EVENTS":     "250",
	}
	tests := []struct {
		name  string
		value string // the value of source.dsn
		want  string
	}{
		{"set", "host=db password=${PGPASSWORD}", `host=db password='p@ss: #w\'rd"'`},
		{"unset with default", "host=${PGHOST:-localhost}", "host=localhost"},
		{"set with default", "${TENANT:-other}", "acme"},
		{"empty with default", "a${EMPTY:-b}c", "abc"},
		{"empty without default", "a${EMPTY}c", "ac"},
		{"empty default", "a${NOPE:-}c", "ac"},
		{"dollar dollar", "pa$$word", "pa$word"},
		{"dollar dollar brace", "$${PGPASSWORD}", "${PGPASSWORD}"},
		{"lone dollar", "pa$word$", "pa$word$"},
		{"dollar in default", "${NOPE:-a$$b}", "a$b"},
		{"two variables", "${TENANT}/${SINK}", "acme/bus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "pipelines:\n  - name: a\n    source:\n      dsn: '" + strings.ReplaceAll(tt.value, "'", "''") +
				"'\n    sinks: [{name: out, kind: stdout}]\n"
			cfg, err := Parse("cdc.yaml", []byte(doc), env(vars))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Pipelines[0].Source.DSN; got != tt.want {
				t.Errorf("dsn = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("list item and nested keys", func(t *testing.T) {
		const doc = `pipelines:
  - name: ${PIPELINE:-orders}
    source:
      dsn: ${DSN:-host=db}
    sinks:
      - name: ${SINK}
        kind: stdout
        tenants:
          - ${TENANT}
          - "${OTHER:-globex}"
        batch:
          max_events: ${EVENTS}
          max_wait: ${WAIT:-20ms}
`
		cfg, err := Parse("cdc.yaml", []byte(doc), env(vars))
		if err != nil {
			t.Fatal(err)
		}
		p := cfg.Pipelines[0]
		s := p.Sinks[0]
		if p.Name != "orders" || p.Source.DSN != "host=db" || s.Name != "bus" ||
			!reflect.DeepEqual(s.Tenants, []string{"acme", "globex"}) ||
			s.Batch.MaxEvents != 250 || s.Batch.MaxWait != 20*time.Millisecond {
			t.Errorf("pipeline = %+v", p)
		}
	})
}

// TestParseErrors checks the exact text of each kind of problem.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		env  map[string]string
		want []string // the lines of the error
	}{
		{
			name: "unknown top-level key",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks: [{name: out, kind: stdout}]
pipeline: []
`,
			want: []string{"cdc.yaml:5: pipeline: unknown key (known: pipelines)"},
		},
		{
			name: "unknown pipeline key",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks: [{name: out, kind: stdout}]
    standby: 1s
`,
			want: []string{"cdc.yaml:5: pipelines[0].standby: unknown key (known: name, source, checkpoints, sinks, standby_retry, status_interval, shutdown_timeout, failure_grace, backfill)"},
		},
		{
			name: "unknown source key",
			doc: `pipelines:
  - name: a
    source:
      dsn: x
      shema: helpdesk
    sinks: [{name: out, kind: stdout}]
`,
			want: []string{"cdc.yaml:5: pipelines[0].source.shema: unknown key (known: dsn, schema, slot, publication, filter, start, timeout)"},
		},
		{
			name: "unknown checkpoints key",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    checkpoints: {table: x}
    sinks: [{name: out, kind: stdout}]
`,
			want: []string{"cdc.yaml:4: pipelines[0].checkpoints.table: unknown key (known: dsn, schema)"},
		},
		{
			name: "unknown batch key",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks:
      - name: out
        kind: stdout
      - name: out2
        kind: stdout
        batch:
          max_evnts: 10
`,
			want: []string{"cdc.yaml:10: pipelines[0].sinks[1].batch.max_evnts: unknown key (known: max_events, max_bytes, max_wait)"},
		},
		{
			name: "key of another kind",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks:
      - name: out
        kind: stdout
        brokers: [kafka:9092]
`,
			want: []string{"cdc.yaml:7: pipelines[0].sinks[0].brokers: unknown key (known: name, kind, include, exclude, tenants, batch, on_error, start, marten_progress)"},
		},
		{
			name: "missing required keys",
			doc: `pipelines:
  - source:
      schema: helpdesk
    sinks:
      - include: [a]
`,
			want: []string{
				"cdc.yaml:2: pipelines[0].name: required",
				"cdc.yaml:2: pipelines[0].source.dsn: required",
				"cdc.yaml:5: pipelines[0].sinks[0].name: required",
				"cdc.yaml:5: pipelines[0].sinks[0].kind: required",
			},
		},
		{
			name: "missing source and sinks",
			doc: `pipelines:
  - name: a
`,
			want: []string{
				"cdc.yaml:2: pipelines[0].source.dsn: required",
				"cdc.yaml:2: pipelines[0].sinks: required",
			},
		},
		{
			name: "empty values",
			doc: `pipelines:
  - name: ""
    source: {dsn: ""}
    sinks: []
`,
			want: []string{
				"cdc.yaml:2: pipelines[0].name: must not be empty",
				"cdc.yaml:3: pipelines[0].source.dsn: must not be empty",
				"cdc.yaml:4: pipelines[0].sinks: must not be empty",
			},
		},
		{
			name: "missing pipelines",
			doc:  "# nothing\n",
			want: []string{"cdc.yaml:1: pipelines: required"},
		},
		{
			name: "empty pipelines",
			doc:  "\npipelines: []\n",
			want: []string{"cdc.yaml:2: pipelines: must not be empty"},
		},
		{
			name: "null pipelines",
			doc:  "pipelines:\n",
			want: []string{"cdc.yaml:1: pipelines: required"},
		},
		{
			name: "root is not a mapping",
			doc:  "- a\n- b\n",
			want: []string{"cdc.yaml:1: want a mapping, got a list"},
		},
		{
			name: "duplicate key",
			doc: `pipelines:
  - name: a
    source:
      dsn: x
      dsn: y
    sinks: [{name: out, kind: stdout}]
`,
			want: []string{"cdc.yaml:5: pipelines[0].source.dsn: duplicate key (first at line 4)"},
		},
		{
			name: "duplicate pipeline name",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks: [{name: out, kind: stdout}]
  - name: a
    source: {dsn: y}
    sinks: [{name: out, kind: stdout}]
`,
			want: []string{`cdc.yaml:5: pipelines[1].name: duplicate pipeline name "a" (first at pipelines[0], line 2)`},
		},
		{
			name: "duplicate sink name",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks:
      - {name: out, kind: stdout}
      - name: err
        kind: stdout
      - name: out
        kind: stdout
`,
			want: []string{`cdc.yaml:8: pipelines[0].sinks[2].name: duplicate sink name "out" (first at pipelines[0].sinks[0], line 5)`},
		},
		{
			name: "duplicate slot on the same dsn",
			doc: `pipelines:
  - name: a
    source: {dsn: x, slot: s}
    sinks: [{name: out, kind: stdout}]
  - name: b
    source: {dsn: x, slot: s, publication: cdc_a}
    sinks: [{name: out, kind: stdout}]
  - name: c
    source: {dsn: other, slot: s}
    sinks: [{name: out, kind: stdout}]
`,
			want: []string{
				`cdc.yaml:6: pipelines[1].source.slot: slot "s" is also used by pipelines[0], on the same dsn`,
				`cdc.yaml:6: pipelines[1].source.publication: publication "cdc_a" is also used by pipelines[0], on the same dsn`,
			},
		},
		{
			name: "bad names",
			doc: `pipelines:
  - name: Help-Desk
    source:
      dsn: x
      slot: Cdc-Slot
      publication: ""
      schema: "My Schema"
    checkpoints: {schema: 1st}
    sinks:
      - {name: Out, kind: stdout}
  - name: a_pipeline_name_that_is_much_too_long_xx_x
    source: {dsn: x}
    sinks: [{name: out, kind: stdout}]
`,
			want: []string{
				`cdc.yaml:2: pipelines[0].name: invalid pipeline name "Help-Desk": want a lower-case letter, then lower-case letters, digits or _, at most 40 in all`,
				`cdc.yaml:5: pipelines[0].source.slot: invalid slot name "Cdc-Slot": want 1 to 63 lower-case letters, digits or _`,
				`cdc.yaml:6: pipelines[0].source.publication: invalid publication name "": want 1 to 63 lower-case letters, digits or _`,
				`cdc.yaml:7: pipelines[0].source.schema: invalid schema name "My Schema": want a lower-case letter or _, then lower-case letters, digits or _, at most 63 in all`,
				`cdc.yaml:8: pipelines[0].checkpoints.schema: invalid schema name "1st": want a lower-case letter or _, then lower-case letters, digits or _, at most 63 in all`,
				`cdc.yaml:10: pipelines[0].sinks[0].name: invalid sink name "Out": want a lower-case letter, then lower-case letters, digits, _ or -`,
				`cdc.yaml:11: pipelines[1].name: invalid pipeline name "a_pipeline_name_that_is_much_too_long_xx_x": want a lower-case letter, then lower-case letters, digits or _, at most 40 in all`,
			},
		},
		{
			name: "bad durations",
			doc: `pipelines:
  - name: a
    standby_retry: 5 seconds
    status_interval: 0s
    source: {dsn: x}
    sinks:
      - name: out
        kind: stdout
        batch: {max_wait: 10}
`,
			want: []string{
				`cdc.yaml:3: pipelines[0].standby_retry: want a duration like 10ms or 1s, got "5 seconds"`,
				`cdc.yaml:4: pipelines[0].status_interval: must be greater than 0, got "0s"`,
				`cdc.yaml:9: pipelines[0].sinks[0].batch.max_wait: want a duration like 10ms or 1s, got "10"`,
			},
		},
		{
			name: "bad sizes and integers",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks:
      - name: out
        kind: stdout
        batch:
          max_events: lots
          max_bytes: 4 megs
      - name: out2
        kind: stdout
        batch: {max_events: 0, max_bytes: 0KiB}
      - name: out3
        kind: stdout
        batch: {max_events: 1.5, max_bytes: 99999999999GiB}
      - name: out4
        kind: stdout
        batch: {max_events: [1], max_bytes: {a: 1}}
`,
			want: []string{
				`cdc.yaml:8: pipelines[0].sinks[0].batch.max_events: want an integer, got "lots"`,
				`cdc.yaml:9: pipelines[0].sinks[0].batch.max_bytes: want a size like 4MiB, 512KiB, 1MB or 1000 (bytes), got "4 megs"`,
				`cdc.yaml:12: pipelines[0].sinks[1].batch.max_events: must be greater than 0, got 0`,
				`cdc.yaml:12: pipelines[0].sinks[1].batch.max_bytes: size must be greater than 0, got "0KiB"`,
				`cdc.yaml:15: pipelines[0].sinks[2].batch.max_events: want an integer, got "1.5"`,
				`cdc.yaml:15: pipelines[0].sinks[2].batch.max_bytes: size too large, got "99999999999GiB"`,
				`cdc.yaml:18: pipelines[0].sinks[3].batch.max_events: want an integer, got a list`,
				`cdc.yaml:18: pipelines[0].sinks[3].batch.max_bytes: want a size, got a mapping`,
			},
		},
		{
			name: "bad globs and lists",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks:
      - name: out
        kind: stdout
        include: ["incident_[", "ok_*"]
        exclude: "incident_*"
        tenants: [acme, "", [x]]
`,
			want: []string{
				`cdc.yaml:7: pipelines[0].sinks[0].include[0]: invalid glob "incident_[": syntax error in pattern (path.Match syntax: * ? [a-z] \)`,
				`cdc.yaml:8: pipelines[0].sinks[0].exclude: want a list, got a string`,
				`cdc.yaml:9: pipelines[0].sinks[0].tenants[1]: empty tenant id`,
				`cdc.yaml:9: pipelines[0].sinks[0].tenants[2]: want a string, got a list`,
			},
		},
		{
			name: "bad enums",
			doc: `pipelines:
  - name: a
    source: {dsn: x, start: earliest}
    sinks:
      - {name: out, kind: stdout, on_error: ignore}
`,
			want: []string{
				`cdc.yaml:3: pipelines[0].source.start: want one of now, beginning, got "earliest"`,
				`cdc.yaml:5: pipelines[0].sinks[0].on_error: want one of stop, dead_letter, got "ignore"`,
			},
		},
		{
			name: "unknown kind",
			doc: `pipelines:
  - name: a
    source: {dsn: x}
    sinks:
      - name: out
        kind: stdot
        whatever: 1
`,
			want: []string{`cdc.yaml:6: pipelines[0].sinks[0].kind: unknown kind "stdot" (available: stdout, file, kafka, elastic, postgres, nats)`},
		},
		{
			name: "wrong structure",
			doc: `pipelines:
  - name: [a]
    source: postgres://cdc:hunter2@db/x
    checkpoints: [x]
    sinks: {name: out}
  - just a string
`,
			want: []string{
				`cdc.yaml:2: pipelines[0].name: want a string, got a list`,
				`cdc.yaml:3: pipelines[0].source: want a mapping, got a string`,
				`cdc.yaml:4: pipelines[0].checkpoints: want a mapping, got a list`,
				`cdc.yaml:5: pipelines[0].sinks: want a list, got a mapping`,
				`cdc.yaml:6: pipelines[1]: want a mapping, got a string`,
			},
		},
		{
			name: "unset variable",
			doc: `pipelines:
  - name: a
    source:
      dsn: postgres://cdc:${PGPASSWORD}@db/${PGDATABASE}
    sinks: [{name: out, kind: stdout, tenants: ["${TENANT}"]}]
`,
			want: []string{
				`cdc.yaml:4: pipelines[0].source.dsn: environment variable PGPASSWORD is not set and ${PGPASSWORD} has no default`,
				`cdc.yaml:4: pipelines[0].source.dsn: environment variable PGDATABASE is not set and ${PGDATABASE} has no default`,
				`cdc.yaml:5: pipelines[0].sinks[0].tenants[0]: environment variable TENANT is not set and ${TENANT} has no default`,
			},
		},
		{
			name: "bad variable syntax",
			doc: `pipelines:
  - name: a
    source:
      dsn: postgres://cdc:${PGPASSWORD@db/x
      filter: ${A B}
      schema: ${A:-${B}}
    sinks: [{name: out, kind: stdout}]
`,
			want: []string{
				`cdc.yaml:4: pipelines[0].source.dsn: unterminated "${" (write "$$" for a literal "$")`,
				`cdc.yaml:5: pipelines[0].source.filter: invalid variable name in "${...}": want ${NAME} or ${NAME:-default} (write "$$" for a literal "$")`,
				`cdc.yaml:6: pipelines[0].source.schema: ${A:-...}: a default cannot contain "${"`,
			},
		},
		{
			name: "malformed YAML",
			doc: `pipelines:
  - name: a
    source: {dsn: x
    sinks: [{name: out, kind: stdout}]
`,
			want: []string{`cdc.yaml:3: invalid YAML: did not find expected ',' or '}'`},
		},
		{
			name: "malformed YAML, block",
			doc:  "pipelines:\n  - name: a\n    source: {dsn: x}\n   sinks: []\n",
			want: []string{`cdc.yaml:2: invalid YAML: did not find expected '-' indicator`},
		},
		{
			name: "malformed YAML, scanner",
			doc:  "pipelines:\n  - name: a\n    source: {dsn: \"x\\q\"}\n",
			want: []string{`cdc.yaml:3: invalid YAML: found unknown escape character`},
		},
		{
			name: "malformed YAML on the first line",
			doc:  "pipelines: a: b\n",
			want: []string{`cdc.yaml:1: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name: "unknown anchor",
			doc:  "pipelines:\n  - name: a\n    source: *src\n",
			want: []string{`cdc.yaml:3: invalid YAML: unknown anchor 'src' referenced`},
		},
		{
			name: "control character",
			doc:  "pipelines:\n  - name: a\x01\n",
			want: []string{`cdc.yaml:2: invalid YAML: control characters are not allowed`},
		},
		{
			name: "two documents",
			doc:  "pipelines: []\n---\npipelines: []\n",
			want: []string{`cdc.yaml:2: only one YAML document is allowed`},
		},
		{
			name: "problems from every level at once",
			doc: `pipelines:
  - name: a
    source: {dsn: x, slot: BAD}
    sinks:
      - name: out
        kind: stdout
        batch: {max_events: -1}
  - name: a
    bogus: 1
    source: {dsn: y}
    sinks: [{name: out, kind: nope}]
`,
			want: []string{
				`cdc.yaml:3: pipelines[0].source.slot: invalid slot name "BAD": want 1 to 63 lower-case letters, digits or _`,
				`cdc.yaml:7: pipelines[0].sinks[0].batch.max_events: must be greater than 0, got -1`,
				`cdc.yaml:8: pipelines[1].name: duplicate pipeline name "a" (first at pipelines[0], line 2)`,
				`cdc.yaml:9: pipelines[1].bogus: unknown key (known: name, source, checkpoints, sinks, standby_retry, status_interval, shutdown_timeout, failure_grace, backfill)`,
				`cdc.yaml:11: pipelines[1].sinks[0].kind: unknown kind "nope" (available: stdout, file, kafka, elastic, postgres, nats)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("cdc.yaml", []byte(tt.doc), env(tt.env))
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("config %+v returned with an error", cfg)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			if len(e.Problems) != len(got) {
				t.Errorf("%d problems for %d lines", len(e.Problems), len(got))
			}
		})
	}
}

// TestParseErrorsHideSecrets checks that no error shows a DSN or password,
// whether written in the file or taken from the environment.
func TestParseErrorsHideSecrets(t *testing.T) {
	const secret = "hunter2"
	vars := map[string]string{"PGPASSWORD": secret, "DSN": "postgres://cdc:" + secret + "@db/x"}
	docs := []string{
		// A DSN where a mapping is expected.
		"pipelines:\n  - name: a\n    source: postgres://cdc:hunter2@db/x\n",
		"pipelines:\n  - name: a\n    source: ${DSN}\n",
		// A DSN in the wrong key.
		"pipelines:\n  - name: a\n    source: {dsn: x, schema: 'postgres://cdc:hunter2@db/x'}\n",
		"pipelines:\n  - name: a\n    source: {dsn: x, slot: 'host=db password=hunter2'}\n",
		"pipelines:\n  - name: a\n    source: {dsn: x, start: '${DSN}'}\n",
		"pipelines:\n  - name: a\n    source: {dsn: x}\n    sinks: [{name: o, kind: stdout, batch: {max_bytes: 'postgres://u:hunter2@h'}}]\n",
		"pipelines:\n  - name: a\n    source: {dsn: x}\n    sinks: [{name: o, kind: stdout, batch: {max_wait: 'password=hunter2'}}]\n",
		// Problems next to a DSN.
		"pipelines:\n  - name: a\n    source:\n      dsn: postgres://cdc:hunter2@db/x\n      dsn: postgres://cdc:hunter2@db/y\n",
		"pipelines:\n  - name: a\n    source: {dsn: 'postgres://cdc:hunter2@db/${NOPE}'}\n",
		"pipelines:\n  - name: a\n    source: {dsn: 'postgres://cdc:hunter2${@db/x'}\n",
		"pipelines:\n  - name: a\n    source: {dsn: 'postgres://cdc:hunter2${x y}@db/x'}\n",
		"pipelines:\n  - name: a\n    source: {dsn: [postgres://cdc:hunter2@db/x]}\n",
		"pipelines:\n  - name: a\n    source: {dsn: 'postgres://cdc:${PGPASSWORD}@db/x'}\n    checkpoints: {dsn: {a: hunter2}}\n",
		"pipelines:\n  - name: a\n    source: {dsn: 'postgres://cdc:hunter2@db/x'\n",
		"pipelines:\n  - name: a\n    source: {dsn: \"postgres://cdc:hunter2\\q@db/x\"}\n",
	}
	for i, doc := range docs {
		_, err := Parse("cdc.yaml", []byte(doc), env(vars))
		if err == nil {
			t.Errorf("doc %d: no error", i)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("doc %d: error shows the password:\n%s", i, err)
		}
	}
}

func TestSinkKinds(t *testing.T) {
	if got := SinkKinds(); !reflect.DeepEqual(got, []string{"stdout", "file", "kafka", "elastic", "postgres", "nats"}) {
		t.Errorf("SinkKinds() = %q", got)
	}
	for _, k := range sinkKinds {
		if got := k.decode(&mapping{d: &decoder{}, fields: map[string]field{}}).Kind(); got != k.name {
			t.Errorf("kind %s decodes options of kind %s", k.name, got)
		}
	}
}
