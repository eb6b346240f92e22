package progression

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/martencdc/cdc"
)

func ev(tenant string, seq int64) *cdc.Event { return &cdc.Event{TenantID: tenant, SeqID: seq} }

// execLog is an Execer that records its calls and fails while fail is set.
type execLog struct {
	calls [][]any
	fail  bool
}

func (e *execLog) Exec(_ context.Context, _ string, args ...any) (pgconn.CommandTag, error) {
	if e.fail {
		return pgconn.CommandTag{}, errors.New("connection refused")
	}
	e.calls = append(e.calls, args)
	return pgconn.CommandTag{}, nil
}

// TestWriter: rows carry the highest seq_id per row name, never lower; a
// failed write is carried over to the next; per tenant with per-tenant
// sequences.
func TestWriter(t *testing.T) {
	tab := &Table{upsert: "upsert"}
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		perTenant bool
		batches   [][]*cdc.Event
		failAt    int // 1-based batch whose write fails; 0 none
		want      [][]any
	}{
		{"global", false, [][]*cdc.Event{{ev("a", 3), ev("b", 5), ev("a", 4)}, {ev("a", 2)}, {ev("b", 9)}}, 0,
			[][]any{{[]string{"cdc:p:s"}, []int64{5}}, {[]string{"cdc:p:s"}, []int64{9}}}},
		{"per tenant", true, [][]*cdc.Event{{ev("a", 3), ev("b", 5), ev("a", 4)}, {ev("a", 2)}, {ev("b", 9)}}, 0,
			[][]any{{[]string{"cdc:p:s:a", "cdc:p:s:b"}, []int64{4, 5}}, {[]string{"cdc:p:s:b"}, []int64{9}}}},
		{"carried over", true, [][]*cdc.Event{{ev("a", 1)}, {ev("a", 3)}, {ev("b", 2)}}, 2,
			[][]any{{[]string{"cdc:p:s:a"}, []int64{1}}, {[]string{"cdc:p:s:a", "cdc:p:s:b"}, []int64{3, 2}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter(tab, "p", "s", tc.perTenant, nil)
			db := &execLog{}
			for i, b := range tc.batches {
				db.fail = i+1 == tc.failAt
				err := w.Write(ctx, db, b)
				if (err != nil) != db.fail {
					t.Fatalf("batch %d: %v", i+1, err)
				}
			}
			if len(db.calls) != len(tc.want) {
				t.Fatalf("calls %v, want %v", db.calls, tc.want)
			}
			for i, c := range db.calls {
				if !slices.Equal(c[0].([]string), tc.want[i][0].([]string)) || !slices.Equal(c[1].([]int64), tc.want[i][1].([]int64)) {
					t.Fatalf("call %d: %v, want %v", i, c, tc.want[i])
				}
			}
		})
	}
}

// TestUpsertSQL: the statement sets what the table has, never lowers
// last_seq_id and is restricted to cdc's rows.
func TestUpsertSQL(t *testing.T) {
	name := pgx.Identifier{"helpdesk", TableName}
	for _, tc := range []struct {
		name string
		cols []string
		want []string
		not  []string
	}{
		{"marten 7, 8 and 9 default", []string{"name", "last_seq_id", "last_updated"},
			[]string{`INSERT INTO "helpdesk"."mt_event_progression" AS p (name, last_seq_id, last_updated)`, "greatest(p.last_seq_id, excluded.last_seq_id)", "WHERE p.name LIKE 'cdc:%'", "WHERE r.name LIKE 'cdc:%'"},
			[]string{"heartbeat", "agent_status"}},
		{"extended tracking", []string{"name", "last_seq_id", "last_updated", "heartbeat", "agent_status", "pause_reason", "mode"},
			[]string{"(name, last_seq_id, last_updated, heartbeat, agent_status)", "agent_status = excluded.agent_status", "'Running'"},
			[]string{"pause_reason", "mode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cols := map[string]bool{}
			for _, c := range tc.cols {
				cols[c] = true
			}
			sql := upsertSQL(name, cols)
			for _, w := range tc.want {
				if !strings.Contains(sql, w) {
					t.Errorf("no %q in\n%s", w, sql)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(sql, n) {
					t.Errorf("%q in\n%s", n, sql)
				}
			}
		})
	}
	if got := RowName("helpdesk", "readmodel", ""); got != "cdc:helpdesk:readmodel" {
		t.Errorf("RowName = %q", got)
	}
	if got := RowName("helpdesk", "readmodel", "acme"); got != "cdc:helpdesk:readmodel:acme" {
		t.Errorf("RowName with tenant = %q", got)
	}
}

// TestWriterPending: a row stays below the seq_ids still pending after the
// last delivered event, and rises once they are delivered; per tenant, a
// tenant's pending events hold back only its own row.
func TestWriterPending(t *testing.T) {
	tab := &Table{upsert: "upsert"}
	ctx := context.Background()
	pending := map[string]int64{}
	at := func(tenant string, seq int64, lsn cdc.LSN) *cdc.Event {
		return &cdc.Event{TenantID: tenant, SeqID: seq, LSN: lsn}
	}
	for _, perTenant := range []bool{false, true} {
		w := NewWriter(tab, "p", "s", perTenant, func(sink string, after cdc.Position) map[string]int64 {
			if sink != "s" {
				t.Errorf("pending asked for sink %q", sink)
			}
			if after.LSN != 2 {
				t.Errorf("pending asked after %s, want the last delivered event's position", after)
			}
			return pending
		})
		db := &execLog{}
		pending = map[string]int64{"a": 6} // tenant a's seq 6 committed after 7
		mustWrite(t, w.Write(ctx, db, []*cdc.Event{at("a", 3, 1), at("b", 9, 1), at("a", 7, 2)}))
		pending = map[string]int64{}
		mustWrite(t, w.Write(ctx, db, nil))
		var want [][]any
		if perTenant {
			want = [][]any{{[]string{"cdc:p:s:a", "cdc:p:s:b"}, []int64{5, 9}}, {[]string{"cdc:p:s:a"}, []int64{7}}}
		} else {
			want = [][]any{{[]string{"cdc:p:s"}, []int64{5}}, {[]string{"cdc:p:s"}, []int64{9}}}
		}
		if len(db.calls) != len(want) {
			t.Fatalf("perTenant %v: calls %v, want %v", perTenant, db.calls, want)
		}
		for i, c := range db.calls {
			if !slices.Equal(c[0].([]string), want[i][0].([]string)) || !slices.Equal(c[1].([]int64), want[i][1].([]int64)) {
				t.Fatalf("perTenant %v: call %d: %v, want %v", perTenant, i, c, want[i])
			}
		}
	}
}

func mustWrite(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
