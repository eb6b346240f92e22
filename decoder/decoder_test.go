package decoder

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	cdc "github.com/martencdc/cdc"
)

const (
	eventsOID = 16532 // public.mt_events
	otherOID  = 16600 // public.mt_streams, or a table of the same name elsewhere
	lsn1      = cdc.LSN(0x16B3748)
	end1      = cdc.LSN(0x16B3778)
	lsn2      = cdc.LSN(0x1_0000_2000)
	xid1      = 734
)

var (
	commitTime1 = time.Date(2026, 11, 22, 10, 0, 0, 500_000_000, time.UTC)
	commitTime2 = time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)
)

// row8 is a Marten 8 row with every column set.
var row8 = martenRow{
	"seq_id":         txt("42"),
	"id":             txt("018f0000-0000-7000-8000-000000000001"),
	"stream_id":      txt("a1b2c3d4-0000-4000-8000-000000000001"),
	"version":        txt("7"),
	"data":           txt(`{"IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "Priority": 1}`),
	"type":           txt("incident_prioritised"),
	"timestamp":      txt("2026-11-22 10:00:00.123456+00"),
	"tenant_id":      txt("*DEFAULT*"),
	"mt_dotnet_type": txt("Helpdesk.Api.Incidents.IncidentPrioritised, Helpdesk.Api"),
	"correlation_id": txt("corr-1"),
	"causation_id":   txt("cmd-1"),
	"headers":        txt(`{"source": "api"}`),
	"is_archived":    txt("f"),
}

// event8 is the event decoded from row8 as the first row of transaction 1.
func event8() cdc.Event {
	return cdc.Event{
		ID:            "018f0000-0000-7000-8000-000000000001",
		SeqID:         42,
		StreamID:      "a1b2c3d4-0000-4000-8000-000000000001",
		Version:       7,
		Type:          "incident_prioritised",
		DotnetType:    "Helpdesk.Api.Incidents.IncidentPrioritised, Helpdesk.Api",
		TenantID:      "*DEFAULT*",
		Timestamp:     time.Date(2026, 11, 22, 10, 0, 0, 123_456_000, time.UTC),
		Data:          raw(`{"IncidentId": "a1b2c3d4-0000-4000-8000-000000000001", "Priority": 1}`),
		CorrelationID: "corr-1",
		CausationID:   "cmd-1",
		Headers:       raw(`{"source": "api"}`),
		LSN:           lsn1,
		CommitTime:    commitTime1,
		TxID:          xid1,
	}
}

// ev is the message of event8 at index i of transaction 1, changed by edit.
func ev(i uint32, edit func(*cdc.Event)) Message {
	e := event8()
	e.Index = i
	if edit != nil {
		edit(&e)
	}
	return Message{Kind: KindEvent, Position: cdc.Position{LSN: lsn1, Index: i}, Event: &e}
}

func skipAt(i uint32, why SkipReason) Message {
	return Message{Kind: KindSkip, Position: cdc.Position{LSN: lsn1, Index: i}, Skip: why}
}

var (
	rel8     = relationMsg(eventsOID, "public", "mt_events", marten8Cols...)
	rel9     = relationMsg(eventsOID, "public", "mt_events", marten9Cols...)
	relOther = relationMsg(otherOID, "public", "mt_streams", col{"id", oidUUID}, col{"version", oidInt8})
	begin1   = beginMsg(lsn1, commitTime1, xid1)
	commit1  = commitMsg(lsn1, end1, commitTime1)
	none     = Message{}
	began    = Message{Kind: KindBegin, CommitLSN: lsn1, CommitTime: commitTime1, TxID: xid1}
	ended    = Message{Kind: KindCommit, CommitLSN: lsn1, EndLSN: end1, CommitTime: commitTime1}
)

func ins8(r martenRow) []byte { return r.insert(eventsOID, marten8Cols) }
func ins9(r martenRow) []byte { return r.insert(eventsOID, marten9Cols) }

// step is one message fed to the decoder and what must come out of it:
// want, or an error containing err (and matching is, when set).
type step struct {
	msg  []byte
	want Message
	err  string
	is   error
}

