package decoder

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cdc "github.com/martencdc/cdc"
)

// goldenMessage is one pgoutput message captured from PostgreSQL 15 by
// testdata/capture.sh.
type goldenMessage struct {
	line int
	data []byte
}

// readGolden reads a capture: comment lines start with '#', the others are
// "lsn xid message-hex".
func readGolden(tb testing.TB, name string) []goldenMessage {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var msgs []goldenMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			tb.Fatalf("%s:%d: want 3 fields, got %d", name, n, len(fields))
		}
		data, err := hex.DecodeString(fields[2])
		if err != nil {
			tb.Fatalf("%s:%d: %v", name, n, err)
		}
		msgs = append(msgs, goldenMessage{line: n, data: data})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return msgs
}

// decodeGolden decodes a whole capture and returns the messages that are
// not KindNone, and how many were.
func decodeGolden(t *testing.T, name string, cfg Config) (msgs []Message, none int) {
	t.Helper()
	d := New(cfg)
	for _, m := range readGolden(t, name) {
		msg, err := d.Decode(m.data)
		if err != nil {
			t.Fatalf("%s:%d: %v", name, m.line, err)
		}
		if msg.Kind == KindNone {
			none++
			continue
		}
		msgs = append(msgs, msg)
	}
	return msgs, none
}

