package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
)

// Prepare connects and makes sure the stream exists, creating it when
// CreateStream is set. A missing stream (without CreateStream), an account
// without JetStream or stream settings the server refuses are
// cdc.ErrMisconfigured; an unreachable server is a plain error. It logs a
// warning when the stream's duplicate window is shorter than
// Config.MinDuplicateWindow.
func (s *Sink) Prepare(ctx context.Context) error {
	_, js, err := s.conn()
	if err != nil {
		return err
	}
	info, err := s.ensureStream(ctx, js)
	if err != nil {
		return err
	}
	if w := info.Config.Duplicates; w < s.cfg.MinDuplicateWindow() {
		s.log.Warn("the stream's duplicate window is shorter than the sink can take to publish a message again: a message stored but not acknowledged may be stored twice",
			"stream", s.cfg.Stream, "duplicate_window", w, "min", s.cfg.MinDuplicateWindow())
	}
	return nil
}

// ensureStream returns the stream's info, creating the stream when it is
// missing and CreateStream is set; see Prepare for the errors.
func (s *Sink) ensureStream(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AckTimeout)
	defer cancel()
	st, err := js.Stream(ctx, s.cfg.Stream)
	switch {
	case err == nil:
		s.markEnsured(js)
		return st.CachedInfo(), nil
	case errors.Is(err, jetstream.ErrStreamNotFound) && s.cfg.CreateStream:
		return s.createStream(ctx, js)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, cdc.Misconfigured(fmt.Sprintf("nats stream %s does not exist: create it or set create_stream: true", s.cfg.Stream))
	case notEnabled(err):
		return nil, cdc.Misconfigured(fmt.Sprintf("JetStream is not enabled for this account on nats (%s)", s.servers))
	}
	return nil, fmt.Errorf("look up nats stream %s: %w", s.cfg.Stream, err)
}

// createStream creates the stream with the configured settings. A stream
// created meanwhile by someone else is used as it is.
func (s *Sink) createStream(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, error) {
	sc := jetstream.StreamConfig{
		Name:       s.cfg.Stream,
		Subjects:   s.cfg.StreamSubjects,
		Retention:  s.cfg.Retention.policy(),
		MaxAge:     s.cfg.MaxAge,
		Replicas:   max(s.cfg.Replicas, 1),
		Storage:    s.cfg.Storage.storage(),
		Duplicates: s.cfg.DuplicateWindow,
	}
	st, err := js.CreateStream(ctx, sc)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		if st, err = js.Stream(ctx, s.cfg.Stream); err == nil {
			s.markEnsured(js)
			return st.CachedInfo(), nil
		}
	}
	if err != nil {
		if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok && apiErr.Code == 400 {
			return nil, cdc.Misconfigured(fmt.Sprintf("create nats stream %s (subjects %v): %v", s.cfg.Stream, s.cfg.StreamSubjects, err))
		}
		if notEnabled(err) {
			return nil, cdc.Misconfigured(fmt.Sprintf("JetStream is not enabled for this account on nats (%s)", s.servers))
		}
		return nil, fmt.Errorf("create nats stream %s: %w", s.cfg.Stream, err)
	}
	info := st.CachedInfo()
	s.log.Info("nats stream created", "stream", s.cfg.Stream, "subjects", s.cfg.StreamSubjects,
		"duplicate_window", info.Config.Duplicates)
	s.markEnsured(js)
	return info, nil
}

// markEnsured records that the stream exists, for the connection js
// belongs to.
func (s *Sink) markEnsured(js jetstream.JetStream) {
	s.mu.Lock()
	if s.js == js {
		s.ensured = true
	}
	s.mu.Unlock()
}

// notEnabled reports whether err says the account has no JetStream: the
// API says so, or nothing answers it (every server of a cluster answers
// the API, with an error while it is not ready).
func notEnabled(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders)
}

// Inspect says, for cdc validate, what is wrong with the sink's target
// (problems: the servers cannot be reached, JetStream is off, the stream
// is missing without create_stream, or does not take the subject) and what
// may go wrong (warnings: a duplicate window shorter than
// Config.MinDuplicateWindow). It creates nothing.
func (s *Sink) Inspect(ctx context.Context) (problems, warnings []string) {
	_, js, err := s.conn()
	if err != nil {
		return []string{err.Error()}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AckTimeout)
	defer cancel()
	// A user allowed only its own stream may not read the account: only
	// "not enabled" is a problem here; the stream's lookup says the rest.
	if _, err := js.AccountInfo(ctx); notEnabled(err) {
		return []string{fmt.Sprintf("JetStream is not enabled for this account on nats (%s)", s.servers)}, nil
	}
	window, what := s.cfg.createdWindow(), "the duplicate_window of the stream cdc creates"
	st, err := js.Stream(ctx, s.cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && s.cfg.CreateStream:
		// cdc run creates it.
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return []string{fmt.Sprintf("nats stream %s does not exist: create it or set create_stream: true", s.cfg.Stream)}, nil
	case err != nil:
		return []string{fmt.Sprintf("look up nats stream %s: %v", s.cfg.Stream, err)}, nil
	default:
		window, what = st.CachedInfo().Config.Duplicates, "the duplicate window of stream "+s.cfg.Stream
		if subj, ok := s.cfg.Subject.Constant(); ok {
			name, err := js.StreamNameBySubject(ctx, subj)
			switch {
			case errors.Is(err, jetstream.ErrStreamNotFound):
				problems = append(problems, fmt.Sprintf("nats stream %s does not take subject %q (no stream does): add it to the stream's subjects", s.cfg.Stream, subj))
			case err != nil:
				problems = append(problems, fmt.Sprintf("look up the nats stream of subject %q: %v", subj, err))
			case name != s.cfg.Stream:
				problems = append(problems, fmt.Sprintf("subject %q belongs to nats stream %s, not %s", subj, name, s.cfg.Stream))
			}
		}
	}
	if min := s.cfg.MinDuplicateWindow(); window < min {
		warnings = append(warnings, fmt.Sprintf("%s (%s) is shorter than %s (2 × ack_timeout %s + %s of retry backoff): a message stored whose acknowledgement was lost can be stored again; make it at least %s, and longer than a restart takes",
			what, window, min, s.cfg.AckTimeout, RetryAllowance, min.Round(time.Second)))
	}
	return problems, warnings
}