func ok(msg []byte, want Message) step  { return step{msg: msg, want: want} }
func fails(msg []byte, err string) step { return step{msg: msg, err: err} }
func failsIs(msg []byte, is error) step { return step{msg: msg, is: is} }
func failsWith(msg []byte, err string, is error) step {
	return step{msg: msg, err: err, is: is}
}

func runSteps(t *testing.T, d *Decoder, steps []step) {
	t.Helper()
	for i, s := range steps {
		got, err := d.Decode(s.msg)
		if s.err == "" && s.is == nil {
			if err != nil {
				t.Fatalf("step %d (%c): %v", i, s.msg[0], err)
			}
			if g, w := render(got), render(s.want); g != w {
				t.Fatalf("step %d (%c):\n got %s\nwant %s", i, s.msg[0], g, w)
			}
			continue
		}
		if err == nil {
			t.Fatalf("step %d: no error, want %q; got %s", i, s.err, render(got))
		}
		if !strings.Contains(err.Error(), s.err) {
			t.Fatalf("step %d: error %q, want it to contain %q", i, err, s.err)
		}
		if s.is != nil && !errors.Is(err, s.is) {
			t.Fatalf("step %d: error %q is not %v", i, err, s.is)
		}
		if got.Kind != KindNone || got.Event != nil {
			t.Fatalf("step %d: error with a message: %s", i, render(got))
		}
	}
}

