package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/martencdc/cdc"
)

// eventsChunk is how many rows of a ModeEvents batch go in one INSERT of
// writeEvents: the server inserts a chunk while the next one is encoded.
const eventsChunk = 250

// textArrayOID is the type of the insert's parameters (text[]).
const textArrayOID = 1009

var (
	// eventsParamOIDs types every parameter of the insert as text[].
	eventsParamOIDs = func() []uint32 {
		o := make([]uint32, numFields)
		for i := range o {
			o[i] = textArrayOID
		}
		return o
	}()
	// eventsParamFormats sends every parameter in binary.
	eventsParamFormats = func() []int16 {
		f := make([]int16, numFields)
		for i := range f {
			f[i] = 1
		}
		return f
	}()
)

// writeEvents is writeBatched for ModeEvents: it inserts rows into the
// events table and moves the checkpoint to last (unless leaveCheckpoint)
// in one transaction, committed before it returns nil.
//
// It speaks the extended protocol in pipeline mode itself: the rows go in
// chunks of eventsChunk, each encoded straight from the events into the
// binary form of the insert's text arrays and sent before the next one is
// encoded, so the server inserts one chunk while the client encodes the
// next (pgx.Batch encodes the whole batch before it sends anything). The
// begin, the chunks and the checkpoint take one round trip, the progress
// statement (Config.Progress) one more, the commit the last. A failure is returned as it came (a *pgconn.PgError from the
// server), with the transaction rolled back; write then classifies it as
// for any batch.
func (s *Sink) writeEvents(ctx context.Context, rows []*cdc.Event, last cdc.Position, cpMode checkpointing) error {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a connection: %w", err)
	}
	// Release destroys a connection left closed, busy or in a transaction.
	defer c.Release()
	pc := c.Conn().PgConn()

	p := pc.StartPipeline(ctx)
	p.SendQueryParams("BEGIN", nil, nil, nil, nil)
	results := 1
	var buf []byte
	for start := 0; start < len(rows); start += eventsChunk {
		end := min(start+eventsChunk, len(rows))
		var params [][]byte
		buf, params = s.events.encode(buf[:0], rows[start:end])
		p.SendQueryParams(s.events.insert, params, eventsParamOIDs, eventsParamFormats, nil)
		results++
		// SendQueryParams copied params: buf is free for the next chunk.
		if end < len(rows) {
			if err := p.Flush(); err != nil {
				p.Close()
				return fmt.Errorf("send rows: %w", err)
			}
		}
	}
	cp := -1
	if cpMode == moveCheckpoint {
		cp = results
		p.SendQueryParams(s.cpSQL, s.checkpointParams(last), nil, nil, nil)
		results++
	}
	if err := p.Sync(); err != nil {
		p.Close()
		return fmt.Errorf("send rows: %w", err)
	}
	var cpRows int64
	var failed error
	for i := 0; i < results && failed == nil; i++ {
		res, err := p.GetResults()
		if err != nil {
			failed = err
			break
		}
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			failed = fmt.Errorf("unexpected pipeline result %T", res)
			break
		}
		tag, err := rr.Close()
		if err != nil {
			failed = err
		} else if i == cp {
			cpRows = tag.RowsAffected()
		}
	}
	if err := p.Close(); err != nil && failed == nil {
		failed = err
	}
	if failed == nil && cp >= 0 && cpRows != 1 {
		failed = errCheckpointMoved
	}
	var applied []*cdc.Event
	if failed == nil && cp >= 0 && s.progress != nil {
		applied = s.upTo(last)
		if sql, args, ok := s.progress.Statement(applied); ok {
			if _, err := c.Conn().Exec(ctx, sql, args...); err != nil {
				failed = fmt.Errorf("record progress: %w", err)
			}
		}
	}
	if failed != nil {
		s.rollbackConn(pc)
		return failed
	}
	tag, err := pc.Exec(ctx, "COMMIT").ReadAll()
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if len(tag) != 1 || tag[0].CommandTag.String() != "COMMIT" {
		return errors.New("commit: the transaction was rolled back")
	}
	if cp >= 0 {
		s.setFloor(last)
		if s.progress != nil {
			s.progress.Committed(applied)
		}
	}
	return nil
}