// fillTx completes the expected events with what they take from their
// transaction: LSN and Index (from the position), CommitTime and TxID (from
// the Begin).
func fillTx(want []Message) {
	var begin Message
	for _, m := range want {
		switch {
		case m.Kind == KindBegin:
			begin = m
		case m.Event != nil:
			m.Event.LSN, m.Event.Index = m.Position.LSN, m.Position.Index
			m.Event.CommitTime, m.Event.TxID = begin.CommitTime, begin.TxID
		}
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		file string
		cfg  Config
		want []Message
	}{
		{file: "marten8.hex", cfg: Config{}, want: []Message{
			begin("0/222A540", 797, "2026-11-22T15:54:52.374461Z"),
			event("0/222A540#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000001", SeqID: 1, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:54:52.364297Z"),
				Data:          raw(`{"LoggedAt": "2026-11-22T10:00:00+00:00", "LoggedBy": "c0000000-0000-4000-8000-0000000000aa", "CustomerId": "c0000000-0000-4000-8000-000000000001", "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "Description": "Printer on fire"}`),
				CorrelationID: "corr-42", CausationID: "cmd-1", Headers: raw(`{"source": "api"}`),
			}),
			event("0/222A540#1", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000002", SeqID: 2, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 2,
				Type: "incident_categorised", DotnetType: "Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:54:52.364297Z"),
				Data:          raw(`{"Category": 2, "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "CategorisedAt": "2026-11-22T10:01:00+00:00", "CategorisedBy": "c0000000-0000-4000-8000-0000000000aa"}`),
				CorrelationID: "corr-42", CausationID: "cmd-1", Headers: raw(`{"source": "api"}`),
			}),
			commit("0/222A540", "0/222A570", "2026-11-22T15:54:52.374461Z"),
			begin("0/222A800", 798, "2026-11-22T15:54:52.375557Z"),
			event("0/222A800#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000003", SeqID: 3, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 3,
				Type: "incident_prioritised", DotnetType: "Helpdesk.Api.Incidents.IncidentPrioritised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:54:52.374712Z"),
				Data:          raw(`{"Priority": 1, "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001"}`),
				CorrelationID: "corr-43",
			}),
			commit("0/222A800", "0/222A830", "2026-11-22T15:54:52.375557Z"),
			begin("0/222AAF8", 799, "2026-11-22T15:54:52.375829Z"),
			event("0/222AAF8#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000004", SeqID: 4, StreamID: "a1b2c3d4-0000-4000-8000-000000000002", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:54:52.375619Z"),
				Data:          raw(`{"IncidentId": "a1b2c3d4-0000-4000-8000-000000000002", "Description": "Quick start"}`),
				CorrelationID: "corr-44",
			}),
			commit("0/222AAF8", "0/222AB28", "2026-11-22T15:54:52.375829Z"),
			begin("0/222CA10", 801, "2026-11-22T15:54:52.377706Z"),
			event("0/222CA10#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000011", SeqID: 5, StreamID: "b1b2c3d4-0000-4000-8000-000000000001", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T10:05:00Z"),
				Data:          raw(`{"IncidentId": "b1b2c3d4-0000-4000-8000-000000000001", "Description": "Rich start"}`),
				CorrelationID: "corr-50", CausationID: "cmd-50", Headers: raw(`{"source": "rich"}`),
			}),
			event("0/222CA10#1", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000012", SeqID: 6, StreamID: "b1b2c3d4-0000-4000-8000-000000000001", Version: 2,
				Type: "incident_prioritised", DotnetType: "Helpdesk.Api.Incidents.IncidentPrioritised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T10:05:00Z"),
				Data:          raw(`{"Priority": 3, "IncidentId": "b1b2c3d4-0000-4000-8000-000000000001"}`),
				CorrelationID: "corr-50", CausationID: "cmd-50", Headers: raw(`{"source": "rich"}`),
			}),
			commit("0/222CA10", "0/222CA40", "2026-11-22T15:54:52.377706Z"),
			begin("0/222DD58", 807, "2026-11-22T15:54:52.464977Z"),
			skip("0/222DD58#0", SkipTombstone),
			skip("0/222DD58#1", SkipTombstone),
			commit("0/222DD58", "0/222DD88", "2026-11-22T15:54:52.464977Z"),
			begin("0/222F498", 810, "2026-11-22T15:54:52.470895Z"),
			event("0/222F498#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000021", SeqID: 10, StreamID: "b1b2c3d4-0000-4000-8000-000000000001", Version: 3,
				Type: "incident_note_added", DotnetType: "Helpdesk.Api.Incidents.IncidentNoteAdded, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T10:00:00.5Z"),
				Data:          raw(`{"Note": "café \"quoted\"", "IncidentId": "b1b2c3d4-0000-4000-8000-000000000001"}`),
				CorrelationID: "corr-60", CausationID: "cmd-60", Headers: raw(`{"source": "v9", "attempt": 1}`), UserName: "alice",
			}),
			skip("0/222F498#1", SkipSkipped),
			event("0/222F498#2", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000023", SeqID: 12, StreamID: "b1b2c3d4-0000-4000-8000-000000000001", Version: 5,
				Type: "incident_resolved", DotnetType: "Helpdesk.Api.Incidents.IncidentResolved, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp: ts("2026-11-22T10:11:12Z"),
				Data:      raw(`{"Status": "Resolved", "IncidentId": "b1b2c3d4-0000-4000-8000-000000000001"}`),
			}),
			commit("0/222F498", "0/222F4C8", "2026-11-22T15:54:52.470895Z"),
		}},
		{file: "helpdesk.hex", cfg: Config{Schema: "helpdesk"}, want: []Message{
			begin("0/268B358", 835, "2026-11-22T15:55:00.798266Z"),
			event("0/268B358#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000031", SeqID: 1, StreamID: "incident-42", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:00.795309Z"),
				Data:          raw(`{"IncidentId": "incident-42", "Description": "Screen flickers"}`),
				CorrelationID: "corr-70",
			}),
			event("0/268B358#1", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000032", SeqID: 2, StreamID: "incident-42", Version: 2,
				Type: "incident_categorised", DotnetType: "Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:00.795309Z"),
				Data:          raw(`{"Category": 1, "IncidentId": "incident-42"}`),
				CorrelationID: "corr-70",
			}),
			commit("0/268B358", "0/268B388", "2026-11-22T15:55:00.798266Z"),
			begin("0/268B9A8", 836, "2026-11-22T15:55:00.799597Z"),
			event("0/268B9A8#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000033", SeqID: 3, StreamID: "incident-42", Version: 3,
				Type: "incident_closed", DotnetType: "Helpdesk.Api.Incidents.IncidentClosed, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp: ts("2026-11-22T11:00:00.000001Z"),
				Data:      raw(`{"Status": "Closed", "IncidentId": "incident-42"}`),
			}),
			commit("0/268B9A8", "0/268B9D8", "2026-11-22T15:55:00.799597Z"),
			begin("0/268BDC0", 837, "2026-11-22T15:55:00.799871Z"),
			commit("0/268BDC0", "0/268BDF0", "2026-11-22T15:55:00.799871Z"),
			begin("0/268BE40", 838, "2026-11-22T15:55:00.800045Z"),
			commit("0/268BE40", "0/268BE70", "2026-11-22T15:55:00.800045Z"),
			begin("0/268D8C0", 839, "2026-11-22T15:55:00.802025Z"),
			commit("0/268D8C0", "0/268DBB8", "2026-11-22T15:55:00.802025Z"),
		}},
		{file: "archived.hex", cfg: Config{}, want: []Message{
			begin("0/2AF49F8", 856, "2026-11-22T15:55:01.113413Z"),
			event("0/2AF49F8#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000001", SeqID: 1, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:01.11005Z"),
				Data:          raw(`{"LoggedAt": "2026-11-22T10:00:00+00:00", "LoggedBy": "c0000000-0000-4000-8000-0000000000aa", "CustomerId": "c0000000-0000-4000-8000-000000000001", "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "Description": "Printer on fire"}`),
				CorrelationID: "corr-42", CausationID: "cmd-1", Headers: raw(`{"source": "api"}`),
			}),
			event("0/2AF49F8#1", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000002", SeqID: 2, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 2,
				Type: "incident_categorised", DotnetType: "Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:01.11005Z"),
				Data:          raw(`{"Category": 2, "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "CategorisedAt": "2026-11-22T10:01:00+00:00", "CategorisedBy": "c0000000-0000-4000-8000-0000000000aa"}`),
				CorrelationID: "corr-42", CausationID: "cmd-1", Headers: raw(`{"source": "api"}`),
			}),
			commit("0/2AF49F8", "0/2AF4A28", "2026-11-22T15:55:01.113413Z"),
			begin("0/2AF4CC8", 857, "2026-11-22T15:55:01.114077Z"),
			event("0/2AF4CC8#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000003", SeqID: 3, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 3,
				Type: "incident_prioritised", DotnetType: "Helpdesk.Api.Incidents.IncidentPrioritised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:01.113574Z"),
				Data:          raw(`{"Priority": 1, "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001"}`),
				CorrelationID: "corr-43",
			}),
			commit("0/2AF4CC8", "0/2AF4CF8", "2026-11-22T15:55:01.114077Z"),
			begin("0/2AF4FD8", 858, "2026-11-22T15:55:01.114512Z"),
			event("0/2AF4FD8#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000004", SeqID: 4, StreamID: "a1b2c3d4-0000-4000-8000-000000000002", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:01.114163Z"),
				Data:          raw(`{"IncidentId": "a1b2c3d4-0000-4000-8000-000000000002", "Description": "Quick start"}`),
				CorrelationID: "corr-44",
			}),
			commit("0/2AF4FD8", "0/2AF5008", "2026-11-22T15:55:01.114512Z"),
			begin("0/2AF6F70", 860, "2026-11-22T15:55:01.115931Z"),
			event("0/2AF6F70#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000011", SeqID: 5, StreamID: "b1b2c3d4-0000-4000-8000-000000000001", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T10:05:00Z"),
				Data:          raw(`{"IncidentId": "b1b2c3d4-0000-4000-8000-000000000001", "Description": "Rich start"}`),
				CorrelationID: "corr-50", CausationID: "cmd-50", Headers: raw(`{"source": "rich"}`),
			}),
			event("0/2AF6F70#1", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000012", SeqID: 6, StreamID: "b1b2c3d4-0000-4000-8000-000000000001", Version: 2,
				Type: "incident_prioritised", DotnetType: "Helpdesk.Api.Incidents.IncidentPrioritised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T10:05:00Z"),
				Data:          raw(`{"Priority": 3, "IncidentId": "b1b2c3d4-0000-4000-8000-000000000001"}`),
				CorrelationID: "corr-50", CausationID: "cmd-50", Headers: raw(`{"source": "rich"}`),
			}),
			commit("0/2AF6F70", "0/2AF6FA0", "2026-11-22T15:55:01.115931Z"),
			begin("0/2AF7448", 861, "2026-11-22T15:55:01.116826Z"),
			archived("0/2AF7448#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000004", SeqID: 4, StreamID: "a1b2c3d4-0000-4000-8000-000000000002", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:01.114163Z"),
				Data:          raw(`{"IncidentId": "a1b2c3d4-0000-4000-8000-000000000002", "Description": "Quick start"}`),
				CorrelationID: "corr-44",
			}),
			commit("0/2AF7448", "0/2AF7478", "2026-11-22T15:55:01.116826Z"),
			begin("0/2AF8B20", 866, "2026-11-22T15:55:01.148143Z"),
			archived("0/2AF8B20#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000001", SeqID: 1, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:01.11005Z"),
				Data:          raw(`{"LoggedAt": "2026-11-22T10:00:00+00:00", "LoggedBy": "c0000000-0000-4000-8000-0000000000aa", "CustomerId": "c0000000-0000-4000-8000-000000000001", "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "Description": "Printer on fire"}`),
				CorrelationID: "corr-42", CausationID: "cmd-1", Headers: raw(`{"source": "api"}`),
			}),
			archived("0/2AF8B20#1", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000002", SeqID: 2, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 2,
				Type: "incident_categorised", DotnetType: "Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:01.11005Z"),
				Data:          raw(`{"Category": 2, "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "CategorisedAt": "2026-11-22T10:01:00+00:00", "CategorisedBy": "c0000000-0000-4000-8000-0000000000aa"}`),
				CorrelationID: "corr-42", CausationID: "cmd-1", Headers: raw(`{"source": "api"}`),
			}),
			archived("0/2AF8B20#2", cdc.Event{
				ID: "018f0000-0000-7000-8000-000000000003", SeqID: 3, StreamID: "a1b2c3d4-0000-4000-8000-000000000001", Version: 3,
				Type: "incident_prioritised", DotnetType: "Helpdesk.Api.Incidents.IncidentPrioritised, Helpdesk.Api", TenantID: "*DEFAULT*",
				Timestamp:     ts("2026-11-22T15:55:01.113574Z"),
				Data:          raw(`{"Priority": 1, "IncidentId": "a1b2c3d4-0000-4000-8000-000000000001"}`),
				CorrelationID: "corr-43",
			}),
			commit("0/2AF8B20", "0/2AF8B50", "2026-11-22T15:55:01.148143Z"),
		}},
		{file: "conjoined.hex", cfg: Config{}, want: []Message{
			begin("0/2F63290", 884, "2026-11-22T15:55:01.442515Z"),
			event("0/2F63290#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-0000000000a1", SeqID: 1, StreamID: "c1000000-0000-4000-8000-000000000001", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "tenant-a",
				Timestamp:     ts("2026-11-22T10:00:00Z"),
				Data:          raw(`{"IncidentId": "c1000000-0000-4000-8000-000000000001", "Description": "A"}`),
				CorrelationID: "corr-a", CausationID: "cmd-a", Headers: raw(`{"source": "a"}`),
			}),
			event("0/2F63290#1", cdc.Event{
				ID: "018f0000-0000-7000-8000-0000000000a2", SeqID: 2, StreamID: "c1000000-0000-4000-8000-000000000001", Version: 2,
				Type: "incident_categorised", DotnetType: "Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api", TenantID: "tenant-a",
				Timestamp:     ts("2026-11-22T10:00:01Z"),
				Data:          raw(`{"Category": 1, "IncidentId": "c1000000-0000-4000-8000-000000000001"}`),
				CorrelationID: "corr-a", CausationID: "cmd-a",
			}),
			commit("0/2F63290", "0/2F632C0", "2026-11-22T15:55:01.442515Z"),
			begin("0/2F63770", 885, "2026-11-22T15:55:01.443352Z"),
			event("0/2F63770#0", cdc.Event{
				ID: "018f0000-0000-7000-8000-0000000000b1", SeqID: 1, StreamID: "c2000000-0000-4000-8000-000000000001", Version: 1,
				Type: "incident_logged", DotnetType: "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api", TenantID: "tenant_b",
				Timestamp:     ts("2026-11-22T11:00:00Z"),
				Data:          raw(`{"IncidentId": "c2000000-0000-4000-8000-000000000001", "Description": "B"}`),
				CorrelationID: "corr-b",
			}),
			commit("0/2F63770", "0/2F637A0", "2026-11-22T15:55:01.443352Z"),
		}},
	}
	// How many messages of each file are KindNone.
	nones := map[string]int{
		"marten8.hex":   2,  // the Relation, and again after ALTER TABLE
		"helpdesk.hex":  15, // 5 Relations, 2 inserts into other tables, 6 updates, 1 delete, 1 truncate
		"archived.hex":  4,  // Relations of mt_events and of its partitions
		"conjoined.hex": 4,  // the same
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fillTx(tt.want)
			got, none := decodeGolden(t, tt.file, tt.cfg)
			for i := range max(len(got), len(tt.want)) {
				var g, w string
				if i < len(got) {
					g = render(got[i])
				}
				if i < len(tt.want) {
					w = render(tt.want[i])
				}
				if g != w {
					t.Errorf("message %d:\n got %s\nwant %s", i, g, w)
				}
			}
			if none != nones[tt.file] {
				t.Errorf("%d messages of KindNone, want %d", none, nones[tt.file])
			}
		})
	}
}

