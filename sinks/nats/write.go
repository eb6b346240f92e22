package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
)

// maxAcked bounds the acknowledged event ids remembered between attempts
// (see Write); past it they are forgotten, and published again, harmlessly.
const maxAcked = 1 << 20

// noRetry turns off the client's own publishing again of a message nothing
// answered: it would publish it after the messages that followed it; the
// sink finds out why instead (see noStream).
var noRetry = jetstream.WithRetryAttempts(0)

// flight is a message published and not yet answered.
type flight struct {
	m   int // index in the message list
	fut jetstream.PubAckFuture
}

// Write publishes the batch and returns nil once the stream acknowledged
// every message. See the package documentation for the order of publishes
// and what each error means.
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
	if err := ctx.Err(); err != nil {
		return err
	}
	_, js, err := s.conn()
	if err != nil {
		return err
	}
	s.recreated = false
	if s.cfg.CreateStream && !s.isEnsured(js) {
		if _, err := s.ensureStream(ctx, js); err != nil {
			return err
		}
	}
	acked, rejected, err := s.write(ctx, js, b.Events)
	switch {
	case err == nil && rejected == nil:
		s.acked = nil
		return nil
	case ctx.Err() != nil:
		return err
	}
	// Remember what the stream acknowledged, so that the pipeline's next
	// attempt (the same batch, or the events after a rejected one) does
	// not publish it again: the duplicate window then only has to cover
	// a restart. A stream created again (it was deleted) holds none of it.
	if s.recreated {
		s.recreated = false
		s.acked = nil
		return err
	}
	if s.acked == nil || len(s.acked)+len(acked) > maxAcked {
		s.acked = make(map[string]struct{}, len(acked))
	}
	for _, i := range acked {
		s.acked[b.Events[i].ID] = struct{}{}
	}
	if err != nil {
		return err
	}
	return rejected
}

func (s *Sink) isEnsured(js jetstream.JetStream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.js == js && s.ensured
}

// write publishes the events and waits for their acknowledgements. It
// returns the indexes of the events acknowledged; the first event the
// stream refused for good, if any, once every event before it is
// acknowledged; or a plain error.
//
// A message is published only once the previous message of its event
// stream in the batch is acknowledged, and at most MaxInFlight messages
// wait for their acknowledgement at once. After a plain error nothing more
// is published; after a refusal, nothing after the refused event.
func (s *Sink) write(ctx context.Context, js jetstream.JetStream, events []*cdc.Event) (acked []int, rejected *cdc.RejectedError, err error) {
	msgs, rejected := s.encode(events, s.acked)
	cutoff := len(events)
	if rejected != nil {
		cutoff = rejected.Index
	}
	reject := func(m *message, why error) {
		if m.event < cutoff {
			cutoff = m.event
			rejected = &cdc.RejectedError{Index: m.event, Err: fmt.Errorf("nats refused event %s (subject %q): %w",
				events[m.event].ID, m.subject, why)}
		}
	}
	hasPrev := make([]bool, len(msgs))
	for _, m := range msgs {
		if m.next >= 0 {
			hasPrev[m.next] = true
		}
	}
	ready := make([]int, 0, len(msgs)) // messages whose stream's previous one is acknowledged
	for i := range msgs {
		if !hasPrev[i] {
			ready = append(ready, i)
		}
	}
	var inFlight []flight // in publish order
	acked = make([]int, 0, len(msgs))
	var failed error
	for {
		for failed == nil && len(ready) > 0 && len(inFlight) < s.cfg.MaxInFlight {
			i := ready[0]
			ready = ready[1:]
			m := &msgs[i]
			if m.event >= cutoff {
				continue
			}
			fut, err := js.PublishMsgAsync(s.natsMsg(m, events[m.event]), noRetry)
			switch {
			case err == nil:
				inFlight = append(inFlight, flight{i, fut})
			case errors.Is(err, nats.ErrMaxPayload):
				reject(m, fmt.Errorf("%w (the server's max_payload)", err))
			case errors.Is(err, nats.ErrBadSubject):
				reject(m, err)
			case errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionReconnecting):
				failed = fmt.Errorf("publish event %s: the connection to nats (%s) is down, the client is reconnecting: %w", events[m.event].ID, s.servers, err)
			default:
				failed = fmt.Errorf("publish event %s to nats subject %q: %w", events[m.event].ID, m.subject, err)
			}
		}
		if len(inFlight) == 0 {
			break
		}
		f := inFlight[0]
		inFlight = inFlight[1:]
		m := &msgs[f.m]
		select {
		case <-f.fut.Ok():
			acked = append(acked, m.event)
			if m.next >= 0 {
				ready = append(ready, m.next)
			}
		case err := <-f.fut.Err():
			why, refused := s.refusal(ctx, js, m.subject, err)
			switch {
			case refused:
				reject(m, why)
			case failed == nil:
				failed = fmt.Errorf("publish event %s to nats subject %q: %w", events[m.event].ID, m.subject, why)
			}
		case <-ctx.Done():
			return acked, nil, ctx.Err()
		}
	}
	if failed != nil {
		return acked, nil, failed
	}
	return acked, rejected, nil
}

// refusal says whether err, the answer to a publish to subject, is the
// stream refusing the message for good (too large, a subject no stream or
// another stream takes), and why.
func (s *Sink) refusal(ctx context.Context, js jetstream.JetStream, subject string, err error) (error, bool) {
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamMessageExceedsMaximum, // the stream's max_msg_size
			10097: // JSStreamHeaderExceedsMaximumErr: headers over 64 KiB
			return err, true
		case 10060: // JSStreamNotMatchErr: another stream takes the subject
			return fmt.Errorf("%w: the subject belongs to another stream than %s", err, s.cfg.Stream), true
		case 10077: // JSStreamStoreFailedF: refused by the store
			if strings.Contains(apiErr.Description, "too large") {
				return err, true
			}
		}
		return err, false
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		return s.noStream(ctx, js, subject, err)
	}
	return err, false
}

// noStream explains a publish to subject that nothing answered: a refusal
// when no stream takes the subject (once a stream to create is created,
// the publish is tried again), else a passing failure (a stream being
// restored or electing a leader).
func (s *Sink) noStream(ctx context.Context, js jetstream.JetStream, subject string, err error) (error, bool) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AckTimeout)
	defer cancel()
	if s.cfg.CreateStream {
		if _, err := js.Stream(ctx, s.cfg.Stream); errors.Is(err, jetstream.ErrStreamNotFound) {
			if _, err := s.createStream(ctx, js); err != nil {
				return err, false
			}
			s.recreated = true
			return errors.New("nats stream " + s.cfg.Stream + " was missing and is created again"), false
		}
	}
	name, lerr := js.StreamNameBySubject(ctx, subject)
	switch {
	case errors.Is(lerr, jetstream.ErrStreamNotFound):
		return fmt.Errorf("no nats stream takes the subject (stream %s does not): %w", s.cfg.Stream, err), true
	case lerr == nil && name != s.cfg.Stream:
		return fmt.Errorf("the subject belongs to nats stream %s, not %s: %w", name, s.cfg.Stream, err), true
	}
	return err, false
}