// rollbackConn rolls back pc's transaction, if it is in one and can.
func (s *Sink) rollbackConn(pc *pgconn.PgConn) {
	if pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	_, _ = pc.Exec(ctx, "ROLLBACK").ReadAll()
}

// checkpointParams returns the parameters of checkpointSQL for moving the
// checkpoint to p, in text format (the server infers their types).
func (s *Sink) checkpointParams(p cdc.Position) [][]byte {
	params := [][]byte{
		[]byte(s.pipeline), []byte(s.sink),
		[]byte(p.LSN.String()), strconv.AppendInt(nil, int64(p.Index), 10),
		nil, nil,
	}
	if s.hasFloor {
		params[4] = []byte(s.floor.LSN.String())
		params[5] = strconv.AppendInt(nil, int64(s.floor.Index), 10)
	}
	return params
}

// encode appends to buf the insert's parameters for events, one binary
// text[] per column, and returns buf and the parameters (slices of it).
func (p *eventsProjection) encode(buf []byte, events []*cdc.Event) ([]byte, [][]byte) {
	var bounds [numFields + 1]int
	for f := range numFields {
		bounds[f] = len(buf)
		// Array header: one dimension, a NULL flag set below, element
		// type text, the dimension's length and lower bound.
		buf = binary.BigEndian.AppendUint32(buf, 1)
		flags := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, 0)
		buf = binary.BigEndian.AppendUint32(buf, 25)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(events)))
		buf = binary.BigEndian.AppendUint32(buf, 1)
		for _, e := range events {
			at := len(buf)
			buf = append(buf, 0, 0, 0, 0)
			var ok bool
			buf, ok = field(f).appendText(buf, e)
			if ok {
				binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
			} else {
				binary.BigEndian.PutUint32(buf[at:], 0xFFFFFFFF) // NULL
				binary.BigEndian.PutUint32(buf[flags:], 1)
			}
		}
	}
	bounds[numFields] = len(buf)
	params := make([][]byte, numFields)
	for f := range numFields {
		params[f] = buf[bounds[f]:bounds[f+1]:bounds[f+1]]
	}
	return buf, params
}

// appendText appends the text of f for e to buf, as field.value gives it;
// ok is false for NULL.
func (f field) appendText(buf []byte, e *cdc.Event) ([]byte, bool) {
	switch f {
	case fieldID:
		return append(buf, e.ID...), true
	case fieldSeqID:
		return strconv.AppendInt(buf, e.SeqID, 10), true
	case fieldStreamID:
		return append(buf, e.StreamID...), true
	case fieldVersion:
		return strconv.AppendInt(buf, e.Version, 10), true
	case fieldType:
		return append(buf, e.Type...), true
	case fieldDotnetType:
		return appendOptional(buf, e.DotnetType)
	case fieldTenantID:
		return append(buf, e.TenantID...), true
	case fieldTimestamp:
		return appendTime(buf, e.Timestamp)
	case fieldData:
		return appendJSON(buf, e.Data)
	case fieldCorrelationID:
		return appendOptional(buf, e.CorrelationID)
	case fieldCausationID:
		return appendOptional(buf, e.CausationID)
	case fieldHeaders:
		return appendJSON(buf, e.Headers)
	case fieldUserName:
		return appendOptional(buf, e.UserName)
	case fieldLSN:
		return append(buf, e.LSN.String()...), true
	case fieldCommitTime:
		return appendTime(buf, e.CommitTime)
	}
	return buf, false
}

// appendOptional appends s, or says NULL when s is empty.
func appendOptional(buf []byte, s string) ([]byte, bool) {
	if s == "" {
		return buf, false
	}
	return append(buf, s...), true
}

// appendJSON appends raw, or says NULL when it is empty.
func appendJSON(buf, raw []byte) ([]byte, bool) {
	if len(raw) == 0 {
		return buf, false
	}
	return append(buf, raw...), true
}

// appendTime appends t as timeText formats it, or says NULL for the zero
// time.
func appendTime(buf []byte, t time.Time) ([]byte, bool) {
	if t.IsZero() {
		return buf, false
	}
	return t.UTC().AppendFormat(buf, "2006-01-02 15:04:05.999999Z07:00"), true
}
