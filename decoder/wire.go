package decoder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by the errors of messages that do not parse:
// truncated, with trailing bytes, or of an unexpected type or shape.
var ErrMalformed = errors.New("malformed pgoutput message")

// ErrOutOfSequence is wrapped by the errors of messages that are well formed
// but impossible where they are: a Begin inside a transaction, a Commit or a
// change outside one, a Commit for another transaction.
var ErrOutOfSequence = errors.New("pgoutput message out of sequence")

// reader reads the big-endian fields of one message. Reading past the end
// makes it bad and returns zero values; done reports that once, so parsers
// read a whole message and check once.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) need(n int) bool {
	if r.bad || n < 0 || len(r.b)-r.off < n {
		r.bad = true
		return false
	}
	return true
}

func (r *reader) u8() byte {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

// cstring reads a NUL-terminated string, without the NUL. The result aliases
// the message.
func (r *reader) cstring() []byte {
	if r.bad {
		return nil
	}
	i := bytes.IndexByte(r.b[r.off:], 0)
	if i < 0 {
		r.bad = true
		return nil
	}
	s := r.b[r.off : r.off+i]
	r.off += i + 1
	return s
}

func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

// done returns an error wrapping ErrMalformed when the message was
// truncated or has bytes left over.
func (r *reader) done() error {
	if r.bad {
		return fmt.Errorf("%w: truncated (%d bytes)", ErrMalformed, len(r.b))
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%w: %d trailing bytes after %d", ErrMalformed, len(r.b)-r.off, r.off)
	}
	return nil
}

// span locates one column value of a tuple within the message.
type span struct {
	off, n int
	kind   byte // 0: no such column; 'n' null; 'u' unchanged TOAST; 't' text; 'b' binary
}

// scanTuple reads the TupleData at r. With fields set (one per column of the
// relation), it records where each mapped column's value is in spans.
func scanTuple(r *reader, fields []field, spans *[numFields]span) {
	ncols := int(r.u16())
	if r.bad {
		return
	}
	if fields != nil && ncols != len(fields) {
		r.bad = true
		return
	}
	b, off := r.b, r.off
	for i := range ncols {
		if off >= len(b) {
			r.bad = true
			return
		}
		kind := b[off]
		off++
		var sp span
		switch kind {
		case 'n', 'u':
			sp = span{kind: kind}
		case 't', 'b':
			if len(b)-off < 4 {
				r.bad = true
				return
			}
			n := binary.BigEndian.Uint32(b[off:])
			off += 4
			if uint64(len(b)-off) < uint64(n) {
				r.bad = true
				return
			}
			sp = span{off: off, n: int(n), kind: kind}
			off += int(n)
		default:
			r.bad = true
			return
		}
		if fields != nil {
			if f := fields[i]; f != fieldNone {
				spans[f] = sp
			}
		}
	}
	r.off = off
}

// skipTuple reads over a TupleData that does not matter.
func skipTuple(r *reader) { scanTuple(r, nil, nil) }
