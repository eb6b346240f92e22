package decoder

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// render prints a message with every field, times in RFC 3339 with their
// location, and JSON as text (nil shown as <nil>), for comparisons.
func render(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v pos=%v skip=%v commit=%v end=%v time=%s xid=%d",
		m.Kind, m.Position, m.Skip, m.CommitLSN, m.EndLSN, renderTime(m.CommitTime), m.TxID)
	if e := m.Event; e != nil {
		fmt.Fprintf(&b, "\n\tevent id=%q seq=%d stream=%q version=%d type=%q dotnet=%q tenant=%q timestamp=%s"+
			"\n\tdata=%s headers=%s correlation=%q causation=%q user=%q lsn=%v index=%d commit=%s xid=%d",
			e.ID, e.SeqID, e.StreamID, e.Version, e.Type, e.DotnetType, e.TenantID, renderTime(e.Timestamp),
			renderJSON(e.Data), renderJSON(e.Headers), e.CorrelationID, e.CausationID, e.UserName,
			e.LSN, e.Index, renderTime(e.CommitTime), e.TxID)
	}
	return b.String()
}

func renderTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339Nano) + "[" + t.Location().String() + "]"
}

func renderJSON(j json.RawMessage) string {
	if j == nil {
		return "<nil>"
	}
	return "`" + string(j) + "`"
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }
