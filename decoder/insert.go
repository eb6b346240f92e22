package decoder

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unsafe"

	cdc "github.com/martencdc/cdc"
)

// ColumnError reports a value of the events table that cannot become an
// event field: NULL in a required column, or text that does not parse.
type ColumnError struct {
	Relation string       // qualified name, "public.mt_events"
	Column   string       // column name, "seq_id"
	Position cdc.Position // the row: commit LSN of the transaction and index within it
	Err      error        // what is wrong with the value
}

// Error says which value of which row is wrong, and how:
// decode insert into public.mt_events at 0/16B3748#3: column "seq_id": invalid integer "abc".
func (e *ColumnError) Error() string {
	return fmt.Sprintf("decode insert into %s at %s: column %q: %v", e.Relation, e.Position, e.Column, e.Err)
}

// Unwrap returns what is wrong with the value.
func (e *ColumnError) Unwrap() error { return e.Err }

var (
	errNull      = errors.New("NULL in a required column")
	errUnchanged = errors.New("unchanged TOAST value in an insert")
	errBinary    = errors.New("binary value (only the text format is requested)")
	errAbsent    = errors.New("column not in the relation")
)

func (d *Decoder) decodeInsert(data []byte) (Message, error) {
	r := reader{b: data, off: 1}
	oid := r.u32()
	if r.u8() != 'N' {
		r.bad = true
	}
	rel := d.rels[oid]
	var fields []field
	if rel != nil && rel.target && rel.err == nil {
		fields = rel.fields
	}
	d.spans = [numFields]span{}
	scanTuple(&r, fields, &d.spans)
	if err := r.done(); err != nil {
		if rel != nil {
			return Message{}, fmt.Errorf("decode insert into %s: %w", rel, err)
		}
		return Message{}, fmt.Errorf("decode insert into relation %d: %w", oid, err)
	}
	if !d.inTx {
		return Message{}, fmt.Errorf("decode insert into relation %d: %w: no transaction is open", oid, ErrOutOfSequence)
	}
	if rel == nil {
		return Message{}, fmt.Errorf("decode insert at %s: %w: relation %d was not described by a Relation message",
			d.commitLSN, ErrOutOfSequence, oid)
	}
	if !rel.target {
		return Message{}, nil
	}
	pos := cdc.Position{LSN: d.commitLSN, Index: d.index}
	if d.index == cdc.EndOfTx {
		return Message{}, fmt.Errorf("decode insert into %s at %s: too many rows in one transaction", rel, pos)
	}
	d.index++ // every row of the events table takes an index, even one that fails
	if rel.err != nil {
		return Message{}, fmt.Errorf("decode insert into %s at %s: %w", rel, pos, rel.err)
	}
	return d.decodeRow(data, rel, pos)
}

// decodeRow turns the row whose spans scanTuple found into a KindEvent or
// KindSkip message.
func (d *Decoder) decodeRow(data []byte, rel *relation, pos cdc.Position) (Message, error) {
	v := values{data: data, spans: &d.spans}
	typ := v.required(fieldType)
	if v.err == nil && string(typ) == "tombstone" {
		return Message{Kind: KindSkip, Position: pos, Skip: SkipTombstone}, nil
	}
	skipped := v.bool(fieldIsSkipped)
	if v.err == nil && skipped {
		return Message{Kind: KindSkip, Position: pos, Skip: SkipSkipped}, nil
	}
	archived := v.bool(fieldIsArchived)

	seqID := v.int(fieldSeqID)
	id := v.uuid(fieldID)
	streamID := v.required(fieldStreamID)
	version := v.int(fieldVersion)
	body := v.required(fieldData)
	ts := v.timestamp(fieldTimestamp)
	tenant := v.required(fieldTenantID)
	dotnet := v.optional(fieldDotnetType)
	correlation := v.optional(fieldCorrelationID)
	causation := v.optional(fieldCausationID)
	headers := v.optional(fieldHeaders)
	user := v.optional(fieldUserName)
	bdata := v.optional(fieldBData)
	if v.err != nil {
		return Message{}, &ColumnError{Relation: rel.String(), Column: columnNames[v.errField], Position: pos, Err: v.err}
	}

	// Low-cardinality strings come from the interner; the rest is copied
	// once into buf, of which the event's strings and JSON are views.
	typS, typOK := d.intern.get(typ)
	tenantS, tenantOK := d.intern.get(tenant)
	dotnetS, dotnetOK := d.intern.get(dotnet)
	size := len(id) + len(streamID) + len(body) + len(headers) + len(correlation) + len(causation) + len(user)
	if !typOK {
		size += len(typ)
	}
	if !tenantOK {
		size += len(tenant)
	}
	if !dotnetOK {
		size += len(dotnet)
	}
	c := carver{buf: make([]byte, size)}
	if !typOK {
		typS = c.str(typ)
	}
	if !tenantOK {
		tenantS = c.str(tenant)
	}
	if !dotnetOK {
		dotnetS = c.str(dotnet)
	}
	ev := &cdc.Event{
		ID:            c.str(id),
		SeqID:         seqID,
		StreamID:      c.str(streamID),
		Version:       version,
		Type:          typS,
		DotnetType:    dotnetS,
		TenantID:      tenantS,
		Timestamp:     ts,
		Data:          c.raw(body),
		CorrelationID: c.str(correlation),
		CausationID:   c.str(causation),
		Headers:       c.raw(headers),
		UserName:      c.str(user),
		LSN:           pos.LSN,
		Index:         pos.Index,
		CommitTime:    d.commitTime,
		TxID:          d.xid,
	}
	if bdata != nil && emptyJSON(body) {
		b, err := decodeBytea(bdata)
		if err != nil {
			return Message{}, &ColumnError{Relation: rel.String(), Column: columnNames[fieldBData], Position: pos, Err: err}
		}
		if len(b) > 0 {
			ev.BData = b
		}
	}
	if archived {
		return Message{Kind: KindSkip, Position: pos, Skip: SkipArchived, Event: ev}, nil
	}
	return Message{Kind: KindEvent, Position: pos, Event: ev}, nil
}