func TestDecode(t *testing.T) {
	// Marten 9 row for the marten9Cols relation: string stream id, bdata,
	// user_name, is_skipped.
	row9 := row8.with(
		"stream_id", txt("incident-42"),
		"bdata", txt(`\x0102ff`),
		"user_name", txt("alice"),
		"is_skipped", txt("f"),
	)
	event9 := func(e *cdc.Event) { e.StreamID, e.UserName = "incident-42", "alice" }

	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"one transaction", Config{}, []step{
			ok(rel8, none),
			ok(begin1, began),
			ok(ins8(row8), ev(0, nil)),
			ok(ins8(row8.with("seq_id", txt("43"), "version", txt("8"))), ev(1, func(e *cdc.Event) { e.SeqID, e.Version = 43, 8 })),
			ok(commit1, ended),
		}},
		{"index restarts with each transaction", Config{}, []step{
			ok(rel8, none),
			ok(begin1, began),
			ok(ins8(row8), ev(0, nil)),
			ok(commit1, ended),
			ok(beginMsg(lsn2, commitTime2, xid1+1), Message{Kind: KindBegin, CommitLSN: lsn2, CommitTime: commitTime2, TxID: xid1 + 1}),
			ok(ins8(row8), Message{Kind: KindEvent, Position: cdc.Position{LSN: lsn2}, Event: func() *cdc.Event {
				e := event8()
				e.LSN, e.CommitTime, e.TxID = lsn2, commitTime2, xid1+1
				return &e
			}()}),
			ok(commitMsg(lsn2, lsn2+0x30, commitTime2), Message{Kind: KindCommit, CommitLSN: lsn2, EndLSN: lsn2 + 0x30, CommitTime: commitTime2}),
		}},
		{"every message type", Config{}, []step{
			ok(logicalMsg(false, lsn1-0x100, "cdc", "outside a transaction"), none),
			ok(begin1, began),
			ok(originMsg(lsn1-0x10, "node_a"), none),
			ok(typeMsg(70001, "public", "mood"), none),
			ok(rel8, none),
			ok(relOther, none),
			ok(logicalMsg(true, lsn1-0x50, "cdc", "transactional"), none),
			ok(insertMsg(otherOID, txt("a1b2c3d4-0000-4000-8000-000000000001"), txt("1")), none),
			ok(ins8(row8), ev(0, nil)),
			ok(updateMsg(otherOID, 0, nil, txt("a1b2c3d4-0000-4000-8000-000000000001"), txt("2")), none),
			ok(updateMsg(eventsOID, 'K', []val{txt("42")}, slices.Repeat([]val{unchanged}, len(marten8Cols))...), none),
			ok(updateMsg(eventsOID, 'O', slices.Repeat([]val{null}, len(marten8Cols)), slices.Repeat([]val{txt("x")}, len(marten8Cols))...), none),
			ok(deleteMsg(eventsOID, 'K', txt("42")), none),
			ok(deleteMsg(otherOID, 'O', txt("a1b2c3d4-0000-4000-8000-000000000001"), null), none),
			ok(truncateMsg(1, eventsOID, otherOID), none),
			ok(ins8(row8), ev(1, nil)), // other tables, updates and deletes take no index
			ok(commit1, ended),
		}},
		{"unknown message types", Config{}, []step{
			failsWith([]byte{'S', 0, 0, 0, 1, 1}, `unexpected message type 'S'`, ErrMalformed), // stream start: not requested
			failsWith([]byte{'Z'}, `unexpected message type 'Z'`, ErrMalformed),
			failsWith([]byte{}, "empty", ErrMalformed),
		}},
		{"columns mapped by name after a second Relation", Config{}, []step{
			ok(rel8, none),
			ok(begin1, began),
			ok(ins8(row8), ev(0, nil)),
			ok(rel9, none), // a Marten upgrade: other order, bdata, user_name, is_skipped
			ok(ins9(row9), ev(1, event9)),
			ok(commit1, ended),
		}},
		{"relation with the columns in reverse order", Config{}, []step{
			ok(relationMsg(eventsOID, "public", "mt_events", reversed(marten9Cols)...), none),
			ok(begin1, began),
			ok(row9.insert(eventsOID, reversed(marten9Cols)), ev(0, event9)),
			ok(commit1, ended),
		}},
		{"only the required columns", Config{}, []step{
			ok(relationMsg(eventsOID, "public", "mt_events", marten8Cols[:8]...), none),
			ok(begin1, began),
			ok(row8.insert(eventsOID, marten8Cols[:8]), ev(0, func(e *cdc.Event) {
				e.DotnetType, e.CorrelationID, e.CausationID, e.Headers = "", "", "", nil
			})),
			ok(commit1, ended),
		}},
		{"missing required columns", Config{}, []step{
			fails(relationMsg(eventsOID, "public", "mt_events", slices.DeleteFunc(slices.Clone(marten8Cols), func(c col) bool {
				return c.name == "seq_id" || c.name == "tenant_id"
			})...), `decode relation 16532: relation public.mt_events lacks required column(s) seq_id, tenant_id`),
			ok(begin1, began),
			fails(row8.insert(eventsOID, slices.DeleteFunc(slices.Clone(marten8Cols), func(c col) bool {
				return c.name == "seq_id" || c.name == "tenant_id"
			})), `decode insert into public.mt_events at 0/16B3748#0: relation public.mt_events lacks required column(s) seq_id, tenant_id`),
			ok(rel8, none), // fixed by the next Relation
			ok(ins8(row8), ev(1, nil)),
		}},
		{"NULL optional columns", Config{}, []step{
			ok(rel9, none),
			ok(begin1, began),
			ok(ins9(row9.with("mt_dotnet_type", null, "correlation_id", null, "causation_id", null, "headers", null,
				"user_name", null, "is_archived", null, "is_skipped", null, "bdata", null)), ev(0, func(e *cdc.Event) {
				e.StreamID, e.DotnetType, e.CorrelationID, e.CausationID, e.Headers = "incident-42", "", "", "", nil
			})),
			ok(ins9(row9.with("headers", txt("{}"), "correlation_id", txt(""))), ev(1, func(e *cdc.Event) {
				event9(e)
				e.Headers, e.CorrelationID = raw("{}"), ""
			})),
			ok(commit1, ended),
		}},
		{"skipped rows take an index", Config{}, []step{
			ok(rel9, none),
			ok(begin1, began),
			ok(ins9(row9.with("type", txt("tombstone"), "data", txt("{}"), "stream_id", null, "version", txt("oops"))), skipAt(0, SkipTombstone)),
			ok(ins9(row9.with("is_skipped", txt("t"))), skipAt(1, SkipSkipped)),
			ok(ins9(row9), ev(2, event9)),
			ok(ins9(row9.with("is_archived", txt("t"))), Message{Kind: KindSkip, Skip: SkipArchived,
				Position: cdc.Position{LSN: lsn1, Index: 3}, Event: ev(3, event9).Event}),
			ok(ins9(row9.with("type", txt("tombstones"))), ev(4, func(e *cdc.Event) { event9(e); e.Type = "tombstones" })),
			ok(commit1, ended),
		}},
		{"bdata only when data is empty", Config{}, []step{
			ok(rel9, none),
			ok(begin1, began),
			ok(ins9(row9), ev(0, event9)), // data has the body: bdata ignored
			ok(ins9(row9.with("data", txt("{}"))), ev(1, func(e *cdc.Event) {
				event9(e)
				e.Data, e.BData = raw("{}"), []byte{1, 2, 0xff}
			})),
			ok(ins9(row9.with("data", txt("null"))), ev(2, func(e *cdc.Event) {
				event9(e)
				e.Data, e.BData = raw("null"), []byte{1, 2, 0xff}
			})),
			ok(ins9(row9.with("data", txt("{}"), "bdata", null)), ev(3, func(e *cdc.Event) { event9(e); e.Data = raw("{}") })),
			ok(ins9(row9.with("data", txt("{}"), "bdata", txt(`\x`))), ev(4, func(e *cdc.Event) { event9(e); e.Data = raw("{}") })),
			fails(ins9(row9.with("data", txt("{}"), "bdata", txt(`\x0g`))), `at 0/16B3748#5: column "bdata": invalid bytea value`),
			fails(ins9(row9.with("data", txt("{}"), "bdata", txt(`\001`))), `column "bdata": bytea value not in hex format`),
		}},
		{"stream ids", Config{}, []step{
			ok(rel9, none),
			ok(begin1, began),
			ok(ins9(row9.with("stream_id", txt("a1b2c3d4-0000-4000-8000-000000000001"))), ev(0, func(e *cdc.Event) { e.UserName = "alice" })),
			ok(ins9(row9.with("stream_id", txt("Ticket/ü 42"))), ev(1, func(e *cdc.Event) { event9(e); e.StreamID = "Ticket/ü 42" })),
			ok(ins9(row9.with("stream_id", txt(""))), ev(2, func(e *cdc.Event) { event9(e); e.StreamID = "" })),
			ok(commit1, ended),
		}},
		{"timestamps and integers", Config{}, []step{
			ok(rel8, none),
			ok(begin1, began),
			ok(ins8(row8.with("timestamp", txt("2026-11-22 15:30:00.123456+05:30"), "seq_id", txt("9223372036854775807"))),
				ev(0, func(e *cdc.Event) { e.SeqID = 1<<63 - 1 })),
			ok(ins8(row8.with("timestamp", txt("2026-11-22 07:00:00.123456-03"), "version", txt("-1"))),
				ev(1, func(e *cdc.Event) { e.Version = -1 })),
			ok(ins8(row8.with("timestamp", txt("2026-11-22 10:00:00+00"))),
				ev(2, func(e *cdc.Event) { e.Timestamp = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) })),
			ok(commit1, ended),
		}},
		{"other schema and table", Config{Schema: "helpdesk", Table: "events"}, []step{
			ok(rel8, none),
			ok(relationMsg(otherOID, "helpdesk", "events", marten8Cols...), none),
			ok(begin1, began),
			ok(ins8(row8), none), // public.mt_events is not the target
			ok(row8.insert(otherOID, marten8Cols), ev(0, nil)),
			ok(commit1, ended),
		}},
		{"the same name in pg_catalog is not the target", Config{}, []step{
			ok(relationMsg(eventsOID, "", "mt_events", marten8Cols...), none),
			ok(begin1, began),
			ok(ins8(row8), none),
			ok(commit1, ended),
		}},
		{"a relation that stops being the target", Config{}, []step{
			ok(rel8, none),
			ok(relationMsg(eventsOID, "public", "mt_events_old", marten8Cols...), none), // renamed
			ok(begin1, began),
			ok(ins8(row8), none),
			ok(commit1, ended),
		}},
		{"transaction pairing", Config{}, []step{
			ok(rel8, none),
			failsWith(commit1, "decode commit of 0/16B3748: pgoutput message out of sequence: no transaction is open", ErrOutOfSequence),
			failsWith(ins8(row8), "no transaction is open", ErrOutOfSequence),
			failsWith(updateMsg(eventsOID, 0, nil, txt("x")), "decode update: pgoutput message out of sequence: no transaction is open", ErrOutOfSequence),
			failsIs(deleteMsg(eventsOID, 'K', txt("x")), ErrOutOfSequence),
			failsIs(truncateMsg(0, eventsOID), ErrOutOfSequence),
			ok(begin1, began),
			failsWith(beginMsg(lsn2, commitTime2, xid1+1), "decode begin of 1/2000 (xid 735): pgoutput message out of sequence: transaction 0/16B3748 (xid 734) is still open", ErrOutOfSequence),
			failsWith(commitMsg(lsn2, lsn2+0x30, commitTime2), "decode commit of 1/2000: pgoutput message out of sequence: the open transaction (xid 734) began with final LSN 0/16B3748", ErrOutOfSequence),
			failsWith(insertMsg(99999, txt("x")), "decode insert at 0/16B3748: pgoutput message out of sequence: relation 99999 was not described by a Relation message", ErrOutOfSequence),
			ok(ins8(row8), ev(0, nil)),
			ok(commit1, ended),
			failsIs(commit1, ErrOutOfSequence),
		}},
		{"malformed shapes", Config{}, []step{
			ok(rel8, none),
			ok(begin1, began),
			failsWith(append(ins8(row8), 0), "decode insert into public.mt_events: malformed pgoutput message: 1 trailing bytes", ErrMalformed),
			failsIs(insertMsg(eventsOID, txt("1")), ErrMalformed), // fewer columns than the relation
			failsIs(append(wbuf{'I'}.u32(eventsOID).u8('K'), ins8(row8)[6:]...), ErrMalformed),
			failsIs(append(wbuf{'I'}.u32(eventsOID).u8('N').u16(1), 'x'), ErrMalformed), // unknown column kind
			failsIs(wbuf{'U'}.u32(otherOID).u8('K').tuple(txt("1")).u8('K').tuple(txt("1")), ErrMalformed),
			failsIs(wbuf{'U'}.u32(otherOID).u8('X'), ErrMalformed),
			failsIs(wbuf{'D'}.u32(otherOID).u8('N').tuple(txt("1")), ErrMalformed),
			failsIs(wbuf{'T'}.u32(2).u8(0).u32(otherOID), ErrMalformed),
			failsIs(relationMsg(eventsOID, "public", "mt_events", append(slices.Clone(marten8Cols), col{"seq_id", oidInt8})...), ErrMalformed),
			failsWith(ins8(row8), `decode insert into public.mt_events at 0/16B3748#0: malformed pgoutput message: relation public.mt_events has column "seq_id" twice`, ErrMalformed),
			ok(rel8, none),
			ok(ins8(row8), ev(1, nil)),
			ok(commit1, ended),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, New(tt.cfg), tt.steps)
		})
	}
}

