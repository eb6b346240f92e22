package sinktest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/martencdc/cdc"
)

// TestEvents checks the fields of the events against literal values, and
// the order of their positions.
func TestEvents(t *testing.T) {
	events := Events(Spec{Streams: 3, Versions: 2, Pad: 3, FirstSeq: 1})
	if len(events) != 6 {
		t.Fatalf("%d events, want 6", len(events))
	}
	want := &cdc.Event{
		ID:            "0192f0c4-0001-7000-8000-000000000005",
		SeqID:         5,
		StreamID:      "a1b2c3d4-0000-4000-8000-000000000001",
		Version:       2,
		Type:          "incident_categorised",
		DotnetType:    "Helpdesk.Api.Incidents.Event, Helpdesk.Api",
		TenantID:      "globex",
		Timestamp:     time.Date(2026, 11, 22, 10, 0, 0, 5000, time.UTC),
		Data:          json.RawMessage(`{"Description":"event 2 of stream 1","Filler":"xxx"}`),
		Headers:       json.RawMessage(`{"source":"api"}`),
		CorrelationID: "",
		CausationID:   "",
		LSN:           cdc.LSN(0x16B3748 + 0x100),
		Index:         1,
		CommitTime:    time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC),
		TxID:          701,
	}
	if got := events[4]; !reflect.DeepEqual(got, want) {
		t.Errorf("events[4] =\n%+v\nwant\n%+v", got, want)
	}
	if e := events[5]; e.CorrelationID != "corr-6" || e.CausationID != "cause-6" {
		t.Errorf("events[5] has correlation %q and causation %q, want corr-6 and cause-6", e.CorrelationID, e.CausationID)
	}
	sameTx := 0
	for i := 1; i < len(events); i++ {
		switch events[i-1].Position().Compare(events[i].Position()) {
		case 0, 1:
			t.Errorf("position %s of event %d is not after %s", events[i].Position(), i, events[i-1].Position())
		}
		if events[i].LSN == events[i-1].LSN {
			sameTx++
		}
	}
	if sameTx == 0 {
		t.Error("no two events share a transaction")
	}

	custom := Events(Spec{Streams: 2, Versions: 4, Type: TypeByVersion, Data: StepData, Causation: NoID,
		Tenant: func(int) string { return "*DEFAULT*" }})
	e := custom[7] // stream 1, version 4
	if e.Type != "incident_logged" || string(e.Data) != `{"Stream":1,"Step":4,"Filler":"","V4":true}` || e.CausationID != "" || e.TenantID != "*DEFAULT*" {
		t.Errorf("custom spec: %+v", e)
	}
	if Events(Spec{Streams: 0, Versions: 3}) != nil {
		t.Error("no streams, yet events")
	}
}

