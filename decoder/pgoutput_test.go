package decoder

import (
	"encoding/binary"
	"time"

	cdc "github.com/martencdc/cdc"
)

// A small encoder of pgoutput protocol version 1 messages, for tests.

type wbuf []byte

func (w wbuf) u8(v byte) wbuf    { return append(w, v) }
func (w wbuf) u16(v uint16) wbuf { return binary.BigEndian.AppendUint16(w, v) }
func (w wbuf) u32(v uint32) wbuf { return binary.BigEndian.AppendUint32(w, v) }
func (w wbuf) u64(v uint64) wbuf { return binary.BigEndian.AppendUint64(w, v) }
func (w wbuf) str(s string) wbuf { return append(append(w, s...), 0) }

func pgMicros(t time.Time) uint64 { return uint64(t.UnixMicro() - pgEpochMicros) }

func beginMsg(lsn cdc.LSN, commitTime time.Time, xid uint32) []byte {
	return wbuf{'B'}.u64(uint64(lsn)).u64(pgMicros(commitTime)).u32(xid)
}

func commitMsg(lsn, end cdc.LSN, commitTime time.Time) []byte {
	return wbuf{'C'}.u8(0).u64(uint64(lsn)).u64(uint64(end)).u64(pgMicros(commitTime))
}

// col is a column of a Relation message.
type col struct {
	name string
	typ  uint32
}

// PostgreSQL type OIDs.
const (
	oidBool    = 16
	oidBytea   = 17
	oidInt8    = 20
	oidInt4    = 23
	oidText    = 25
	oidJSON    = 114
	oidVarchar = 1043
	oidTstz    = 1184
	oidUUID    = 2950
	oidJSONB   = 3802
)

func relationMsg(oid uint32, namespace, name string, cols ...col) []byte {
	w := wbuf{'R'}.u32(oid).str(namespace).str(name).u8('d').u16(uint16(len(cols)))
	for i, c := range cols {
		var flags byte
		if i == 0 {
			flags = 1
		}
		w = w.u8(flags).str(c.name).u32(c.typ).u32(0xFFFFFFFF)
	}
	return w
}

// val is one column value of a TupleData.
type val struct {
	kind byte // 'n', 'u', 't', 'b'
	s    string
}

func txt(s string) val { return val{kind: 't', s: s} }

var (
	null      = val{kind: 'n'}
	unchanged = val{kind: 'u'}
)

func (w wbuf) tuple(vals ...val) wbuf {
	w = w.u16(uint16(len(vals)))
	for _, v := range vals {
		w = w.u8(v.kind)
		if v.kind == 't' || v.kind == 'b' {
			w = w.u32(uint32(len(v.s)))
			w = append(w, v.s...)
		}
	}
	return w
}

func insertMsg(oid uint32, vals ...val) []byte {
	return wbuf{'I'}.u32(oid).u8('N').tuple(vals...)
}

// updateMsg encodes an Update; old is nil or a key ('K') or old ('O') tuple.
func updateMsg(oid uint32, oldKind byte, old []val, vals ...val) []byte {
	w := wbuf{'U'}.u32(oid)
	if oldKind != 0 {
		w = w.u8(oldKind).tuple(old...)
	}
	return w.u8('N').tuple(vals...)
}

func deleteMsg(oid uint32, oldKind byte, old ...val) []byte {
	return wbuf{'D'}.u32(oid).u8(oldKind).tuple(old...)
}

func truncateMsg(options byte, oids ...uint32) []byte {
	w := wbuf{'T'}.u32(uint32(len(oids))).u8(options)
	for _, o := range oids {
		w = w.u32(o)
	}
	return w
}

func originMsg(lsn cdc.LSN, name string) []byte {
	return wbuf{'O'}.u64(uint64(lsn)).str(name)
}

func typeMsg(oid uint32, namespace, name string) []byte {
	return wbuf{'Y'}.u32(oid).str(namespace).str(name)
}

func logicalMsg(transactional bool, lsn cdc.LSN, prefix, content string) []byte {
	var flags byte
	if transactional {
		flags = 1
	}
	return append(wbuf{'M'}.u8(flags).u64(uint64(lsn)).str(prefix).u32(uint32(len(content))), content...)
}

// martenRow is a row of mt_events by column name, encoded in the order of a
// relation's columns.
type martenRow map[string]val

func (r martenRow) insert(oid uint32, cols []col) []byte {
	vals := make([]val, len(cols))
	for i, c := range cols {
		v, ok := r[c.name]
		if !ok {
			v = null
		}
		vals[i] = v
	}
	return insertMsg(oid, vals...)
}

// with returns a copy of r with the given column values replaced.
func (r martenRow) with(kv ...any) martenRow {
	c := make(martenRow, len(r))
	for k, v := range r {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1].(val)
	}
	return c
}

// Columns of mt_events as schema.sql creates them (Marten 8 defaults).
var marten8Cols = []col{
	{"seq_id", oidInt8}, {"id", oidUUID}, {"stream_id", oidUUID}, {"version", oidInt8},
	{"data", oidJSONB}, {"type", oidVarchar}, {"timestamp", oidTstz}, {"tenant_id", oidVarchar},
	{"mt_dotnet_type", oidVarchar}, {"correlation_id", oidVarchar}, {"causation_id", oidVarchar},
	{"headers", oidJSONB}, {"is_archived", oidBool},
}

// Columns of a Marten 9 mt_events, in another order, with bdata, user_name
// and is_skipped.
var marten9Cols = []col{
	{"seq_id", oidInt8}, {"id", oidUUID}, {"stream_id", oidVarchar}, {"version", oidInt8},
	{"data", oidJSONB}, {"bdata", oidBytea}, {"type", oidVarchar}, {"timestamp", oidTstz},
	{"tenant_id", oidVarchar}, {"mt_dotnet_type", oidVarchar}, {"is_skipped", oidBool},
	{"correlation_id", oidVarchar}, {"causation_id", oidVarchar}, {"headers", oidJSONB},
	{"user_name", oidVarchar}, {"is_archived", oidBool},
}
