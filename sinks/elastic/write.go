package elastic

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/internal/retry"
)

// batch is the state of one Write.
type batch struct {
	events  []*cdc.Event
	indices []string // index of each event before cutoff
	ids     []string // document _id of each event before cutoff
	// cutoff is the index of the first event refused for good, or
	// len(events): events from cutoff on need not be written.
	cutoff   int
	rejected *cdc.RejectedError // the event at cutoff, if refused
}

// reject records that event i is refused for good, if it comes before
// the one refused so far.
func (b *batch) reject(i int, err error) {
	if i < b.cutoff {
		b.cutoff = i
		b.rejected = &cdc.RejectedError{Index: i, Err: err}
	}
}

// doc is one item of a bulk request: a document to index, with an external
// version.
type doc struct {
	index   string
	id      string
	version int64
	body    []byte
	// first is the batch index of the first event the document holds (in
	// ModeEvents, its only event): refused, it is the event rejected, and
	// until it is durable, no event after it may be called durable.
	first int
	// stream is the stream of a ModeLatest document.
	stream *stream

	// Result of the latest round, set by the bulk indexer's callbacks.
	state   state
	err     error
	request error // the error of its whole request, when refused with 413
}

// state is the result of a document's latest round.
type state uint8

const (
	statePending  state = iota // no result: not sent, or no answer for it
	stateDone                  // indexed, or 409: a version as new or newer is stored
	stateAgain                 // refused with 429: send again
	stateRejected              // refused for good (400)
	stateFailed                // any other failure; the batch is written again
)

// Write indexes the batch and returns nil once Elasticsearch acknowledged
// every document or answered 409 (a newer or equal version is stored). See
// the package documentation for the rounds, retries and rejections.
func (s *Sink) Write(ctx context.Context, b cdc.Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &batch{events: b.Events, cutoff: len(b.Events)}
	s.route(w)
	if s.settings != nil {
		if err := s.ensureIndices(ctx, w); err != nil {
			return err
		}
	}
	var docs []*doc
	if s.mode == ModeLatest {
		var err error
		if docs, err = s.planLatest(ctx, w); err != nil {
			return err
		}
	} else {
		docs = s.planEvents(w)
	}
	if err := s.send(ctx, w, docs); err != nil {
		return err
	}
	if w.rejected != nil {
		return w.rejected
	}
	return nil
}

// route renders the index and the document id of each event, up to the
// first event that cannot be written: a template failing, an invalid index
// name or id, a version Elasticsearch refuses, data that latest mode cannot
// merge.
func (s *Sink) route(w *batch) {
	w.indices = make([]string, 0, len(w.events))
	w.ids = make([]string, 0, len(w.events))
	_, constant := s.index.Constant()
	for i, e := range w.events {
		index, err := s.index.Render(e)
		if err != nil {
			w.reject(i, fmt.Errorf("elasticsearch index: %w", err))
			return
		}
		if !constant {
			if err := checkIndex(index); err != nil {
				w.reject(i, fmt.Errorf("event %s: %w", e.ID, err))
				return
			}
		}
		id, version := e.ID, e.SeqID
		if s.mode == ModeLatest {
			id, version = e.StreamID, e.Version
		}
		if s.tenantPrefix {
			id = e.TenantID + ":" + id
		}
		if err := checkID(id); err != nil {
			w.reject(i, fmt.Errorf("event %s: %w", e.ID, err))
			return
		}
		if version < 0 {
			w.reject(i, fmt.Errorf("event %s: negative version %d: Elasticsearch takes external versions from 0", e.ID, version))
			return
		}
		if s.mode == ModeLatest && !isObject(e.Data) {
			w.reject(i, fmt.Errorf("event %s: its data is not a JSON object: latest mode merges objects", e.ID))
			return
		}
		w.indices = append(w.indices, index)
		w.ids = append(w.ids, id)
	}
}

// ensureIndices creates the indices of the events before the cutoff that
// do not exist, in the order of their first events. An index whose name
// Elasticsearch refuses rejects its first event.
func (s *Sink) ensureIndices(ctx context.Context, w *batch) error {
	seen := map[string]bool{}
	for i := 0; i < w.cutoff; i++ {
		name := w.indices[i]
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := s.ensureIndex(ctx, name); err != nil {
			if errors.Is(err, errInvalidIndex) {
				w.reject(i, fmt.Errorf("event %s: %w", w.events[i].ID, err))
				return nil // the indices after it hold events after it
			}
			return err
		}
	}
	return nil
}

// planEvents makes the documents of ModeEvents: the envelope of each event
// before the cutoff.
func (s *Sink) planEvents(w *batch) []*doc {
	size := 0
	for _, e := range w.events[:w.cutoff] {
		size += e.Size()
	}
	buf := make([]byte, 0, size+size/4) // Size underestimates envelopes
	ends := make([]int, 0, w.cutoff)
	for i, e := range w.events[:w.cutoff] {
		start := len(buf)
		buf = envelope.Append(buf, e)
		if bytes.IndexByte(buf[start:], '\n') >= 0 {
			// A line feed (whitespace of a json column) would end the
			// bulk request's line.
			var c bytes.Buffer
			if err := json.Compact(&c, buf[start:]); err != nil {
				w.reject(i, fmt.Errorf("event %s: its data or headers are not valid JSON: %w", e.ID, err))
				break
			}
			buf = append(buf[:start], c.Bytes()...)
		}
		ends = append(ends, len(buf))
	}
	docs := make([]doc, len(ends))
	ptrs := make([]*doc, len(ends))
	start := 0
	for i, end := range ends {
		e := w.events[i]
		docs[i] = doc{index: w.indices[i], id: w.ids[i], version: e.SeqID, body: buf[start:end:end], first: i}
		ptrs[i] = &docs[i]
		start = end
	}
	return ptrs
}

