package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/martencdc/cdc/bench"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/internal/pgtest"
)

// TestBenchSmoke runs cdc bench with a tiny workload: every measure runs,
// every cdc sink gets every event, and the report is well formed. Speed is
// not asserted (see README: Benchmarks).
func TestBenchSmoke(t *testing.T) {
	t.Setenv("CDC_TEST_MAIN", "1") // the cdc children are this test binary running main
	dsn := pgtest.NewDatabase(t, pg)
	code, out, errOut := runInProcess(t, nil, "bench", "--dsn", dsn, "--events", "500", "--rates", "300", "--duration", "1s",
		"--big-tx", "2000", "--slow-every", "0", "--rollback-every", "0", "--json")
	if code != cli.ExitOK {
		t.Fatalf("cdc bench: exit %d\n%s", code, errOut)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("cdc bench --json: %v\n%s", err, out)
	}
	want := []string{"ceiling", "cdc stdout", "cdc kafka", "cdc elastic", "cdc postgres", "cdc all four sinks",
		"cdc stdout @ 300/s", "cdc kafka @ 300/s", "cdc elastic @ 300/s", "polling like Marten 8.x", "polling like Marten 9.16+", "one COPY transaction of 2000 events"}
	if len(r.Rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(r.Rows), len(want), out)
	}
	for i, row := range r.Rows {
		if !strings.HasPrefix(row.Name, want[i]) {
			t.Errorf("row %d is %q, want %q...", i, row.Name, want[i])
		}
		if row.Missing != 0 || row.Events == 0 {
			t.Errorf("row %q: %d events, %d missing", row.Name, row.Events, row.Missing)
		}
		if i < 6 && (row.Rate <= 0 || row.Ratio <= 0) {
			t.Errorf("row %q: rate %v, ratio %v", row.Name, row.Rate, row.Ratio)
		}
		if strings.HasPrefix(row.Name, "cdc") && row.PeakRSS <= 0 {
			t.Errorf("row %q: no peak RSS", row.Name)
		}
	}
	var slots int
	mustDo(t, "slots", pgtest.Conn(t, dsn).QueryRow(t.Context(), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots))
	if slots != 0 {
		t.Errorf("cdc bench left %d slots", slots)
	}
}
