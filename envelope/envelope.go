// Package envelope encodes events in the JSON envelope of SPEC §5, the format
// of the stdout sink, of Kafka message values (value: envelope) and of
// Elasticsearch documents in events mode:
//
//	{"id","seq_id","stream_id","version","type","dotnet_type","tenant_id",
//	 "timestamp","data","correlation_id","causation_id","headers","user_name",
//	 "lsn","commit_time"}
//
// data and headers are embedded as JSON, not as strings. Optional fields that
// are empty (NULL or absent columns) are null. lsn is the commit LSN of the
// event's transaction as PostgreSQL prints it; timestamp and commit_time are
// RFC 3339 in UTC.
//
// The encoder appends to a caller-owned buffer and allocates nothing, since it
// runs once per event per sink.
package envelope

import (
	"time"
	"unicode/utf8"

	"github.com/martencdc/cdc"
)

// Append appends the JSON envelope of e to dst and returns the extended buffer.
func Append(dst []byte, e *cdc.Event) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, e.ID)
	dst = append(dst, `,"seq_id":`...)
	dst = appendInt(dst, e.SeqID)
	dst = append(dst, `,"stream_id":`...)
	dst = AppendString(dst, e.StreamID)
	dst = append(dst, `,"version":`...)
	dst = appendInt(dst, e.Version)
	dst = append(dst, `,"type":`...)
	dst = AppendString(dst, e.Type)
	dst = append(dst, `,"dotnet_type":`...)
	dst = appendOptString(dst, e.DotnetType)
	dst = append(dst, `,"tenant_id":`...)
	dst = appendOptString(dst, e.TenantID)
	dst = append(dst, `,"timestamp":`...)
	dst = appendTime(dst, e.Timestamp)
	dst = append(dst, `,"data":`...)
	dst = appendRaw(dst, e.Data)
	dst = append(dst, `,"correlation_id":`...)
	dst = appendOptString(dst, e.CorrelationID)
	dst = append(dst, `,"causation_id":`...)
	dst = appendOptString(dst, e.CausationID)
	dst = append(dst, `,"headers":`...)
	dst = appendRaw(dst, e.Headers)
	dst = append(dst, `,"user_name":`...)
	dst = appendOptString(dst, e.UserName)
	dst = append(dst, `,"lsn":"`...)
	dst = e.LSN.AppendText(dst)
	dst = append(dst, `","commit_time":`...)
	dst = appendTime(dst, e.CommitTime)
	return append(dst, '}')
}

func appendInt(dst []byte, v int64) []byte {
	if v < 0 {
		dst = append(dst, '-')
		return appendUint(dst, uint64(-v))
	}
	return appendUint(dst, uint64(v))
}

func appendUint(dst []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, tmp[i:]...)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendRaw embeds a JSON value; an empty value is null.
func appendRaw(dst []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

func appendOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return AppendString(dst, s)
}

const hexDigits = "0123456789abcdef"

// safe[b] is true for the ASCII bytes that need no escaping in a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// AppendString appends s as a JSON string, the one way cdc writes strings
// into JSON it builds (the envelope, Elasticsearch documents). Invalid UTF-8
// becomes U+FFFD, as encoding/json does; control characters, and U+2028 and
// U+2029 (valid JSON that breaks JavaScript consumers), are escaped.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if safe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript consumers.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Names of the event headers the Kafka and NATS sinks put on every message
// (SPEC §5). CorrelationID and CausationID are present only when the event
// has them.
const (
	HeaderEventID       = "event-id"       // cdc.Event.ID
	HeaderEventType     = "event-type"     // cdc.Event.Type
	HeaderStreamID      = "stream-id"      // cdc.Event.StreamID
	HeaderTenantID      = "tenant-id"      // cdc.Event.TenantID
	HeaderSeqID         = "seq-id"         // cdc.Event.SeqID, in decimal
	HeaderLSN           = "lsn"            // commit LSN, as PostgreSQL prints it ("0/16B3748")
	HeaderCorrelationID = "correlation-id" // cdc.Event.CorrelationID, when set
	HeaderCausationID   = "causation-id"   // cdc.Event.CausationID, when set
)
