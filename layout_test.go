package cdc_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/martencdc/cdc"

// pkg is what go list says of a package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

// packages lists the module's packages with their imports and dependencies
// (not those of their tests).
func packages(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	return pkgs
}

// isStd reports whether an import path is of the standard library.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// TestLayout keeps the dependency rules of the package layout (README,
// Development): the vocabulary does no I/O, the pipeline core and the pure
// stages need no database or broker client, sinks never import one another,
// only replication speaks the replication protocol, and the production
// binary carries none of the test fakes.
func TestLayout(t *testing.T) {
	pkgs := packages(t)
	pure := map[string]bool{"": true, "decoder": true, "envelope": true, "route": true, "pipeline": true, "internal/retry": true}
	for name := range pure {
		p, ok := pkgs[name]
		if !ok {
			t.Fatalf("package %q not found", name)
		}
		for _, d := range p.Deps {
			if !isStd(d) && !pure[strings.TrimPrefix(strings.TrimPrefix(d, module), "/")] {
				t.Errorf("package %q depends on %s; it may use the standard library and %v only", name, d, keys(pure))
			}
		}
	}
	testOnly := []string{module + "/internal/esfake", module + "/internal/marten", module + "/internal/pgcluster",
		module + "/internal/pgtest", module + "/internal/natsserver", module + "/examples/", module + "/sinks/sinktest",
		"github.com/twmb/franz-go/pkg/kfake", "github.com/nats-io/nats-server/"}
	for _, cmd := range []string{"cmd/cdc"} {
		for _, d := range pkgs[cmd].Deps {
			for _, bad := range testOnly {
				if strings.HasPrefix(d, bad) {
					t.Errorf("%s links %s, which is for tests and the demo only", cmd, d)
				}
			}
		}
	}
	for name, p := range pkgs {
		for _, imp := range p.Imports {
			rel := strings.TrimPrefix(imp, module+"/")
			if strings.HasPrefix(name, "sinks/") && strings.HasPrefix(rel, "sinks/") && !strings.HasPrefix(rel, name) {
				t.Errorf("sink package %s imports %s: sinks never import one another", name, imp)
			}
			if strings.HasPrefix(imp, "github.com/jackc/pglogrepl") && name != "replication" {
				t.Errorf("%s imports pglogrepl: only replication speaks the replication protocol", name)
			}
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
