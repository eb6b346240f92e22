package backfill

import (
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc"
)

func TestKeyOrderAndText(t *testing.T) {
	// In order: seq_id first, then tenants byte by byte ("B" < "a" < "é").
	keys := []Key{{-3, ""}, {0, ""}, {1, ""}, {1, "B"}, {1, "a"}, {1, "a:b"}, {1, "é"}, {2, ""}, {1 << 62, "x"}}
	for i, a := range keys {
		for j, b := range keys {
			if got, want := a.Less(b), i < j; got != want {
				t.Errorf("%v.Less(%v) = %v, want %v", a, b, got, want)
			}
			if got, want := a.Compare(b), map[bool]int{true: -1}[i < j]+map[bool]int{true: 1}[i > j]; got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
		}
		back, err := ParseKey(a.String())
		if err != nil || back != a {
			t.Errorf("ParseKey(%q) = %v, %v; want %v", a.String(), back, err, a)
		}
	}
	for _, tc := range []struct {
		key  Key
		text string
	}{{Key{42, ""}, "42"}, {Key{42, "acme"}, "42:acme"}, {Key{7, "a:b:c"}, "7:a:b:c"}, {Key{-1, "*DEFAULT*"}, "-1:*DEFAULT*"}} {
		if got := tc.key.String(); got != tc.text {
			t.Errorf("%#v.String() = %q, want %q", tc.key, got, tc.text)
		}
	}
	for _, bad := range []string{"", ":acme", "abc", "4x", "42 ", "99999999999999999999", "1.5:x"} {
		_, err := ParseKey(bad)
		if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("ParseKey(%q): error %v, want one naming the value", bad, err)
		}
	}
}

func TestParseFrom(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want Scope
		back string // From() of the result
	}{
		{"beginning", Scope{}, "beginning"},
		{"seq:1", Scope{FromSeq: 1}, "seq:1"},
		{"seq:0", Scope{}, "beginning"},
		{"seq:9223372036854775807", Scope{FromSeq: 1<<63 - 1}, "seq:9223372036854775807"},
		{"time:2026-01-02T15:04:05Z", Scope{FromTime: at}, "time:2026-01-02T15:04:05Z"},
		{"time:2026-01-02T17:04:05+02:00", Scope{FromTime: at}, "time:2026-01-02T17:04:05+02:00"},
		{"time:2026-01-02T15:04:05.123456789Z", Scope{FromTime: at.Add(123456789)}, "time:2026-01-02T15:04:05.123456789Z"},
	} {
		got, err := ParseFrom(tc.in)
		if err != nil || got.FromSeq != tc.want.FromSeq || !got.FromTime.Equal(tc.want.FromTime) || got.Tenants != nil {
			t.Errorf("ParseFrom(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if got.From() != tc.back {
			t.Errorf("ParseFrom(%q).From() = %q, want %q", tc.in, got.From(), tc.back)
		}
		if again, err := ParseFrom(got.From()); err != nil || again.FromSeq != got.FromSeq || !again.FromTime.Equal(got.FromTime) {
			t.Errorf("ParseFrom(%q) = %+v, %v; want %+v", got.From(), again, err, got)
		}
	}
	for _, tc := range []struct{ in, says string }{
		{"", `""`},
		{"Beginning", `"Beginning"`},
		{"now", `"now"`},
		{"seq:", `seq_id ""`},
		{"seq:-1", `seq_id "-1"`},
		{"seq:12a", `seq_id "12a"`},
		{"seq:1e3", `seq_id "1e3"`},
		{"seq:99999999999999999999", `seq_id "99999999999999999999"`},
		{"seq 12", `"seq 12"`},
		{"time:yesterday", `time "yesterday"`},
		{"time:2026-01-02", `time "2026-01-02"`},
		{"time:2026-01-02 15:04:05Z", `time "2026-01-02 15:04:05Z"`},
		{"lsn:0/16B3748", `"lsn:0/16B3748"`},
	} {
		_, err := ParseFrom(tc.in)
		if err == nil {
			t.Errorf("ParseFrom(%q) succeeded", tc.in)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.says) || !strings.Contains(msg, `"beginning", "seq:N"`) {
			t.Errorf("ParseFrom(%q) = %q: want an error naming %s and saying what is accepted", tc.in, msg, tc.says)
		}
	}
}

func TestScopeValidate(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		scope Scope
		bad   string // in the error, "" for none
	}{
		{Scope{}, ""},
		{Scope{FromSeq: 5, Tenants: []string{"a"}}, ""},
		{Scope{FromTime: at}, ""},
		{Scope{FromSeq: -1}, "-1"},
		{Scope{FromSeq: 5, FromTime: at}, "both"},
	} {
		err := tc.scope.Validate()
		if (err != nil) != (tc.bad != "") || err != nil && !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("%+v.Validate() = %v, want an error containing %q", tc.scope, err, tc.bad)
		}
	}
}

func TestCovers(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 123456000, time.UTC)
	ev := func(seq int64, ts time.Time, tenant string) *cdc.Event {
		return &cdc.Event{SeqID: seq, Timestamp: ts, TenantID: tenant}
	}
	for _, tc := range []struct {
		name  string
		scope Scope
		event *cdc.Event
		want  bool
	}{
		{"everything", Scope{}, ev(1, at, "x"), true},
		{"seq below", Scope{FromSeq: 10}, ev(9, at, "x"), false},
		{"seq at", Scope{FromSeq: 10}, ev(10, at, "x"), true},
		{"seq above", Scope{FromSeq: 10}, ev(11, at, "x"), true},
		{"time before", Scope{FromTime: at}, ev(1, at.Add(-time.Microsecond), "x"), false},
		{"time at", Scope{FromTime: at}, ev(1, at, "x"), true},
		{"time at, other zone", Scope{FromTime: at.In(time.FixedZone("x", 7200))}, ev(1, at, "x"), true},
		{"time between microseconds: the event's microsecond is before", Scope{FromTime: at.Add(1)}, ev(1, at, "x"), false},
		{"time between microseconds: the next microsecond is in", Scope{FromTime: at.Add(999)}, ev(1, at.Add(time.Microsecond), "x"), true},
		{"tenant in", Scope{Tenants: []string{"a", "b"}}, ev(1, at, "b"), true},
		{"tenant out", Scope{Tenants: []string{"a", "b"}}, ev(1, at, "c"), false},
		{"tenant and seq", Scope{FromSeq: 5, Tenants: []string{"a"}}, ev(4, at, "a"), false},
		{"default tenant", Scope{Tenants: []string{"*DEFAULT*"}}, ev(4, at, "*DEFAULT*"), true},
	} {
		if got := tc.scope.Covers(tc.event); got != tc.want {
			t.Errorf("%s: %v.Covers(seq %d, %s, %q) = %v, want %v", tc.name, tc.scope, tc.event.SeqID,
				tc.event.Timestamp.Format(time.RFC3339Nano), tc.event.TenantID, got, tc.want)
		}
	}
}

func TestScopeString(t *testing.T) {
	s := Scope{FromSeq: 42, Tenants: []string{"acme", "globex"}}
	if got, want := s.String(), "seq:42 tenants acme,globex"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := (Scope{}).String(), "beginning"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