// send indexes the documents in rounds: round 1 sends them all, each
// further round sends again those refused with a 429, after a backoff. It
// stops when every document that holds an event before the first one
// rejected is durable, and returns nil (the rejection is in w), or with a
// plain error when one failed otherwise or 429s outlast the rounds.
func (s *Sink) send(ctx context.Context, w *batch, docs []*doc) error {
	delay := retry.Backoff{Min: s.itemBackoff[0], Max: s.itemBackoff[1]}
	todo := docs
	for round := 1; len(todo) > 0; round++ {
		s.bulk(ctx, todo)
		var again, failed, refused []*doc
		for _, d := range todo {
			switch d.state {
			case stateDone:
			case stateRejected:
				refused = append(refused, d)
			case stateAgain:
				again = append(again, d)
			default:
				failed = append(failed, d)
			}
		}
		// A refused document rejects an event it holds, its first at the
		// earliest: a failure before that is reason enough to stop.
		cutoff := w.cutoff
		for _, d := range refused {
			cutoff = min(cutoff, d.first)
		}
		if err := s.failure(ctx, before(failed, cutoff), len(todo)); err != nil {
			return err
		}
		slices.SortFunc(refused, func(a, b *doc) int { return cmp.Compare(a.first, b.first) })
		for _, d := range refused {
			if d.first >= w.cutoff {
				break
			}
			if err := s.isolate(ctx, w, d); err != nil {
				return err
			}
		}
		// What holds only events after the rejected one need not succeed.
		if err := s.failure(ctx, before(failed, w.cutoff), len(todo)); err != nil {
			return err
		}
		again = before(again, w.cutoff)
		if len(again) == 0 {
			return nil
		}
		if round >= s.maxRounds {
			return fmt.Errorf("elasticsearch refused %d documents with 429 (too many requests) %d times: %w", len(again), round, again[0].err)
		}
		wait := delay.Next()
		s.log.Debug("elasticsearch refused documents with 429; sending them again",
			"documents", len(again), "round", round+1, "retry_in", wait)
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
		todo = again
	}
	return nil
}

// isolate rejects the event at fault in d, a document refused for good.
// A ModeLatest document merged from several events is written again with
// fewer of them (a binary search over prefixes, each written with a higher
// version than the one before it that was accepted) to find the first
// event whose data makes it refused; the events of the stream before that
// one are then durable.
func (s *Sink) isolate(ctx context.Context, w *batch, d *doc) error {
	st := d.stream
	if st == nil || len(st.applied) == 1 {
		w.reject(d.first, fmt.Errorf("elasticsearch refused document %s in index %s: %w", quote(d.id), quote(d.index), d.err))
		return nil
	}
	// Prefix lo is written (0: nothing), prefix hi is refused because why.
	lo, hi, why := 0, len(st.applied), d.err
	// Only the events before the cutoff need be written: try them first.
	k, _ := slices.BinarySearch(st.applied, w.cutoff)
	for first := true; hi-lo > 1; first = false {
		mid := (lo + hi) / 2
		if first && k < hi {
			mid = k
		}
		p, err := st.build(w.events, mid)
		if err != nil {
			return err
		}
		if err := s.sendOne(ctx, p); err != nil {
			return err
		}
		if p.state != stateDone {
			hi, why = mid, p.err
			continue
		}
		if lo = mid; mid == k {
			d.state = stateDone // the event at fault is after the cutoff
			return nil
		}
	}
	bad := w.events[st.applied[hi-1]]
	s.log.Debug("found the event elasticsearch refuses in a merged document",
		"index", d.index, "id", d.id, "event_id", bad.ID, "version", bad.Version)
	d.state = stateDone // up to the event at fault
	w.reject(st.applied[hi-1], fmt.Errorf("elasticsearch refused document %s in index %s with the data of event %s (version %d): %w",
		quote(d.id), quote(d.index), bad.ID, bad.Version, why))
	return nil
}

// sendOne writes d alone, in rounds while it is refused with 429. It
// returns an error unless d is written or refused for good.
func (s *Sink) sendOne(ctx context.Context, d *doc) error {
	delay := retry.Backoff{Min: s.itemBackoff[0], Max: s.itemBackoff[1]}
	for round := 1; ; round++ {
		s.bulk(ctx, []*doc{d})
		switch d.state {
		case stateDone, stateRejected:
			return nil
		case stateAgain:
			if round >= s.maxRounds {
				return fmt.Errorf("elasticsearch refused document %s in index %s with 429 (too many requests) %d times: %w", quote(d.id), quote(d.index), round, d.err)
			}
			if !retry.Sleep(ctx, delay.Next()) {
				return ctx.Err()
			}
		default:
			return s.failure(ctx, []*doc{d}, 1)
		}
	}
}

// before returns the documents that hold an event before cutoff.
func before(docs []*doc, cutoff int) []*doc {
	var out []*doc
	for _, d := range docs {
		if d.first < cutoff {
			out = append(out, d)
		}
	}
	return out
}

// failure describes the documents that failed, or the end of ctx; nil
// when there are none.
func (s *Sink) failure(ctx context.Context, failed []*doc, sent int) error {
	if len(failed) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d := failed[0]
	err := d.err
	if err == nil {
		err = errors.New("no result for it in the bulk response")
	}
	if len(failed) == 1 {
		return fmt.Errorf("index document %s in %s: %w", quote(d.id), quote(d.index), err)
	}
	return fmt.Errorf("%d of %d documents failed, e.g. %s in %s: %w", len(failed), sent, quote(d.id), quote(d.index), err)
}
