package decoder

import (
	"errors"
	"testing"
)

// goldenFiles are the captures of testdata, with the configuration that makes
// their events table the target.
var goldenFiles = []struct {
	file string
	cfg  Config
}{
	{"marten8.hex", Config{}},
	{"marten8_kolkata.hex", Config{}},
	{"helpdesk.hex", Config{Schema: "helpdesk"}},
	{"archived.hex", Config{}},
	{"conjoined.hex", Config{}},
	{"layout_marten9.hex", Config{}},
	{"layout_string_ids.hex", Config{Schema: "helpdesk"}},
}

// FuzzDecode feeds one message to a decoder that knows the relations of
// every golden capture and has a transaction open, then the same message
// again. Decode must not panic, and must return either an error and no
// message, or a consistent message.
func FuzzDecode(f *testing.F) {
	var relations [][]byte
	for _, g := range goldenFiles {
		for _, m := range readGolden(f, g.file) {
			f.Add(m.data)
			if m.data[0] == 'R' {
				relations = append(relations, m.data)
			}
		}
	}
	f.Add(ins9(row8.with("is_skipped", txt("t"))))
	f.Add(ins9(row8.with("is_archived", txt("t"))))
	f.Add(updateMsg(otherOID, 'O', []val{txt("1"), null}, txt("1"), unchanged))
	f.Add(deleteMsg(otherOID, 'K', txt("1")))
	f.Add(truncateMsg(0, eventsOID, otherOID))
	f.Add(originMsg(lsn1, "node_a"))
	f.Add(typeMsg(70001, "public", "mood"))
	f.Add(logicalMsg(true, lsn1, "cdc", "hello"))

	f.Fuzz(func(t *testing.T, data []byte) {
		d := New(Config{})
		for _, r := range relations {
			d.Decode(r) // errors do not matter: the decoder keeps what it could
		}
		d.Decode(rel9)
		if _, err := d.Decode(begin1); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			msg, err := d.Decode(data)
			if err != nil {
				if msg != (Message{}) {
					t.Fatalf("error %v with message %s", err, render(msg))
				}
				var mce *MissingColumnError
				var ce *ColumnError
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOutOfSequence) &&
					!errors.As(err, &mce) && !errors.As(err, &ce) {
					t.Fatalf("error of no known kind: %v", err)
				}
				continue
			}
			switch msg.Kind {
			case KindEvent:
				if msg.Event == nil || msg.Event.Position() != msg.Position || msg.Position.LSN != lsn1 {
					t.Fatalf("inconsistent event: %s", render(msg))
				}
			case KindSkip:
				if msg.Skip == SkipNone || (msg.Event != nil) != (msg.Skip == SkipArchived) {
					t.Fatalf("inconsistent skip: %s", render(msg))
				}
			case KindBegin, KindCommit, KindNone:
			default:
				t.Fatalf("unknown kind: %s", render(msg))
			}
		}
	})
}
