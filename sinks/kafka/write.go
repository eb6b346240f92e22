package kafka

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	kafka "github.com/segmentio/kafka-go"

	"github.com/martencdc/cdc"
)

// maxInFlight is the most produce requests one Write has in flight. kafka-go
// sends one request at a time per connection, so this also bounds the
// connections it opens to a broker.
const maxInFlight = 32

// part is the messages of a batch bound for one partition of one topic, in
// batch order, cut into chunks: chunk k is sent in round k.
type part struct {
	topic     string
	partition int
	msgs      []*message
	ends      []int // ends[k] is the end of chunk k in msgs
}

// job is one produce request of a round: a chunk of a part.
type job struct {
	part *part
	msgs []*message
	res  *kafka.ProduceResponse
	err  error
}

// Write sends the batch and returns nil once Kafka acknowledged every
// message (acks=all). See the package documentation for the order of
// requests and what each error means.
func (s *Sink) Write(ctx context.Context, b cdc.Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	if s.closed.Load() {
		return errClosed
	}
	defer func() {
		if s.closed.Load() { // Close gave up waiting for this Write
			s.closeTransport()
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	rejected, err := s.write(ctx, b.Events)
	if err != nil {
		return err
	}
	if rejected != nil {
		return rejected
	}
	return nil
}

// write does Write's work. It returns the first event rejected, if any, once
// every event before it is acknowledged, or a plain error.
func (s *Sink) write(ctx context.Context, events []*cdc.Event) (_ *cdc.RejectedError, err error) {
	w := &s.w
	defer func() {
		if err != nil {
			// A produce call that failed, or returned because ctx ended,
			// may leave kafka-go still encoding a request from w's
			// buffers: they are abandoned, not reused.
			s.w = writeState{}
			return
		}
		w.reset() // drop references to the batch, keep the buffers
	}()
	rejected := s.encode(w, events)
	cutoff := len(events)
	if rejected != nil {
		cutoff = rejected.Index
	}
	if len(w.msgs) == 0 {
		return rejected, nil
	}
	cl, gen := s.client()
	rej, err := s.resolve(ctx, cl, gen, w, cutoff)
	if err != nil {
		s.failed(ctx, gen)
		return nil, err
	}
	if rej != nil {
		rejected, cutoff = rej, rej.Index
	}
	cl, gen = s.client() // resolve may have replaced it
	rej, err = s.send(ctx, cl, events, s.plan(w, cutoff), cutoff)
	if err != nil {
		s.failed(ctx, gen)
		return nil, err
	}
	if rej != nil {
		return rej, nil
	}
	return rejected, nil
}

// failed drops the transport after an error, unless ctx ended: whatever
// went wrong, the next attempt starts from fresh connections and metadata.
func (s *Sink) failed(ctx context.Context, gen uint64) {
	if ctx.Err() == nil {
		s.reset(gen)
	}
}

// plan assigns partitions to the messages of events before cutoff and cuts
// each partition's messages into chunks of at most s.maxBatch bytes.
func (s *Sink) plan(w *writeState, cutoff int) []*part {
	type key struct{ topic, partition int }
	byKey := map[key]*part{}
	var parts []*part
	lists := make([][]int, len(w.topics)) // each topic's partitions, made once per batch
	for i := range w.msgs {
		m := &w.msgs[i]
		if m.event >= cutoff {
			break
		}
		t := &w.topics[m.topic]
		if lists[m.topic] == nil {
			lists[m.topic] = partitionList(t.partitions)
		}
		m.partition = s.balancer.Balance(kafka.Message{Key: m.key}, lists[m.topic]...)
		k := key{m.topic, m.partition}
		p := byKey[k]
		if p == nil {
			p = &part{topic: t.name, partition: m.partition}
			byKey[k] = p
			parts = append(parts, p)
		}
		p.msgs = append(p.msgs, m)
	}
	for _, p := range parts {
		n := 0
		for j, m := range p.msgs {
			if n > 0 && n+m.size > s.maxBatch {
				p.ends = append(p.ends, j)
				n = 0
			}
			n += m.size
		}
		p.ends = append(p.ends, len(p.msgs))
	}
	return parts
}

// partitionList returns [0, n).
func partitionList(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// send sends the parts' chunks round by round. It returns the earliest
// event refused for good, once every event before it is acknowledged, or a
// plain error at the first round in which a request failed otherwise.
func (s *Sink) send(ctx context.Context, cl *kafka.Client, events []*cdc.Event, parts []*part, cutoff int) (*cdc.RejectedError, error) {
	var rejected *cdc.RejectedError
	var jobs []*job
	for round := 0; ; round++ {
		jobs = jobs[:0]
		for _, p := range parts {
			if round >= len(p.ends) {
				continue
			}
			lo := 0
			if round > 0 {
				lo = p.ends[round-1]
			}
			if ms := before(p.msgs[lo:p.ends[round]], cutoff); len(ms) > 0 {
				jobs = append(jobs, &job{part: p, msgs: ms})
			}
		}
		if len(jobs) == 0 {
			return rejected, nil
		}
		s.produceAll(ctx, cl, jobs)
		var refused []*job
		var failed []*job
		for _, j := range jobs {
			switch {
			case j.err == nil:
			case refusal(j.err):
				refused = append(refused, j)
			default:
				failed = append(failed, j)
			}
		}
		if len(failed) > 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if len(failed) == 1 {
				return nil, failed[0].err
			}
			return nil, fmt.Errorf("%d of %d produce requests failed, e.g. %w", len(failed), len(jobs), failed[0].err)
		}
		slices.SortFunc(refused, func(a, b *job) int { return cmp.Compare(a.msgs[0].event, b.msgs[0].event) })
		for _, j := range refused {
			ms := before(j.msgs, cutoff)
			if len(ms) == 0 {
				continue
			}
			s.log.Debug("kafka refused a batch; sending it in parts to find the record at fault",
				"topic", j.part.topic, "partition", j.part.partition, "records", len(ms), "err", j.err)
			bad, err := s.isolate(ctx, cl, j.part, ms, j.res, j.err)
			if err != nil {
				return nil, err
			}
			if bad != nil && bad.msg.event < cutoff {
				cutoff = bad.msg.event
				rejected = &cdc.RejectedError{Index: bad.msg.event, Err: fmt.Errorf("kafka refused event %s (topic %q, partition %d): %w",
					events[bad.msg.event].ID, j.part.topic, j.part.partition, bad.why)}
			}
		}
	}
}

// before returns the leading messages of ms whose event is before cutoff.
func before(ms []*message, cutoff int) []*message {
	i, _ := slices.BinarySearchFunc(ms, cutoff, func(m *message, c int) int { return cmp.Compare(m.event, c) })
	return ms[:i]
}

// produceAll sends the jobs, up to maxInFlight at once, and waits for all.
func (s *Sink) produceAll(ctx context.Context, cl *kafka.Client, jobs []*job) {
	if len(jobs) == 1 {
		j := jobs[0]
		j.res, j.err = s.produce(ctx, cl, j.part, j.msgs)
		return
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			j.res, j.err = s.produce(ctx, cl, j.part, j.msgs)
		})
	}
	wg.Wait()
}