func TestDecodeBadValues(t *testing.T) {
	tests := []struct {
		column string
		value  val
		err    string
	}{
		{"seq_id", null, "NULL in a required column"},
		{"id", null, "NULL in a required column"},
		{"stream_id", null, "NULL in a required column"},
		{"version", null, "NULL in a required column"},
		{"data", null, "NULL in a required column"},
		{"type", null, "NULL in a required column"},
		{"timestamp", null, "NULL in a required column"},
		{"tenant_id", null, "NULL in a required column"},
		{"seq_id", txt("abc"), `invalid integer "abc"`},
		{"seq_id", txt(""), `invalid integer ""`},
		{"seq_id", txt("9223372036854775808"), `invalid integer "9223372036854775808"`},
		{"seq_id", txt("99999999999999999999"), `invalid integer`},
		{"version", txt("1.5"), `invalid integer "1.5"`},
		{"version", txt("-"), `invalid integer "-"`},
		{"id", txt("018f0000-0000-7000-8000-00000000000"), "invalid uuid"},
		{"id", txt("018f0000x0000-7000-8000-000000000001"), "invalid uuid"},
		{"id", txt("018f0000-0000-7000-8000-00000000000g"), "invalid uuid"},
		{"timestamp", txt("yesterday"), `invalid timestamp "yesterday"`},
		{"timestamp", txt("infinity"), `invalid timestamp "infinity"`},
		{"timestamp", txt("2026-02-30 10:00:00+00"), `timestamp "2026-02-30 10:00:00+00" out of range`},
		{"is_archived", txt("true"), `invalid boolean "true"`},
		{"is_skipped", txt("x"), `invalid boolean "x"`},
		{"data", unchanged, "unchanged TOAST value in an insert"},
		{"headers", unchanged, "unchanged TOAST value in an insert"},
		{"data", val{kind: 'b', s: "\x01{}"}, "binary value"},
		{"correlation_id", val{kind: 'b', s: "x"}, "binary value"},
		{"seq_id", txt(strings.Repeat("9", 100)), `invalid integer "` + strings.Repeat("9", 64) + `"...`},
	}
	row9 := row8.with("is_skipped", txt("f"), "user_name", null, "bdata", null)
	for _, tt := range tests {
		t.Run(tt.column+" "+tt.err, func(t *testing.T) {
			d := New(Config{})
			runSteps(t, d, []step{ok(rel9, none), ok(begin1, began), ok(ins9(row9), ev(0, nil)), ok(ins9(row9), ev(1, nil))})
			want := `decode insert into public.mt_events at 0/16B3748#2: column "` + tt.column + `": ` + tt.err
			_, err := d.Decode(ins9(row9.with(tt.column, tt.value)))
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %v, want %s", err, want)
			}
			var ce *ColumnError
			if !errors.As(err, &ce) || ce.Column != tt.column || ce.Relation != "public.mt_events" ||
				ce.Position != (cdc.Position{LSN: lsn1, Index: 2}) || ce.Err == nil {
				t.Fatalf("error %#v, want a *ColumnError for column %s at 0/16B3748#2", err, tt.column)
			}
		})
	}
}

