package config

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(specExample)
	f.Add("pipelines:\n  - name: a\n    source: {dsn: x}\n    sinks: [{name: out, kind: stdout}]\n")
	f.Add("pipelines:\n  - &p {name: a, source: {dsn: '${X:-y}'}, sinks: [{<<: *p, kind: stdout}]}\n  - *p\n")
	f.Add("pipelines: &a [*a]\n")
	f.Add("pipelines:\n  - name: a\n    source: &s {<<: *s}\n")
	f.Add("pipelines:\n  - name: a\n    source: {dsn: x}\n    sinks: [{name: b, kind: stdout, batch: {max_bytes: 1GiB, max_wait: 1h}}]\n---\n")
	f.Add("")
	f.Add("a: [\n")
	f.Fuzz(func(t *testing.T, doc string) {
		lookup := env(map[string]string{"X": "x", "EMPTY": ""})
		cfg, err := Parse("f.yaml", []byte(doc), lookup)
		if err != nil {
			if cfg != nil {
				t.Fatal("config and error")
			}
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %v is not an *Error with problems", err)
			}
			for _, p := range e.Problems {
				if p.File != "f.yaml" || p.Line < 0 || p.Msg == "" {
					t.Fatalf("bad problem %+v", p)
				}
			}
			if len(strings.Split(err.Error(), "\n")) < len(e.Problems) {
				t.Fatalf("error has fewer lines than problems:\n%v", err)
			}
			return
		}
		if len(cfg.Pipelines) == 0 {
			t.Fatal("no pipelines")
		}
		for _, p := range cfg.Pipelines {
			if p.Name == "" || p.Source.DSN == "" || p.Source.Slot == "" || p.Source.Publication == "" ||
				p.Checkpoints.DSN == "" || p.Checkpoints.Schema == "" || p.StandbyRetry <= 0 || p.StatusInterval <= 0 || len(p.Sinks) == 0 {
				t.Fatalf("incomplete pipeline %+v", p)
			}
			for _, s := range p.Sinks {
				if s.Name == "" || s.Options == nil || s.Options.Kind() != s.Kind || s.OnError == "" ||
					s.Batch.MaxEvents <= 0 || s.Batch.MaxBytes <= 0 || s.Batch.MaxWait <= 0 {
					t.Fatalf("incomplete sink %+v", s)
				}
			}
		}
	})
}
