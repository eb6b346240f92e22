package deadletter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/martencdc/cdc"
)

// Writer is what Retry re-sends events through: the write path of the sink
// that rejected them (see assemble.Assembler.OpenSink). Its Write has the
// contract of cdc.Sink.Write: nil when every event is durable, a
// *cdc.RejectedError when the target refused one for good.
type Writer interface {
	Write(ctx context.Context, b cdc.Batch) error
}

// RetryResult says what Retry did with each dead letter it was given.
type RetryResult struct {
	Delivered []Letter   // accepted by the sink and removed, by position
	Rejected  []Rejected // refused again (or not sent: binary bodies) and kept
}

// Rejected is a dead letter the sink refused again.
type Rejected struct {
	Letter Letter
	Err    error // why: the new error, stored in the row
}

// DefaultRetryBatch is the number of events Retry sends per Write when
// asked for none.
const DefaultRetryBatch = 500

// Retry re-sends the events of letters through w, in position order, at
// most batch per Write (DefaultRetryBatch when batch <= 0), and removes
// each row only once w has accepted its event (Write returned nil, or
// rejected a later event of the batch). A row whose event w rejects again
// (*cdc.RejectedError) is kept with the new error, and Retry goes on with
// the events after it. Any other failure of Write stops Retry, which
// returns what it did so far and the error: the rows not yet accepted are
// kept. A row whose event was rejected for its binary body
// (Letter.Binary) is not sent (its envelope holds no body) and counts as
// rejected again with its error unchanged.
//
// A row is removed after its event is durable, so a failure in between (a
// removal that fails, a crash) leaves the row to be re-sent by a later
// retry: retries are at least once. Each re-sent or rejected row is logged
// on log (nil: not logged).
func (s *Store) Retry(ctx context.Context, w Writer, letters []Letter, batch int, log *slog.Logger) (RetryResult, error) {
	var res RetryResult
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if batch <= 0 {
		batch = DefaultRetryBatch
	}
	letters = slices.Clone(letters)
	slices.SortStableFunc(letters, func(a, b Letter) int {
		return cmp.Or(a.Position.Compare(b.Position), cmp.Compare(a.ID, b.ID))
	})
	var send []Letter
	var events []*cdc.Event
	for _, l := range letters {
		if l.Binary() {
			res.Rejected = append(res.Rejected, Rejected{Letter: l, Err: cdc.ErrBinaryBody})
			log.Warn("dead letter not re-sent: its body is binary and the dead letter holds none; discard it",
				"id", l.ID, "event_id", l.EventID, "type", l.Type, "position", l.Position.String())
			continue
		}
		e, err := l.Event()
		if err != nil {
			return res, fmt.Errorf("retry dead letters: %w", err)
		}
		send, events = append(send, l), append(events, e)
	}
	for len(send) > 0 {
		n := min(batch, len(send))
		if err := s.retryBatch(ctx, w, send[:n], events[:n], &res, log); err != nil {
			return res, err
		}
		send, events = send[n:], events[n:]
	}
	return res, nil
}

// retryBatch sends one batch, going on after each event rejected again.
func (s *Store) retryBatch(ctx context.Context, w Writer, letters []Letter, events []*cdc.Event, res *RetryResult, log *slog.Logger) error {
	for len(letters) > 0 {
		err := w.Write(ctx, cdc.Batch{Events: events})
		if err == nil {
			return s.removeSent(ctx, letters, res, log)
		}
		var rej *cdc.RejectedError
		if !errors.As(err, &rej) || rej.Index < 0 || rej.Index >= len(letters) {
			return fmt.Errorf("re-send %d dead letters to sink %s: %w", len(letters), letters[0].Sink, err)
		}
		if err := s.removeSent(ctx, letters[:rej.Index], res, log); err != nil {
			return err
		}
		bad := letters[rej.Index]
		if err := s.UpdateError(ctx, bad.ID, rej.Err.Error()); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		bad.Error = rej.Err.Error()
		res.Rejected = append(res.Rejected, Rejected{Letter: bad, Err: rej.Err})
		log.Warn("dead letter rejected again; kept with the new error",
			"id", bad.ID, "event_id", bad.EventID, "type", bad.Type, "position", bad.Position.String(), "err", rej.Err)
		letters, events = letters[rej.Index+1:], events[rej.Index+1:]
	}
	return nil
}

// removeSent removes the rows of letters, whose events the sink accepted.
func (s *Store) removeSent(ctx context.Context, letters []Letter, res *RetryResult, log *slog.Logger) error {
	if len(letters) == 0 {
		return nil
	}
	ids := make([]int64, len(letters))
	for i, l := range letters {
		ids[i] = l.ID
	}
	if _, err := s.Delete(ctx, Filter{Pipeline: letters[0].Pipeline, Sink: letters[0].Sink, IDs: ids}); err != nil {
		return fmt.Errorf("the sink accepted %d re-sent events, but their dead letters stay (a later retry sends them again): %w", len(letters), err)
	}
	for _, l := range letters {
		log.Info("dead letter re-sent and removed", "id", l.ID, "event_id", l.EventID, "type", l.Type, "position", l.Position.String())
	}
	res.Delivered = append(res.Delivered, letters...)
	return nil
}
