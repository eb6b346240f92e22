package kafka

import (
	"fmt"
	"slices"
	"strconv"

	kafka "github.com/segmentio/kafka-go"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
)

// Headers of every message (SPEC §5, package envelope). CorrelationID and
// CausationID are present only when the event has them.
const (
	HeaderEventID       = envelope.HeaderEventID
	HeaderEventType     = envelope.HeaderEventType
	HeaderStreamID      = envelope.HeaderStreamID
	HeaderTenantID      = envelope.HeaderTenantID
	HeaderSeqID         = envelope.HeaderSeqID
	HeaderLSN           = envelope.HeaderLSN
	HeaderCorrelationID = envelope.HeaderCorrelationID
	HeaderCausationID   = envelope.HeaderCausationID
)

// message is the record of one event.
type message struct {
	event     int // index of the event in the batch
	topic     int // index in writeState.topics
	partition int
	size      int // estimated size, as kafka-go counts it
	key       []byte
	value     []byte
	headers   []kafka.Header

	// Where key, value and headers are while the arena grows.
	keyAt, valueAt span
	hdrLo, hdrHi   int
	direct         bool // value is the event's data, not in the arena
}

// span is a range of writeState.arena.
type span struct{ lo, hi int }

// header is a header while the arena grows.
type header struct {
	key string
	val span
}

// topicState is a topic a batch's events are routed to.
type topicState struct {
	name       string
	first      int // index of the first event routed to it
	partitions int // partition count, once resolved
}

// writeState holds what a Write builds; its buffers are reused by the next.
type writeState struct {
	arena    []byte // keys, envelopes and header values of every message
	msgs     []message
	hdrs     []header
	headers  []kafka.Header
	topics   []topicState
	topicIdx map[string]int
}

// maxKeptArena is the largest arena kept for the next Write.
const maxKeptArena = 16 << 20

func (w *writeState) reset() {
	if cap(w.arena) > maxKeptArena {
		w.arena = nil
	}
	w.arena = w.arena[:0]
	clear(w.msgs) // drop references to event data and the old arena
	w.msgs = w.msgs[:0]
	w.hdrs = w.hdrs[:0]
	clear(w.headers)
	w.headers = w.headers[:0]
	w.topics = w.topics[:0]
	if w.topicIdx == nil {
		w.topicIdx = map[string]int{}
	}
	clear(w.topicIdx)
}

func (w *writeState) appendString(s string) span {
	lo := len(w.arena)
	w.arena = append(w.arena, s...)
	return span{lo, len(w.arena)}
}

func (w *writeState) header(key, val string) {
	w.hdrs = append(w.hdrs, header{key, w.appendString(val)})
}

// encode renders the topic and encodes the record of each event, stopping
// at the first event it rejects: one whose topic does not render or is not
// a valid topic name, or whose record is larger than max_message_bytes.
func (s *Sink) encode(w *writeState, events []*cdc.Event) *cdc.RejectedError {
	w.reset()
	var rejected *cdc.RejectedError
	for i, e := range events {
		name, err := s.topic.Render(e)
		if err != nil {
			rejected = &cdc.RejectedError{Index: i, Err: fmt.Errorf("kafka topic: %w", err)}
			break
		}
		ti, ok := w.topicIdx[name]
		if !ok {
			if err := checkTopic(name); err != nil {
				rejected = &cdc.RejectedError{Index: i, Err: fmt.Errorf("kafka topic of event %s: %w", e.ID, err)}
				break
			}
			ti = len(w.topics)
			w.topics = append(w.topics, topicState{name: name, first: i})
			w.topicIdx[name] = ti
		}
		m := message{event: i, topic: ti}
		m.keyAt = w.appendString(s.key.of(e))
		switch {
		case s.value == ValueData && len(e.Data) > 0:
			m.value, m.direct = e.Data, true
		case s.value == ValueData:
			m.value, m.direct = []byte("null"), true // never a null value: that is a tombstone
		default:
			lo := len(w.arena)
			w.arena = envelope.Append(w.arena, e)
			m.valueAt = span{lo, len(w.arena)}
		}
		m.hdrLo = len(w.hdrs)
		w.header(HeaderEventID, e.ID)
		w.header(HeaderEventType, e.Type)
		w.header(HeaderStreamID, e.StreamID)
		w.header(HeaderTenantID, e.TenantID)
		lo := len(w.arena)
		w.arena = strconv.AppendInt(w.arena, e.SeqID, 10)
		w.hdrs = append(w.hdrs, header{HeaderSeqID, span{lo, len(w.arena)}})
		lo = len(w.arena)
		w.arena = e.LSN.AppendText(w.arena)
		w.hdrs = append(w.hdrs, header{HeaderLSN, span{lo, len(w.arena)}})
		if e.CorrelationID != "" {
			w.header(HeaderCorrelationID, e.CorrelationID)
		}
		if e.CausationID != "" {
			w.header(HeaderCausationID, e.CausationID)
		}
		m.hdrHi = len(w.hdrs)
		m.size = w.size(&m)
		if m.size > s.maxBatch {
			rejected = &cdc.RejectedError{Index: i, Err: fmt.Errorf(
				"event %s: its record takes %d bytes, %d with the batch header, more than max_message_bytes (%d): %w",
				e.ID, m.size, m.size+batchOverhead, s.maxBatch+batchOverhead, kafka.MessageSizeTooLarge)}
			break
		}
		w.msgs = append(w.msgs, m)
	}
	w.finish()
	return rejected
}

// finish points the messages' slices into the final arena.
func (w *writeState) finish() {
	w.headers = slices.Grow(w.headers[:0], len(w.hdrs))[:len(w.hdrs)]
	for i, h := range w.hdrs {
		w.headers[i] = kafka.Header{Key: h.key, Value: w.arena[h.val.lo:h.val.hi:h.val.hi]}
	}
	for i := range w.msgs {
		m := &w.msgs[i]
		m.key = w.arena[m.keyAt.lo:m.keyAt.hi:m.keyAt.hi]
		if m.key == nil {
			m.key = []byte{} // a nil key would be placed at random
		}
		if !m.direct {
			m.value = w.arena[m.valueAt.lo:m.valueAt.hi:m.valueAt.hi]
		}
		m.headers = w.headers[m.hdrLo:m.hdrHi:m.hdrHi]
	}
}

// size is the size of m as kafka-go's Writer counts it against BatchBytes
// (Message.totalSize: 22 bytes, key, value, headers with varint lengths).
// It is larger than the record's encoding in a v2 record batch, which is
// what brokers compare with max.message.bytes, so a batch within the limit
// by this count is within it on the wire (before compression).
func (w *writeState) size(m *message) int {
	n := 22 + (m.keyAt.hi - m.keyAt.lo) + varintLen(m.hdrHi-m.hdrLo)
	if m.direct {
		n += len(m.value)
	} else {
		n += m.valueAt.hi - m.valueAt.lo
	}
	for _, h := range w.hdrs[m.hdrLo:m.hdrHi] {
		l := h.val.hi - h.val.lo
		n += varintLen(len(h.key)) + len(h.key) + varintLen(l) + l
	}
	return n
}

// varintLen is the length of n as a zig-zag varint.
func varintLen(n int) int {
	u := uint64(n) << 1
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}
