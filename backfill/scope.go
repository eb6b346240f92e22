package backfill

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/martencdc/cdc"
)

// Key orders the rows of mt_events: by seq_id, then by tenant_id where
// seq_id is only unique per tenant (Marten 9 per-tenant partitioning, whose
// primary key is (seq_id, tenant_id)). Tenant is "" when the table is keyed
// by seq_id alone (see [Table.TenantKeyed]); tenants compare byte by byte,
// as PostgreSQL's "C" collation does, whatever the database's collation.
type Key struct {
	SeqID  int64  // mt_events.seq_id
	Tenant string // mt_events.tenant_id under per-tenant partitioning, else ""
}

// Less reports whether k comes before o: a smaller seq_id, or the same
// seq_id and a tenant that sorts first byte by byte.
func (k Key) Less(o Key) bool {
	if k.SeqID != o.SeqID {
		return k.SeqID < o.SeqID
	}
	return k.Tenant < o.Tenant
}

// Compare returns -1, 0 or +1 as k is before, equal to or after o.
func (k Key) Compare(o Key) int {
	switch {
	case k.Less(o):
		return -1
	case o.Less(k):
		return 1
	}
	return 0
}

// String formats the key for a text column and for logs: "42" when Tenant
// is empty, "42:acme" otherwise (the tenant as it is, colons included).
// [ParseKey] reads it back.
func (k Key) String() string {
	s := strconv.FormatInt(k.SeqID, 10)
	if k.Tenant == "" {
		return s
	}
	return s + ":" + k.Tenant
}

// ParseKey parses what [Key.String] returns: a decimal seq_id, optionally
// followed by ':' and the tenant (which may itself contain ':').
func ParseKey(s string) (Key, error) {
	num, tenant, _ := strings.Cut(s, ":")
	seq, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return Key{}, fmt.Errorf("parse backfill key %q: want a seq_id, optionally followed by :tenant (42 or 42:acme): seq_id %q is not a 64-bit integer", s, num)
	}
	return Key{SeqID: seq, Tenant: tenant}, nil
}

// Scope says which events a backfill covers: those from a seq_id or from a
// time on, of some tenants or of all. The zero Scope covers every event.
type Scope struct {
	// FromSeq covers the events with seq_id >= FromSeq; 0 covers them from
	// the beginning. Under per-tenant partitioning, where every tenant has
	// its own sequence, the bound applies to each tenant's seq_ids.
	FromSeq int64
	// FromTime covers the events with timestamp >= FromTime; the zero time
	// leaves it unset. PostgreSQL keeps microseconds: a FromTime between
	// two microseconds counts from the next one. At most one of FromSeq
	// and FromTime is set.
	FromTime time.Time
	// Tenants covers only the events of these tenant ids (mt_events.tenant_id,
	// "*DEFAULT*" under single tenancy); empty covers every tenant.
	Tenants []string
}

// Validate reports a scope that cannot be read: a negative FromSeq, or both
// FromSeq and FromTime set.
func (s Scope) Validate() error {
	switch {
	case s.FromSeq < 0:
		return fmt.Errorf("backfill scope: from seq_id %d: a seq_id bound is 1 or more (0 for the beginning)", s.FromSeq)
	case s.FromSeq > 0 && !s.FromTime.IsZero():
		return fmt.Errorf("backfill scope: both from seq_id %d and from time %s: give one of them", s.FromSeq, s.FromTime.Format(time.RFC3339Nano))
	}
	return nil
}

// fromTime returns FromTime rounded up to PostgreSQL's precision, a
// microsecond, in UTC: with timestamps in whole microseconds, ts >= FromTime
// exactly when ts >= fromTime(), and that is what the SQL compares with, so
// [Scope.Covers] and [Table.Page] agree.
func (s Scope) fromTime() time.Time {
	t := s.FromTime.UTC()
	if r := t.Truncate(time.Microsecond); !r.Equal(t) {
		return r.Add(time.Microsecond)
	}
	return t
}

// Covers reports whether the scope covers e, by the same rule [Table.Page]
// and [Table.Count] apply in SQL: e's seq_id, timestamp and tenant id. It
// serves events of the live stream, to tell which of them a backfill
// already delivers.
func (s Scope) Covers(e *cdc.Event) bool {
	if s.FromSeq > 0 && e.SeqID < s.FromSeq {
		return false
	}
	if !s.FromTime.IsZero() && e.Timestamp.Before(s.fromTime()) {
		return false
	}
	if len(s.Tenants) > 0 && !slices.Contains(s.Tenants, e.TenantID) {
		return false
	}
	return true
}

// From returns the start of the scope as [ParseFrom] reads it: "beginning",
// "seq:N" or "time:RFC3339" (with fractional seconds when it has them).
func (s Scope) From() string {
	switch {
	case s.FromSeq > 0:
		return "seq:" + strconv.FormatInt(s.FromSeq, 10)
	case !s.FromTime.IsZero():
		return "time:" + s.FromTime.Format(time.RFC3339Nano)
	}
	return "beginning"
}

// String describes the scope for logs: its start as [Scope.From] writes it,
// then the tenants when it has some ("seq:42 tenants acme,globex").
func (s Scope) String() string {
	if len(s.Tenants) == 0 {
		return s.From()
	}
	return s.From() + " tenants " + strings.Join(s.Tenants, ",")
}

// errFromSyntax says what ParseFrom accepts.
var errFromSyntax = errors.New(`want "beginning", "seq:N" (the first seq_id, 1 or more) or "time:RFC3339" (e.g. time:2026-01-02T15:04:05Z)`)

// ParseFrom parses where a backfill starts, as the command line and the
// configuration give it: "beginning" (every event), "seq:N" (seq_id >= N,
// N >= 1; "seq:0" is the beginning) or "time:T" (timestamp >= T, T in RFC
// 3339, e.g. "time:2026-01-02T15:04:05Z" or with an offset and fractional
// seconds). The scope it returns has no tenants.
func ParseFrom(s string) (Scope, error) {
	kind, value, ok := strings.Cut(s, ":")
	switch {
	case s == "beginning":
		return Scope{}, nil
	case ok && kind == "seq":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 0 {
			return Scope{}, fmt.Errorf("parse backfill start %q: seq_id %q is not a whole number of 1 or more: %w", s, value, errFromSyntax)
		}
		return Scope{FromSeq: n}, nil
	case ok && kind == "time":
		t, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			return Scope{}, fmt.Errorf("parse backfill start %q: time %q is not in RFC 3339 (2026-01-02T15:04:05Z, or with an offset such as +02:00): %w", s, value, errFromSyntax)
		}
		return Scope{FromTime: t}, nil
	}
	return Scope{}, fmt.Errorf("parse backfill start %q: %w", s, errFromSyntax)
}