func TestMissingColumnError(t *testing.T) {
	d := New(Config{Schema: "helpdesk"})
	_, err := d.Decode(relationMsg(eventsOID, "helpdesk", "mt_events", col{"id", oidUUID}, col{"data", oidJSONB}, col{"bdata", oidBytea}))
	var mce *MissingColumnError
	if !errors.As(err, &mce) {
		t.Fatalf("error %v, want a *MissingColumnError", err)
	}
	want := []string{"seq_id", "stream_id", "version", "type", "timestamp", "tenant_id"}
	if mce.Relation != "helpdesk.mt_events" || !slices.Equal(mce.Columns, want) {
		t.Errorf("got %+v, want helpdesk.mt_events %v", mce, want)
	}
}

func TestReset(t *testing.T) {
	d := New(Config{})
	runSteps(t, d, []step{ok(rel8, none), ok(begin1, began), ok(ins8(row8), ev(0, nil))})
	d.Reset() // the connection broke inside the transaction
	runSteps(t, d, []step{
		ok(begin1, began), // no "transaction still open"
		failsWith(ins8(row8), "relation 16532 was not described", ErrOutOfSequence),
		ok(rel8, none),
		ok(ins8(row8), ev(0, nil)),
		ok(commit1, ended),
	})
}

// Every proper prefix of a valid message, and the message with a byte more,
// is an error, never a panic.
func TestTruncated(t *testing.T) {
	before := map[byte][][]byte{ // what the decoder must have seen before the message
		'B': nil,
		'R': nil,
		'C': {begin1},
		'I': {rel8, begin1},
		'U': {begin1},
		'D': {begin1},
		'T': {begin1},
		'O': {begin1},
		'Y': {begin1},
		'M': {begin1},
	}
	msgs := [][]byte{
		begin1,
		commit1,
		rel8,
		rel9,
		ins8(row8),
		updateMsg(otherOID, 'K', []val{txt("1"), null}, txt("1"), unchanged),
		updateMsg(otherOID, 0, nil, txt("1"), null),
		deleteMsg(otherOID, 'O', txt("1"), null),
		truncateMsg(0, eventsOID, otherOID),
		originMsg(lsn1, "node_a"),
		typeMsg(70001, "public", "mood"),
		logicalMsg(true, lsn1, "cdc", "hello"),
	}
	for _, msg := range msgs {
		prepare := func() *Decoder {
			d := New(Config{})
			for _, m := range before[msg[0]] {
				if _, err := d.Decode(m); err != nil {
					t.Fatal(err)
				}
			}
			return d
		}
		if _, err := prepare().Decode(msg); err != nil {
			t.Fatalf("%c: the whole message fails: %v", msg[0], err)
		}
		for n := range len(msg) {
			if got, err := prepare().Decode(msg[:n]); !errors.Is(err, ErrMalformed) {
				t.Errorf("%c cut to %d of %d bytes: got %s, error %v; want ErrMalformed", msg[0], n, len(msg), render(got), err)
			}
		}
		if _, err := prepare().Decode(append(slices.Clone(msg), 0)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%c with a trailing byte: error %v, want ErrMalformed", msg[0], err)
		}
	}
}

