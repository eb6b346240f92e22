package decoder

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339, or "" for an error
	}{
		{"2026-11-22 10:00:00.123456+00", "2026-11-22T10:00:00.123456Z"},
		{"2026-11-22 10:00:00+00", "2026-11-22T10:00:00Z"},
		{"2026-11-22 10:00:00.5+00", "2026-11-22T10:00:00.5Z"},
		{"2026-11-22 10:00:00.000001+00", "2026-11-22T10:00:00.000001Z"},
		{"2026-11-22 10:00:00.123456789+00", "2026-11-22T10:00:00.123456789Z"},
		{"2026-11-22 15:30:00.123456+05:30", "2026-11-22T10:00:00.123456Z"},
		{"2026-11-22 07:00:00-03", "2026-11-22T10:00:00Z"},
		{"2026-11-22 05:15:00-04:45", "2026-11-22T10:00:00Z"},
		{"2026-11-22 10:00:00+0530", "2026-11-22T04:30:00Z"},
		{"1883-11-18 12:03:58+00:03:58", "1883-11-18T12:00:00Z"}, // LMT offsets have seconds
		{"2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"},
		{"2026-11-22T10:00:00.25Z", "2026-11-22T10:00:00.25Z"},
		{"2026-11-23 00:30:00+14", "2026-11-22T10:30:00Z"},
		{"2024-02-29 23:59:59.999999-12", "2024-03-01T11:59:59.999999Z"},
		{"2000-01-01 00:00:00+00", "2000-01-01T00:00:00Z"},
		{"1970-01-01 00:00:00+00", "1970-01-01T00:00:00Z"},
		{"1969-12-31 23:59:59.999999+00", "1969-12-31T23:59:59.999999Z"},
		{"0001-01-01 00:00:00+00", "0001-01-01T00:00:00Z"},
		{"9999-12-31 23:59:59.999999+00", "9999-12-31T23:59:59.999999Z"},
		{"2026-11-22 24:00:00+00", "2026-11-23T00:00:00Z"},
		{"", ""},
		{"infinity", ""},
		{"-infinity", ""},
		{"2026-11-22", ""},
		{"2026-11-22 10:00:00", ""},     // no zone
		{"2026-11-22 10:00+00", ""},     // no seconds
		{"2026-11-22 10:00:00.+00", ""}, // no fraction digits
		{"2026-11-22 10:00:00.1234567890+00", ""},
		{"2026-11-22 10:00:00+0", ""},
		{"2026-11-22 10:00:00+00:", ""},
		{"2026-11-22 10:00:00+05:3", ""},
		{"2026-11-22 10:00:00+05:30:", ""},
		{"2026-11-22 10:00:00+05:3000", ""},
		{"2026-11-22 10:00:00+00 ", ""},
		{"2026-11-22 10:00:00+00 AD", ""},
		{"2026-11-22  10:00:00+00", ""},
		{"2026-13-01 10:00:00+00", ""},
		{"2026-00-01 10:00:00+00", ""},
		{"2026-04-31 10:00:00+00", ""},
		{"2025-02-29 10:00:00+00", ""},
		{"1900-02-29 10:00:00+00", ""},
		{"2026-11-22 25:00:00+00", ""},
		{"2026-11-22 24:00:01+00", ""},
		{"2026-11-22 10:60:00+00", ""},
		{"26-11-22 10:00:00+00", ""},
		{"2026-1-22 10:00:00+00", ""},
		{"２026-11-22 10:00:00+00", ""},
	}
	for _, tt := range tests {
		got, err := parseTimestamp([]byte(tt.in))
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%q: got %v, want an error", tt.in, got)
		case tt.want == "":
		case err != nil:
			t.Errorf("%q: %v", tt.in, err)
		case !got.Equal(ts(tt.want)) || got.Location() != time.UTC:
			t.Errorf("%q: got %v, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseTimestampExtremes(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		// PostgreSQL prints years past 9999 with more digits, and BC dates with a suffix.
		{"294276-12-31 23:59:59.999999+00", time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"10000-01-01 00:00:00+00", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0001-01-01 00:00:00+00 BC", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0001-02-29 00:00:00+00 BC", time.Date(0, 2, 29, 0, 0, 0, 0, time.UTC)}, // 1 BC is a leap year
		{"4713-11-24 00:00:00+00 BC", time.Date(-4712, 11, 24, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := parseTimestamp([]byte(tt.in))
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("%q: got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := parseTimestamp([]byte("0002-02-29 00:00:00+00 BC")); err == nil {
		t.Error("2 BC has no February 29th")
	}
}

// The hand-written parser agrees with time.Parse on random instants.
func TestParseTimestampMatchesTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		sec := r.Int64N(253402300800+62135596800) - 62135596800 // 0001-01-01 .. 9999-12-31
		nsec := r.Int64N(1e6) * 1000
		off := (r.IntN(26*4) - 12*4) * 15 * 60
		zone := time.FixedZone("", off)
		instant := time.Unix(sec, nsec).In(zone)
		if instant.Year() < 1 || instant.Year() > 9999 {
			continue
		}
		text := instant.Format("2006-01-02 15:04:05.999999-07:00")
		if off%3600 == 0 {
			text = instant.Format("2006-01-02 15:04:05.999999-07")
		}
		got, err := parseTimestamp([]byte(text))
		if err != nil || !got.Equal(instant) {
			t.Fatalf("%s: got %v, %v; want %v", text, got, err, instant.UTC())
		}
	}
}

func BenchmarkParseTimestamp(b *testing.B) {
	in := []byte("2026-11-22 10:00:00.123456+00")
	for b.Loop() {
		if _, err := parseTimestamp(in); err != nil {
			b.Fatal(err)
		}
	}
}
