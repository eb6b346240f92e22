package cdc

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrBinaryBody is why an event whose body is only in Marten 9's bdata
// column is not delivered: cdc cannot turn a binary-serialized body into
// JSON. Every sink rejects such an event; on_error decides what happens.
var ErrBinaryBody = errors.New("the event body is binary (Marten 9 bdata column) and data is empty: cdc delivers JSON bodies only; serialize this event type as JSON, or set on_error: dead_letter to set such events aside")

// Position orders everything the projector reads: the commit LSN of a
// transaction, then the index of a row within that transaction (0-based, in WAL
// order, counting every row inserted into mt_events, tombstones included).
// Two positions of different transactions compare by commit LSN, which is
// commit order.
type Position struct {
	LSN   LSN    // commit LSN of the transaction
	Index uint32 // row index within the transaction
}

// EndOfTx is the Index of a position that covers a whole transaction: every
// row of the transaction with commit LSN p.LSN is at or below
// Position{p.LSN, EndOfTx}.
const EndOfTx = ^uint32(0)

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.LSN < q.LSN:
		return -1
	case p.LSN > q.LSN:
		return 1
	case p.Index < q.Index:
		return -1
	case p.Index > q.Index:
		return 1
	}
	return 0
}

// String formats the position as "LSN#index" ("0/16B3748#2"), or "LSN#end"
// for a whole transaction.
func (p Position) String() string {
	if p.Index == EndOfTx {
		return p.LSN.String() + "#end"
	}
	return fmt.Sprintf("%s#%d", p.LSN, p.Index)
}

// Event is one Marten event: a committed row inserted into mt_events. The
// field names are the ones templates use ({{.Type}}, {{.TenantID}}, ...).
// Optional columns that are absent or NULL leave their field empty.
type Event struct {
	ID            string          // mt_events.id (event id, a uuid)
	SeqID         int64           // mt_events.seq_id; unique only per tenant under tenant partitioning
	StreamID      string          // mt_events.stream_id, uuid or string identity, as text
	Version       int64           // mt_events.version, 1-based position within the stream
	Type          string          // mt_events.type, the event type alias ("incident_logged")
	DotnetType    string          // mt_events.mt_dotnet_type
	TenantID      string          // mt_events.tenant_id ("*DEFAULT*" under single tenancy)
	Timestamp     time.Time       // mt_events.timestamp
	Data          json.RawMessage // mt_events.data, the event body as JSON
	CorrelationID string          // mt_events.correlation_id
	CausationID   string          // mt_events.causation_id
	Headers       json.RawMessage // mt_events.headers as JSON, nil when NULL or absent
	UserName      string          // mt_events.user_name
	LSN           LSN             // commit LSN of the event's transaction
	Index         uint32          // row index within the transaction
	CommitTime    time.Time       // commit timestamp of the event's transaction
	TxID          uint32          // transaction id
	// BData is Marten 9's binary body (mt_events.bdata) of an event whose
	// data column is empty ({} or null): an event written by a binary
	// serializer. cdc delivers JSON bodies only, so the pipeline rejects
	// such an event with ErrBinaryBody and the sink's on_error decides.
	// BData is nil for every JSON event: bdata is ignored when data has
	// content.
	BData []byte
}

// Position returns the event's position in the stream.
func (e *Event) Position() Position { return Position{LSN: e.LSN, Index: e.Index} }

// eventOverhead approximates the bytes an event takes beyond its JSON bodies
// once encoded (ids, type names, metadata, envelope keys).
const eventOverhead = 256

// Size estimates the encoded size of the event in bytes, for batching by size.
func (e *Event) Size() int {
	return eventOverhead + len(e.Data) + len(e.Headers) + len(e.DotnetType) + len(e.Type)
}
