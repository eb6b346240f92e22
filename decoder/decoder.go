package decoder

import (
	"fmt"
	"time"

	cdc "github.com/martencdc/cdc"
)

// Config names the table whose inserts are events.
type Config struct {
	Schema string // schema of the events table; default "public"
	Table  string // name of the events table; default "mt_events"
}

// Defaults of Config, used for its empty fields.
const (
	DefaultSchema = "public"
	DefaultTable  = "mt_events"
)

// Kind says what a decoded message means to the projector.
type Kind uint8

// Kinds of [Message].
const (
	KindNone   Kind = iota // nothing for the projector (relation metadata, other tables, updates, ...)
	KindBegin              // a transaction starts: CommitLSN, CommitTime, TxID
	KindEvent              // an event: Event and Position
	KindSkip               // a row of the events table that is not an event: Position and Skip
	KindCommit             // the transaction ends: CommitLSN, EndLSN, CommitTime
)

var kindNames = [...]string{"none", "begin", "event", "skip", "commit"}

// String returns the kind's lower-case name ("event").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// SkipReason says why a row inserted into the events table is not an event.
type SkipReason uint8

// Reasons of a [KindSkip] message.
const (
	SkipNone      SkipReason = iota // not skipped
	SkipTombstone                   // type "tombstone": Marten's filler for the seq_ids of a failed append
	SkipSkipped                     // is_skipped = true: marked to be skipped by projections and subscriptions
	SkipArchived                    // is_archived = true: a copy made by archiving the stream, not a new event
)

var skipNames = [...]string{"none", "tombstone", "skipped", "archived"}

// String returns the reason's lower-case name ("tombstone").
func (s SkipReason) String() string {
	if int(s) < len(skipNames) {
		return skipNames[s]
	}
	return fmt.Sprintf("skip(%d)", uint8(s))
}

// Message is the meaning of one decoded pgoutput message. Which fields are
// set depends on Kind.
type Message struct {
	// Kind says what the message means, and so which fields are set.
	Kind Kind
	// Event is the decoded event (KindEvent), or the archived copy of an event
	// (KindSkip with SkipArchived). Its LSN, Index, CommitTime and TxID are
	// those of the row's transaction and position. It is never modified by
	// the decoder afterwards and holds no reference to the decoded bytes.
	Event *cdc.Event
	// Position of the row (KindEvent, KindSkip): commit LSN of the
	// transaction and index of the row among its inserts into the events
	// table, from 0.
	Position cdc.Position
	// Skip says why the row is not an event (KindSkip).
	Skip SkipReason
	// CommitLSN is the LSN of the transaction's commit record (KindBegin,
	// where pgoutput calls it the final LSN, and KindCommit).
	CommitLSN cdc.LSN
	// EndLSN is the end of the transaction's commit record (KindCommit): the
	// position to confirm to the server so that it does not send the
	// transaction again.
	EndLSN cdc.LSN
	// CommitTime is the transaction's commit timestamp, in UTC (KindBegin,
	// KindCommit).
	CommitTime time.Time
	// TxID is the transaction id (KindBegin).
	TxID uint32
}

// Decoder decodes the messages of one pgoutput replication stream. It keeps
// the relations the server described and the open transaction. It is not
// safe for concurrent use.
type Decoder struct {
	schema, table string
	rels          map[uint32]*relation
	intern        interner

	inTx       bool
	commitLSN  cdc.LSN
	commitTime time.Time
	xid        uint32
	index      uint32 // index of the next insert into the events table

	spans [numFields]span // scratch: where the insert being decoded has each field
}

