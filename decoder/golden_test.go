package decoder

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
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

// update makes TestGolden rewrite the expectation files from what the
// decoder gives, before comparing with them (so the run passes): review the
// diff of testdata/*.json before keeping it.
var update = flag.Bool("update", false, "rewrite testdata/<capture>.json, the expectations of TestGolden, from the current decoder output")

// goldenCaptures are the captures TestGolden checks against their
// expectation file (testdata/<name>.json for <name>.hex), with the
// configuration that makes their events table the target. The comments say
// which messages decode to KindNone (counts.none in the file).
var goldenCaptures = []struct {
	file string
	cfg  Config
}{
	{"marten8.hex", Config{}},                    // the Relation, and again after ALTER TABLE
	{"helpdesk.hex", Config{Schema: "helpdesk"}}, // 5 Relations, 2 inserts into other tables, 6 updates, 1 delete, 1 truncate
	{"archived.hex", Config{}},                   // Relations of mt_events and of its partitions
	{"conjoined.hex", Config{}},                  // the same
}

// TestGolden decodes each capture of goldenCaptures and compares every
// message with its expectation file, field by field (golden_json_test.go):
// kinds and counts of messages, positions, skip reasons, commit LSNs and
// times, xids, and every field of every event. It also checks that every
// message agrees with its transaction (checkTransactions), whatever the
// file says. After capture.sh, or a deliberate change of the decoder's
// output, rewrite the files with
//
//	go test ./decoder -run 'TestGolden$' -update
//
// and review their diff.
func TestGolden(t *testing.T) {
	for _, tt := range goldenCaptures {
		t.Run(tt.file, func(t *testing.T) {
			msgs, none := decodeGolden(t, tt.file, tt.cfg)
			checkTransactions(t, tt.file, msgs)
			got, path := expectOf(msgs, none), expectPath(tt.file)
			if *update {
				writeExpect(t, path, got)
			}
			compareExpect(t, filepath.Base(path), got, readExpect(t, path))
		})
	}
}

// checkTransactions checks what the messages of a capture take from their
// transaction: a row is inside a transaction, at the Begin's commit LSN
// with indexes 0, 1, 2, ...; its event (if any) has the row's position and
// the Begin's commit time and xid; the Commit has the Begin's commit LSN
// and commit time.
func checkTransactions(t *testing.T, file string, msgs []Message) {
	t.Helper()
	var begin *Message // the open transaction's Begin, nil outside one
	var index uint32
	for i, m := range msgs {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("%s: message %d (%v): %s", file, i, m.Kind, fmt.Sprintf(format, args...))
		}
		switch m.Kind {
		case KindBegin:
			if begin != nil {
				fail("in the transaction of commit LSN %v", begin.CommitLSN)
			}
			begin, index = &msgs[i], 0
		case KindEvent, KindSkip:
			if begin == nil {
				fail("outside a transaction")
				continue
			}
			if want := (cdc.Position{LSN: begin.CommitLSN, Index: index}); m.Position != want {
				fail("position %v, want %v", m.Position, want)
			}
			index++
			if e := m.Event; e != nil && (e.Position() != m.Position || !e.CommitTime.Equal(begin.CommitTime) || e.TxID != begin.TxID) {
				fail("event at %v committed at %v by xid %d, want %v, %v, %d",
					e.Position(), e.CommitTime, e.TxID, m.Position, begin.CommitTime, begin.TxID)
			}
		case KindCommit:
			if begin == nil {
				fail("outside a transaction")
				continue
			}
			if m.CommitLSN != begin.CommitLSN || !m.CommitTime.Equal(begin.CommitTime) {
				fail("commit LSN %v at %v, want %v at %v", m.CommitLSN, m.CommitTime, begin.CommitLSN, begin.CommitTime)
			}
			begin = nil
		}
	}
	if begin != nil {
		t.Errorf("%s: transaction of commit LSN %v has no Commit", file, begin.CommitLSN)
	}
}

// TestGoldenTimeZone decodes the changes of marten8.hex captured in another
// session TimeZone, where timestamps print with another offset: every
// message, field by field, and the count of each kind must be the same.
func TestGoldenTimeZone(t *testing.T) {
	utc, utcNone := decodeGolden(t, "marten8.hex", Config{})
	kolkata, kolkataNone := decodeGolden(t, "marten8_kolkata.hex", Config{})
	compareExpect(t, "marten8_kolkata.hex (want marten8.hex)", expectOf(kolkata, kolkataNone), expectOf(utc, utcNone))
	raw, err := os.ReadFile(filepath.Join("testdata", "marten8_kolkata.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), hex.EncodeToString([]byte("+05:30"))) {
		t.Error("marten8_kolkata.hex has no +05:30 timestamp")
	}
}