// An event refers to none of the bytes it was decoded from, and its JSON
// cannot be appended to over its neighbours.
func TestEventOwnsItsBytes(t *testing.T) {
	d := New(Config{})
	runSteps(t, d, []step{ok(rel8, none), ok(begin1, began)})
	msg := ins8(row8)
	got, err := d.Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := render(ev(0, nil))
	clear(msg)
	if g := render(got); g != want {
		t.Fatalf("after clearing the message:\n got %s\nwant %s", g, want)
	}
	e := got.Event
	if cap(e.Data) != len(e.Data) || cap(e.Headers) != len(e.Headers) {
		t.Errorf("Data or Headers has spare capacity: %d/%d, %d/%d", len(e.Data), cap(e.Data), len(e.Headers), cap(e.Headers))
	}
	_ = append(e.Data, "XXXXXXXX"...)
	if g := render(got); g != want {
		t.Fatalf("after appending to Data:\n got %s\nwant %s", g, want)
	}
}

func TestInterning(t *testing.T) {
	d := New(Config{})
	runSteps(t, d, []step{ok(rel8, none), ok(begin1, began)})
	a, _ := d.Decode(ins8(row8))
	b, _ := d.Decode(ins8(row8))
	for _, f := range []func(*cdc.Event) string{
		func(e *cdc.Event) string { return e.Type },
		func(e *cdc.Event) string { return e.TenantID },
		func(e *cdc.Event) string { return e.DotnetType },
	} {
		if unsafe.StringData(f(a.Event)) != unsafe.StringData(f(b.Event)) {
			t.Errorf("%q is not shared between events", f(a.Event))
		}
	}
	if unsafe.StringData(a.Event.ID) == unsafe.StringData(b.Event.ID) {
		t.Error("ids are shared")
	}
	// Past the interner's limits, values are still right.
	for i := range maxInterned + 10 {
		typ := "type_" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
		got, err := d.Decode(ins8(row8.with("type", txt(typ), "tenant_id", txt(strings.Repeat("t", maxInternSize+1)))))
		if err != nil {
			t.Fatal(err)
		}
		if got.Event.Type != typ || got.Event.TenantID != strings.Repeat("t", maxInternSize+1) {
			t.Fatalf("event %d: type %q tenant %q", i, got.Event.Type, got.Event.TenantID)
		}
	}
	if len(d.intern.m) > maxInterned {
		t.Errorf("%d interned strings, more than %d", len(d.intern.m), maxInterned)
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{KindNone.String(), "none"},
		{KindBegin.String(), "begin"},
		{KindEvent.String(), "event"},
		{KindSkip.String(), "skip"},
		{KindCommit.String(), "commit"},
		{Kind(9).String(), "kind(9)"},
		{SkipNone.String(), "none"},
		{SkipTombstone.String(), "tombstone"},
		{SkipSkipped.String(), "skipped"},
		{SkipArchived.String(), "archived"},
		{SkipReason(9).String(), "skip(9)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func reversed(cols []col) []col {
	r := slices.Clone(cols)
	slices.Reverse(r)
	return r
}
