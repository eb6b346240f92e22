package file

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// TestConformance runs the sink conformance suite over a fresh directory,
// with one file per tenant and type, each file an ordering unit. The file
// sink delivers at least once. Its poison event is one whose path would
// leave the template's directory (a tenant of "../.."), which it rejects.
// Cancel/During is skipped: see hangLimitation.
func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Redelivery: sinktest.AtLeastOnce,
		New: func(t *testing.T) (cdc.Sink, sinktest.Target) {
			const path = "out/{{.TenantID}}/{{.Type}}.jsonl"
			dir := t.TempDir()
			return newSink(t, path, dir), sinktest.Target{
				Read:   func(t testing.TB) []sinktest.Unit { return readDir(t, dir) },
				Reopen: func(t *testing.T) cdc.Sink { return newSink(t, path, dir) },
			}
		},
		// Types by version spread each stream over several files.
		Spec:   sinktest.Spec{Type: sinktest.TypeByVersion},
		Poison: func(e *cdc.Event) { e.TenantID = "../.." },
		Skip:   map[string]string{"Cancel/During": hangLimitation},
	})
}

// hangLimitation is why the file sink does not run Cancel/During.
const hangLimitation = "limitation: a local file system cannot be made to hang from a test " +
	"(it would take a FUSE mount), and the sink checks its context only between files: " +
	"a write or fsync that blocks (a hung NFS mount) returns when the kernel does"

// readDir reads every file under dir, each one ordering unit named by its
// slash path.
func readDir(t testing.TB, dir string) []sinktest.Unit {
	t.Helper()
	var units []sinktest.Unit
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		records, err := sinktest.ParseLines(data)
		if err != nil {
			return err
		}
		units = append(units, sinktest.Unit{Name: filepath.ToSlash(rel), Records: records})
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return units
}