// carver hands out consecutive pieces of buf, filled with copies of the
// message's bytes.
type carver struct {
	buf []byte
	off int
}

// str copies b into the buffer and returns the copy as a string, without a
// second copy. unsafe.String is safe here because the bytes of the string
// are written once, by the copy, before the string exists, and never again:
// the carver moves past them, and the only other views of the buffer are the
// json.RawMessage values of raw, of other bytes, capacity-limited so that an
// append cannot reach their neighbours (and events must not be modified).
func (c *carver) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	n := copy(c.buf[c.off:], b)
	s := unsafe.String(&c.buf[c.off], n)
	c.off += n
	return s
}

// raw copies b into the buffer and returns the copy, with its capacity
// limited so that appending to it cannot overwrite what follows. nil stays
// nil (NULL or absent JSON).
func (c *carver) raw(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	start := c.off
	c.off += copy(c.buf[start:], b)
	return json.RawMessage(c.buf[start:c.off:c.off])
}

// values reads the text values of a row; the first error sticks, with the
// field it came from, so decodeRow checks once.
type values struct {
	data     []byte
	spans    *[numFields]span
	err      error
	errField field
}

func (v *values) fail(f field, err error) {
	if v.err == nil {
		v.err, v.errField = err, f
	}
}

// required returns the text of a required column.
func (v *values) required(f field) []byte {
	sp := v.spans[f]
	switch sp.kind {
	case 't':
		return v.data[sp.off : sp.off+sp.n : sp.off+sp.n]
	case 'n':
		v.fail(f, errNull)
	case 'u':
		v.fail(f, errUnchanged)
	case 'b':
		v.fail(f, errBinary)
	default:
		v.fail(f, errAbsent)
	}
	return nil
}

// optional returns the text of an optional column, nil when it is NULL or
// not in the relation.
func (v *values) optional(f field) []byte {
	sp := v.spans[f]
	switch sp.kind {
	case 't':
		return v.data[sp.off : sp.off+sp.n : sp.off+sp.n]
	case 'u':
		v.fail(f, errUnchanged)
	case 'b':
		v.fail(f, errBinary)
	}
	return nil
}

// bool returns an optional boolean column, false when NULL or absent.
func (v *values) bool(f field) bool {
	b := v.optional(f)
	if b == nil {
		return false
	}
	if len(b) == 1 {
		switch b[0] {
		case 't':
			return true
		case 'f':
			return false
		}
	}
	v.fail(f, fmt.Errorf("invalid boolean %s", quote(b)))
	return false
}

func (v *values) int(f field) int64 {
	b := v.required(f)
	if b == nil {
		return 0
	}
	n, ok := parseInt(b)
	if !ok {
		v.fail(f, fmt.Errorf("invalid integer %s", quote(b)))
	}
	return n
}

func (v *values) uuid(f field) []byte {
	b := v.required(f)
	if b != nil && !isUUID(b) {
		v.fail(f, fmt.Errorf("invalid uuid %s", quote(b)))
	}
	return b
}

func (v *values) timestamp(f field) (t time.Time) {
	b := v.required(f)
	if b == nil {
		return t
	}
	t, err := parseTimestamp(b)
	if err != nil {
		v.fail(f, err)
	}
	return t
}

// parseInt parses a decimal int64 (int2, int4 and int8 text output).
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 { // 19 digits cannot overflow a uint64
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// isUUID reports whether b is a uuid as PostgreSQL prints it
// (8-4-4-4-12 hex digits).
func isUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// quote quotes a value for an error message, shortened when long.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

// interner shares the strings of low-cardinality columns between events.
type interner struct {
	m map[string]string
}

// Limits of the interner: past them, strings are copied per event.
const (
	maxInterned   = 4096
	maxInternSize = 256
)

// get returns the interned string equal to b, adding it if there is room;
// ok is false when b must be copied instead.
func (in *interner) get(b []byte) (s string, ok bool) {
	if len(b) == 0 {
		return "", true
	}
	if s, ok := in.m[string(b)]; ok { // no allocation for the lookup
		return s, true
	}
	if len(in.m) >= maxInterned || len(b) > maxInternSize {
		return "", false
	}
	s = string(b)
	in.m[s] = s
	return s, true
}

// emptyJSON reports whether a data value carries no body: {} or null, what
// Marten 9 writes in data for an event whose body is binary (bdata).
func emptyJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "{}" || string(b) == "null"
}

// decodeBytea decodes a bytea value in PostgreSQL's text output format
// (bytea_output = hex, the default since 9.0: "\x0102ff").
func decodeBytea(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != '\\' || b[1] != 'x' {
		return nil, fmt.Errorf("bytea value not in hex format (set bytea_output = hex): %s", quote(b[:min(len(b), 16)]))
	}
	out := make([]byte, hex.DecodedLen(len(b)-2))
	if _, err := hex.Decode(out, b[2:]); err != nil {
		return nil, fmt.Errorf("invalid bytea value: %w", err)
	}
	return out, nil
}