// culprit is a record the broker refused for good, and why.
type culprit struct {
	msg *message
	why error
}

// isolate finds the record at fault in ms, messages of one partition that
// the broker refused together with the response res and error err. It
// sends ms in pieces, in order, splitting each refused piece, until a piece
// of one record is refused: it returns that record and why. It returns no
// culprit when every piece was acknowledged (the batch was refused for its
// total size), and an error when a request failed otherwise; it sends
// nothing after a refused record.
func (s *Sink) isolate(ctx context.Context, cl *kafka.Client, p *part, ms []*message, res *kafka.ProduceResponse, err error) (*culprit, error) {
	if len(ms) == 1 {
		return &culprit{ms[0], err}, nil
	}
	// A broker that names the refused records (Produce v8+) is believed:
	// the records before the first it names are sent, and that one is it.
	if i, ok := firstRecordError(res, len(ms)); ok {
		if i > 0 {
			if bad, err := s.sendPiece(ctx, cl, p, ms[:i]); bad != nil || err != nil {
				return bad, err
			}
		}
		if why := res.RecordErrors[i]; why != nil && why.Error() != "" {
			return &culprit{ms[i], fmt.Errorf("%w: %v", err, why)}, nil
		}
		return &culprit{ms[i], err}, nil
	}
	mid := len(ms) / 2
	if bad, err := s.sendPiece(ctx, cl, p, ms[:mid]); bad != nil || err != nil {
		return bad, err
	}
	return s.sendPiece(ctx, cl, p, ms[mid:])
}