// The same changes decoded in another session TimeZone print timestamps
// with another offset: the events must not change.
func TestGoldenTimeZone(t *testing.T) {
	utc, _ := decodeGolden(t, "marten8.hex", Config{})
	kolkata, _ := decodeGolden(t, "marten8_kolkata.hex", Config{})
	if len(utc) != len(kolkata) {
		t.Fatalf("%d messages in UTC, %d in Asia/Kolkata", len(utc), len(kolkata))
	}
	for i := range utc {
		if g, w := render(kolkata[i]), render(utc[i]); g != w {
			t.Errorf("message %d:\n got %s\nwant %s", i, g, w)
		}
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "marten8_kolkata.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), hex.EncodeToString([]byte("+05:30"))) {
		t.Error("marten8_kolkata.hex has no +05:30 timestamp")
	}
}

func begin(lsn string, xid uint32, commitTime string) Message {
	return Message{Kind: KindBegin, CommitLSN: mustLSN(lsn), TxID: xid, CommitTime: ts(commitTime)}
}

func commit(lsn, end, commitTime string) Message {
	return Message{Kind: KindCommit, CommitLSN: mustLSN(lsn), EndLSN: mustLSN(end), CommitTime: ts(commitTime)}
}

func event(pos string, e cdc.Event) Message {
	return Message{Kind: KindEvent, Position: mustPos(pos), Event: &e}
}

func archived(pos string, e cdc.Event) Message {
	return Message{Kind: KindSkip, Skip: SkipArchived, Position: mustPos(pos), Event: &e}
}

func skip(pos string, why SkipReason) Message {
	return Message{Kind: KindSkip, Skip: why, Position: mustPos(pos)}
}