// TestParseLines reads envelopes, and refuses what is not one.
func TestParseLines(t *testing.T) {
	got, err := ParseLines([]byte(`{"id":"a","seq_id":1,"stream_id":"s","version":3,"data":{"version":9}}` + "\n\n" +
		`{"id":"b","stream_id":"s","version":4}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Record{{"a", "s", 3}, {"b", "s", 4}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{`{"id":"a"}` + "\n", `{"id":"a","stream_id":"s","version":1}`, "not json\n", `{"id":"a","stream_id":"s","version":"1"}` + "\n"} {
		if _, err := ParseLines([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestAudit checks that the checks find what is wrong.
func TestAudit(t *testing.T) {
	ev := Events(Spec{Streams: 2, Versions: 3, FirstSeq: 1}) // s0v1 s1v1 s0v2 s1v2 s0v3 s1v3
	rec := func(i int) Record { return RecordOf(ev[i]) }
	noID := func(i int) Record { r := rec(i); r.ID = ""; return r }
	tests := []struct {
		name       string
		units      []Unit
		want       expect
		redelivery Redelivery
		problems   []string // each in one problem, in order
	}{
		{"all there", []Unit{{"u", []Record{rec(0), rec(1), rec(2), rec(3), rec(4), rec(5)}}},
			expect{written: ev, present: ev}, Idempotent, nil},
		{"without ids", []Unit{{"u", []Record{noID(0), noID(2), noID(4)}}, {"v", []Record{noID(1), noID(3), noID(5)}}},
			expect{written: ev, present: ev}, Idempotent, nil},
		{"duplicates, at least once", []Unit{{"u", []Record{rec(0), rec(2), rec(0), rec(2), rec(4)}}, {"v", []Record{rec(1), rec(3), rec(5), rec(5)}}},
			expect{written: ev, present: ev}, AtLeastOnce, nil},
		{"duplicates, idempotent", []Unit{{"u", []Record{rec(0), rec(2), rec(4), rec(2)}}, {"v", []Record{rec(1), rec(3), rec(5)}}},
			expect{written: ev, present: ev}, Idempotent, []string{"version 2) is held 2 times; the sink is idempotent"}},
		{"missing", []Unit{{"u", []Record{rec(0), rec(1), rec(2), rec(4), rec(5)}}},
			expect{written: ev, present: ev}, AtLeastOnce, []string{ev[3].ID + " (stream " + ev[3].StreamID + " version 2) is missing"}},
		{"out of order", []Unit{{"u", []Record{rec(0), rec(1), rec(4), rec(3), rec(2), rec(5)}}},
			expect{written: ev, present: ev}, AtLeastOnce, []string{"u holds " + ev[2].ID + " (stream " + ev[2].StreamID + " version 2) at 4 after version 3"}},
		{"out of order in a second unit only", []Unit{{"u", []Record{rec(0), rec(2)}}, {"v", []Record{rec(4), rec(0)}}},
			expect{written: ev, present: ev[:1]}, AtLeastOnce, []string{"v holds " + ev[0].ID}},
		{"unknown event", []Unit{{"u", []Record{rec(0), {ID: "zzz", StreamID: "s", Version: 1}}}},
			expect{written: ev, present: ev[:1]}, AtLeastOnce, []string{"zzz (stream s version 1) at 1, which is no event written"}},
		{"wrong stream", []Unit{{"u", []Record{{ID: ev[0].ID, StreamID: "other", Version: 1}}}},
			expect{written: ev}, AtLeastOnce, []string{"but event " + ev[0].ID + " is of stream " + ev[0].StreamID}},
		{"held though absent", []Unit{{"u", []Record{rec(0), rec(1)}}},
			expect{written: ev, present: ev[:1], absent: ev[1:]}, AtLeastOnce, []string{"version 1) is held 1 times, want none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := audit(tt.units, tt.want, tt.redelivery)
			if len(got) != len(tt.problems) {
				t.Fatalf("problems:\n%s\nwant %d containing %q", strings.Join(got, "\n"), len(tt.problems), tt.problems)
			}
			for i, p := range tt.problems {
				if !strings.Contains(got[i], p) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], p)
				}
			}
		})
	}
}

// TestRunMemory runs the suite against sinks that keep events in memory,
// in both redelivery modes: the suite passes a sink that keeps the
// contract.
func TestRunMemory(t *testing.T) {
	for _, r := range []Redelivery{AtLeastOnce, Idempotent} {
		t.Run(strings.ReplaceAll(r.String(), " ", "_"), func(t *testing.T) {
			Run(t, Harness{
				Redelivery: r,
				New: func(t *testing.T) (cdc.Sink, Target) {
					m := &memSink{idempotent: r == Idempotent, held: map[string]bool{}}
					return m, Target{Read: m.read, Block: m.block, Reopen: func(*testing.T) cdc.Sink { return m }}
				},
				Poison: func(e *cdc.Event) { e.Type = "poison" },
			})
		})
	}
}

// TestRunSkip skips what the harness says it cannot do.
func TestRunSkip(t *testing.T) {
	Run(t, Harness{
		New: func(t *testing.T) (cdc.Sink, Target) {
			m := &memSink{held: map[string]bool{}}
			return m, Target{Read: m.read}
		},
		Skip: map[string]string{"Redelivery/Overlapping": "a reason", "CloseFlushes": "another"},
	})
}

// memSink is a sink keeping records in memory: a log (at least once) or a
// set (idempotent). It rejects events of type "poison".
type memSink struct {
	mu         sync.Mutex
	idempotent bool
	log        []Record
	held       map[string]bool
	gate       chan struct{} // non-nil while blocked: closed by unblock
	hung       chan struct{} // closed when a Write waits for the gate
	hungOnce   *sync.Once
}

func (m *memSink) Write(ctx context.Context, b cdc.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	gate, hung, once := m.gate, m.hung, m.hungOnce
	m.mu.Unlock()
	if gate != nil {
		once.Do(func() { close(hung) })
		select {
		case <-gate:
		case <-ctx.Done():
			return fmt.Errorf("memory sink: %w", ctx.Err())
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, e := range b.Events {
		if e.Type == "poison" {
			return &cdc.RejectedError{Index: i, Err: fmt.Errorf("event %s is poison", e.ID)}
		}
		if m.idempotent && m.held[e.ID] {
			continue
		}
		m.held[e.ID] = true
		m.log = append(m.log, RecordOf(e))
	}
	return nil
}

func (m *memSink) Close(context.Context) error { return nil }

func (m *memSink) read(testing.TB) []Unit {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []Unit{{Name: "memory", Records: append([]Record(nil), m.log...)}}
}

func (m *memSink) block(testing.TB) (<-chan struct{}, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gate, hung := make(chan struct{}), make(chan struct{})
	m.gate, m.hung, m.hungOnce = gate, hung, new(sync.Once)
	var once sync.Once
	return hung, func() {
		once.Do(func() {
			m.mu.Lock()
			m.gate = nil
			m.mu.Unlock()
			close(gate)
		})
	}
}