// New returns a decoder for the events table cfg names.
func New(cfg Config) *Decoder {
	if cfg.Schema == "" {
		cfg.Schema = DefaultSchema
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	return &Decoder{
		schema: cfg.Schema,
		table:  cfg.Table,
		rels:   make(map[uint32]*relation),
		intern: interner{m: make(map[string]string)},
	}
}

// Reset forgets the relations and any open transaction. Call it when the
// stream restarts on a new replication connection.
func (d *Decoder) Reset() {
	clear(d.rels)
	d.inTx = false
	d.commitLSN, d.commitTime, d.xid, d.index = 0, time.Time{}, 0, 0
}

// Decode decodes one pgoutput message: the WALData of one XLogData message.
// data is only read during the call; nothing returned refers to it. On error
// the message is zero; the error wraps [ErrMalformed] or [ErrOutOfSequence],
// or is a [*MissingColumnError] or a [*ColumnError].
func (d *Decoder) Decode(data []byte) (Message, error) {
	if len(data) == 0 {
		return Message{}, fmt.Errorf("decode message: %w: empty", ErrMalformed)
	}
	switch data[0] {
	case 'I':
		return d.decodeInsert(data)
	case 'B':
		return d.decodeBegin(data)
	case 'C':
		return d.decodeCommit(data)
	case 'R':
		return d.decodeRelation(data)
	case 'U', 'D', 'T':
		return d.decodeIgnoredChange(data)
	case 'O', 'Y', 'M':
		return Message{}, validateMeta(data)
	}
	return Message{}, fmt.Errorf("decode message: %w: unexpected message type %q (%d bytes; protocol version 1 without streaming sends B, C, O, R, Y, I, U, D, T, M)",
		ErrMalformed, data[0], len(data))
}

// pgEpochMicros is 2000-01-01T00:00:00Z, PostgreSQL's epoch, in microseconds
// since the Unix epoch.
const pgEpochMicros = 946684800 * 1000000

func pgTime(micros uint64) time.Time {
	return time.UnixMicro(int64(micros) + pgEpochMicros).UTC()
}

func (d *Decoder) decodeBegin(data []byte) (Message, error) {
	r := reader{b: data, off: 1}
	lsn := cdc.LSN(r.u64())
	ts := r.u64()
	xid := r.u32()
	if err := r.done(); err != nil {
		return Message{}, fmt.Errorf("decode begin: %w", err)
	}
	if d.inTx {
		return Message{}, fmt.Errorf("decode begin of %s (xid %d): %w: transaction %s (xid %d) is still open",
			lsn, xid, ErrOutOfSequence, d.commitLSN, d.xid)
	}
	d.inTx, d.commitLSN, d.commitTime, d.xid, d.index = true, lsn, pgTime(ts), xid, 0
	return Message{Kind: KindBegin, CommitLSN: lsn, CommitTime: d.commitTime, TxID: xid}, nil
}

func (d *Decoder) decodeCommit(data []byte) (Message, error) {
	r := reader{b: data, off: 1}
	r.u8() // flags, unused
	lsn := cdc.LSN(r.u64())
	end := cdc.LSN(r.u64())
	ts := r.u64()
	if err := r.done(); err != nil {
		return Message{}, fmt.Errorf("decode commit: %w", err)
	}
	if !d.inTx {
		return Message{}, fmt.Errorf("decode commit of %s: %w: no transaction is open", lsn, ErrOutOfSequence)
	}
	if lsn != d.commitLSN {
		return Message{}, fmt.Errorf("decode commit of %s: %w: the open transaction (xid %d) began with final LSN %s",
			lsn, ErrOutOfSequence, d.xid, d.commitLSN)
	}
	d.inTx = false
	return Message{Kind: KindCommit, CommitLSN: lsn, EndLSN: end, CommitTime: pgTime(ts)}, nil
}

// decodeIgnoredChange checks an Update, Delete or Truncate message, which is
// never an event.
func (d *Decoder) decodeIgnoredChange(data []byte) (Message, error) {
	r := reader{b: data, off: 1}
	var what string
	switch data[0] {
	case 'T':
		what = "truncate"
		n := r.u32()
		r.u8() // options
		if !r.bad && uint64(len(data)-r.off) != 4*uint64(n) {
			r.bad = true
		}
		r.off = len(data)
	case 'U':
		what = "update"
		r.u32()
		if kind := r.u8(); kind == 'K' || kind == 'O' {
			skipTuple(&r)
			kind = r.u8()
			if kind != 'N' {
				r.bad = true
			}
		} else if kind != 'N' {
			r.bad = true
		}
		skipTuple(&r)
	case 'D':
		what = "delete"
		r.u32()
		if kind := r.u8(); kind != 'K' && kind != 'O' {
			r.bad = true
		}
		skipTuple(&r)
	}
	if err := r.done(); err != nil {
		return Message{}, fmt.Errorf("decode %s: %w", what, err)
	}
	if !d.inTx {
		return Message{}, fmt.Errorf("decode %s: %w: no transaction is open", what, ErrOutOfSequence)
	}
	return Message{}, nil
}

// validateMeta checks an Origin, Type or logical decoding Message message,
// none of which matters to the projector.
func validateMeta(data []byte) error {
	r := reader{b: data, off: 1}
	var what string
	switch data[0] {
	case 'O':
		what = "origin"
		r.u64()     // commit LSN on the origin
		r.cstring() // origin name
	case 'Y':
		what = "type"
		r.u32()     // type OID
		r.cstring() // namespace
		r.cstring() // name
	case 'M':
		what = "logical decoding message"
		r.u8()      // flags
		r.u64()     // LSN
		r.cstring() // prefix
		r.bytes(int(r.u32()))
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}
