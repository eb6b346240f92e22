package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc/internal/marten"
)

// progressRow is a row of mt_event_progression.
type progressRow struct {
	seq     int64
	updated time.Time
	status  *string // agent_status, when the table has it
	beat    *time.Time
}

// progressRows reads schema.mt_event_progression by name.
func progressRows(t *testing.T, r *layoutRun, extended bool) map[string]progressRow {
	t.Helper()
	q := `SELECT name, last_seq_id, last_updated, NULL::text, NULL::timestamptz FROM ` + pgx.Identifier{r.schema, "mt_event_progression"}.Sanitize()
	if extended {
		q = `SELECT name, last_seq_id, last_updated, agent_status, heartbeat FROM ` + pgx.Identifier{r.schema, "mt_event_progression"}.Sanitize()
	}
	rows, err := r.pool.Query(t.Context(), q)
	mustDo(t, "read mt_event_progression", err)
	out := map[string]progressRow{}
	var name string
	var row progressRow
	_, err = pgx.ForEachRow(rows, []any{&name, &row.seq, &row.updated, &row.status, &row.beat}, func() error {
		out[name] = row
		return nil
	})
	mustDo(t, "read mt_event_progression", err)
	return out
}

// TestMartenProgress: with marten_progress on a stdout sink (rows written
// after each durable write) and on a Postgres sink into the Marten database
// (rows written in its own transaction), mt_event_progression holds rows
// cdc:<pipeline>:<sink> (per tenant under per-tenant partitioning) whose
// last_seq_id is the highest delivered seq_id, for every Marten layout of
// the progression table the project has (7, 8, 8 with extended tracking,
// 9, 9 with per-tenant partitions); the daemon's own rows are untouched.
func TestMartenProgress(t *testing.T) {
	for _, tc := range []struct {
		name     string
		layout   marten.Layout
		tenants  []string
		extended bool // EnableExtendedProgressionTracking's columns
	}{
		{"marten7", marten.LayoutMarten7, nil, false},
		{"marten8", marten.LayoutDefault, nil, false},
		{"marten8_extended", marten.LayoutDefault, nil, true},
		{"marten9", marten.LayoutMarten9, nil, true},
		{"marten9_per_tenant", marten.LayoutConjoinedPartitioned, []string{"tenant-a", "tenant_b"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var setup string
			if tc.extended {
				setup = `ALTER TABLE public.mt_event_progression
    ADD COLUMN heartbeat timestamptz NULL, ADD COLUMN agent_status varchar(20) NULL, ADD COLUMN pause_reason text NULL,
    ADD COLUMN running_on_node integer NULL, ADD COLUMN warning_behind_threshold bigint NULL, ADD COLUMN critical_behind_threshold bigint NULL`
			}
			r := startLayoutWith(t, layoutConfig{
				setup:  setup,
				layout: tc.layout, schema: "public", tenants: tc.tenants,
				out: "marten_progress: true\n",
				sinks: `      - name: rm
        kind: postgres
        dsn: ${CDC_TEST_DSN}
        mode: events
        table: rm_events
        marten_progress: true
      - name: other
        kind: stdout
`,
			})
			ctx := t.Context()
			// The daemon's rows, which cdc must leave alone.
			daemon := []string{"HighWaterMark", "IncidentDetails:All"}
			for _, tenant := range tc.tenants {
				daemon = append(daemon, "HighWaterMark:"+tenant, "IncidentDetails:All:"+tenant)
			}
			for i, name := range daemon {
				mustDo(t, "daemon row", marten.MarkEventProgression(ctx, r.pool, "public", name, int64(3+i)))
			}
			before := progressRows(t, r, tc.extended)

			tenants := tc.tenants
			if len(tenants) == 0 {
				tenants = []string{""}
			}
			var want []string
			for range 2 {
				for _, tenant := range tenants {
					ids, _ := r.writeEveryPath(tenant)
					want = append(want, ids...)
				}
			}
			got := r.finish(want[len(want)-1])
			highest := map[string]int64{} // by row name
			for _, e := range got {
				name := "cdc:p:%s"
				if len(tc.tenants) > 0 {
					name += ":" + *e.TenantID
				}
				highest[name] = max(highest[name], e.SeqID)
			}
			after := progressRows(t, r, tc.extended)
			for _, sink := range []string{"out", "rm"} {
				for pattern, seq := range highest {
					name := fmt.Sprintf(pattern, sink)
					row, ok := after[name]
					if !ok || row.seq != seq {
						t.Errorf("row %s: %+v (present %v), want last_seq_id %d", name, row, ok, seq)
					}
					if tc.extended && (row.status == nil || *row.status != "Running" || row.beat == nil) {
						t.Errorf("row %s: agent_status %v, heartbeat %v; want Running and a time", name, row.status, row.beat)
					}
				}
			}
			for name, row := range after {
				if prev, ok := before[name]; ok {
					if row.seq != prev.seq || !row.updated.Equal(prev.updated) || row.status != nil || row.beat != nil {
						t.Errorf("daemon row %s changed: %+v, was %+v", name, row, prev)
					}
					continue
				}
				if _, ok := highest[strings.Replace(strings.Replace(name, ":out", ":%s", 1), ":rm", ":%s", 1)]; !ok {
					t.Errorf("unexpected row %s: %+v (the sink without marten_progress, or a name cdc should not write)", name, row)
				}
			}
			if len(after) != len(before)+2*len(highest) {
				t.Errorf("%d rows, want the %d of the daemon and %d of cdc: %v", len(after), len(before), 2*len(highest), after)
			}
			t.Logf("%d events delivered; cdc's rows: %v", len(got), highest)
		})
	}
}