// sendPiece sends ms and isolates the record at fault if it is refused.
func (s *Sink) sendPiece(ctx context.Context, cl *kafka.Client, p *part, ms []*message) (*culprit, error) {
	res, err := s.produce(ctx, cl, p, ms)
	switch {
	case err == nil:
		return nil, nil
	case refusal(err):
		return s.isolate(ctx, cl, p, ms, res, err)
	}
	return nil, err
}

// firstRecordError returns the lowest batch index, below n, of the records
// the response says were refused.
func firstRecordError(res *kafka.ProduceResponse, n int) (int, bool) {
	if res == nil || len(res.RecordErrors) == 0 {
		return 0, false
	}
	first := -1
	for i := range res.RecordErrors {
		if i >= 0 && i < n && (first < 0 || i < first) {
			first = i
		}
	}
	return first, first >= 0
}

// produce sends ms in one request to their partition's leader.
func (s *Sink) produce(ctx context.Context, cl *kafka.Client, p *part, ms []*message) (*kafka.ProduceResponse, error) {
	res, err := cl.Produce(ctx, &kafka.ProduceRequest{
		Topic:        p.topic,
		Partition:    p.partition,
		RequiredAcks: kafka.RequireAll,
		Compression:  s.codec,
		Records:      &records{msgs: ms},
	})
	if err == nil && res != nil {
		err = res.Error
	}
	if err != nil {
		return res, fmt.Errorf("produce %d records to kafka topic %q, partition %d: %w", len(ms), p.topic, p.partition, clientError(err))
	}
	return res, nil
}

// refusal reports whether err is a broker's refusal of records for what
// they are (too large, invalid), which sending them again cannot change.
func refusal(err error) bool {
	var code kafka.Error
	if !errors.As(err, &code) {
		return false
	}
	switch code {
	case kafka.MessageSizeTooLarge, // a record, or the batch, over max.message.bytes
		kafka.RecordListTooLarge, // the batch over segment.bytes
		kafka.InvalidRecord,      // e.g. no key on a compacted topic
		kafka.InvalidTimestamp,   // outside message.timestamp.*.max.ms
		kafka.InvalidTopic:
		return true
	}
	return false
}

// records reads messages as kafka-go records, reusing one record value.
type records struct {
	msgs       []*message
	i          int
	rec        kafka.Record
	key, value bytesReader
}

// ReadRecord implements kafka.RecordReader.
func (r *records) ReadRecord() (*kafka.Record, error) {
	if r.i >= len(r.msgs) {
		return nil, io.EOF
	}
	m := r.msgs[r.i]
	r.i++
	r.key.Reset(m.key)
	r.value.Reset(m.value)
	r.rec = kafka.Record{Key: &r.key, Value: &r.value, Headers: m.headers}
	return &r.rec, nil
}

type bytesReader struct{ bytes.Reader }

func (*bytesReader) Close() error { return nil }
