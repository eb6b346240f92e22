package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/tlsfile"
)

// ErrUnknownTopic is wrapped by the errors about a topic that does not exist
// while create_topics is false.
var ErrUnknownTopic = cdc.Misconfigured("unknown kafka topic")

// maxTopicLen is the longest topic name Kafka accepts.
const maxTopicLen = 249

// checkTopic reports whether name is a legal Kafka topic name: 1 to 249
// ASCII letters, digits, '.', '_' and '-', and not "." or "..".
func checkTopic(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > maxTopicLen {
		return fmt.Errorf("%q is not a valid Kafka topic name (1 to %d characters, not \".\" or \"..\")", name, maxTopicLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q is not a valid Kafka topic name (only ASCII letters, digits, '.', '_' and '-')", name)
		}
	}
	return nil
}

// topicMeta is what the metadata says of one topic.
type topicMeta struct {
	partitions int
	err        error // kafka.UnknownTopicOrPartition when it does not exist
}

// metadata returns the metadata of the topics, from the transport's cache.
func (s *Sink) metadata(ctx context.Context, cl *kafka.Client, names []string) (map[string]topicMeta, error) {
	res, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, s.connError(err)
	}
	out := make(map[string]topicMeta, len(names))
	for _, t := range res.Topics {
		tm := topicMeta{partitions: len(t.Partitions), err: t.Error}
		if tm.err == nil && tm.partitions == 0 {
			tm.err = fmt.Errorf("no partitions in the metadata yet: %w", kafka.LeaderNotAvailable)
		}
		out[t.Name] = tm
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			out[name] = topicMeta{err: kafka.UnknownTopicOrPartition}
		}
	}
	return out, nil
}

// missing reports whether err says a topic does not exist.
func missing(err error) bool {
	return errors.Is(err, kafka.UnknownTopicOrPartition) || errors.Is(err, protocol.ErrNoTopic)
}

// resolve sets the partition count of each topic of w that an event before
// cutoff is routed to, creating missing topics when allowed. A topic the
// cluster calls invalid rejects its first event: resolve returns that
// rejection, the earliest. Any other problem is a plain error.
func (s *Sink) resolve(ctx context.Context, cl *kafka.Client, gen uint64, w *writeState, cutoff int) (*cdc.RejectedError, error) {
	var names []string
	for _, t := range w.topics {
		if t.first < cutoff {
			names = append(names, t.name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	meta, err := s.metadata(ctx, cl, names)
	if err != nil {
		return nil, err
	}
	var absent []string
	for _, name := range names {
		if missing(meta[name].err) {
			absent = append(absent, name)
		}
	}
	if len(absent) > 0 {
		if !s.create {
			// A topic created by someone else is seen at the next attempt.
			s.reset(gen)
			return nil, fmt.Errorf("%s and create_topics is false: create %s or set create_topics: true: %w",
				quoteTopics(absent, "does not exist", "do not exist"), pronoun(absent), ErrUnknownTopic)
		}
		errs, err := s.createTopics(ctx, cl, absent)
		if err != nil {
			return nil, err
		}
		// The transport refreshed its metadata for the topics it created,
		// not for those that existed already: read it again.
		s.reset(gen)
		cl, _ = s.client()
		created, err := s.metadata(ctx, cl, absent)
		if err != nil {
			return nil, err
		}
		for _, name := range absent {
			meta[name] = created[name]
			if e := errs[name]; e != nil {
				meta[name] = topicMeta{err: e}
			} else if missing(created[name].err) {
				meta[name] = topicMeta{err: fmt.Errorf("created but not in the metadata yet: %w", created[name].err)}
			}
		}
	}
	var rejected *cdc.RejectedError
	for i := range w.topics {
		t := &w.topics[i]
		if t.first >= cutoff {
			continue
		}
		tm := meta[t.name]
		switch {
		case tm.err == nil:
			t.partitions = tm.partitions
		case errors.Is(tm.err, kafka.InvalidTopic):
			if rejected == nil || t.first < rejected.Index {
				rejected = &cdc.RejectedError{Index: t.first, Err: fmt.Errorf("kafka topic %q: %w", t.name, tm.err)}
			}
		default:
			return nil, fmt.Errorf("kafka topic %q: %w", t.name, tm.err)
		}
	}
	return rejected, nil
}

// createTopics creates the topics. It returns the error of each topic the
// cluster refused as invalid; any other failure is the error.
func (s *Sink) createTopics(ctx context.Context, cl *kafka.Client, names []string) (map[string]error, error) {
	req := &kafka.CreateTopicsRequest{}
	for _, name := range names {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: name, NumPartitions: s.partitions, ReplicationFactor: s.replication})
	}
	res, err := cl.CreateTopics(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", quoteTopics(names, "", ""), s.connError(err))
	}
	invalid := map[string]error{}
	for _, name := range names {
		err, ok := res.Errors[name]
		switch {
		case !ok:
			return nil, fmt.Errorf("create kafka topic %q: no answer for it", name)
		case err == nil:
			s.log.Info("created kafka topic", "topic", name, "partitions", s.partitions, "replication_factor", s.replication)
		case errors.Is(err, kafka.TopicAlreadyExists):
			// Created meanwhile by someone else.
		case errors.Is(err, kafka.InvalidTopic):
			invalid[name] = err
		default:
			return nil, fmt.Errorf("create kafka topic %q (%s): %w", name, s.creation(), err)
		}
	}
	return invalid, nil
}

// creation describes the settings of created topics.
func (s *Sink) creation() string {
	n, r := "the broker's default", "the broker's default"
	if s.partitions > 0 {
		n = fmt.Sprint(s.partitions)
	}
	if s.replication > 0 {
		r = fmt.Sprint(s.replication)
	}
	return fmt.Sprintf("partitions: %s, replication factor: %s", n, r)
}

// Prepare makes sure a constant topic exists, creating it when
// create_topics is true. A missing topic that may not be created is an
// error wrapping ErrUnknownTopic. Failing to reach the brokers is an error
// that does not wrap it: Write will retry. With a templated topic, Prepare
// does nothing: topics are resolved as events are routed to them.
func (s *Sink) Prepare(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	name, ok := s.topic.Constant()
	if !ok {
		return nil
	}
	cl, gen := s.client()
	meta, err := s.metadata(ctx, cl, []string{name})
	if err != nil {
		s.reset(gen)
		return err
	}
	switch err := meta[name].err; {
	case err == nil:
		return nil
	case !missing(err):
		return fmt.Errorf("kafka topic %q: %w", name, err)
	case !s.create:
		return fmt.Errorf("kafka topic %q does not exist and create_topics is false: create it or set create_topics: true: %w", name, ErrUnknownTopic)
	}
	invalid, err := s.createTopics(ctx, cl, []string{name})
	s.reset(gen)
	if err != nil {
		return err
	}
	if err := invalid[name]; err != nil {
		return fmt.Errorf("create kafka topic %q: %w", name, err)
	}
	return nil
}

// Check reports, one line per problem, what would keep the sink from
// writing: brokers unreachable, TLS or SASL failing, a constant topic that
// does not exist while create_topics is false. It returns nil when all is
// well.
func (s *Sink) Check(ctx context.Context) []string {
	if s.closed.Load() {
		return []string{errClosed.Error()}
	}
	var names []string
	name, constant := s.topic.Constant()
	if constant {
		names = []string{name}
	}
	cl, gen := s.client()
	meta, err := s.metadata(ctx, cl, names)
	if err != nil {
		s.reset(gen)
		return []string{err.Error()}
	}
	if !constant {
		return nil
	}
	switch err := meta[name].err; {
	case err == nil:
	case !missing(err):
		return []string{fmt.Sprintf("kafka topic %q: %v", name, err)}
	case !s.create:
		return []string{fmt.Sprintf("kafka topic %q does not exist and create_topics is false: create it or set create_topics: true", name)}
	}
	return nil
}

// connError describes a failure to talk to the brokers: which brokers, and
// whether TLS or SASL failed. It names no password (none is in kafka-go's
// errors).
func (s *Sink) connError(err error) error {
	err = clientError(err)
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("kafka brokers %s: %w", s.brokers, err)
	case errors.Is(err, kafka.SASLAuthenticationFailed), errors.Is(err, kafka.UnsupportedSASLMechanism), errors.Is(err, kafka.IllegalSASLState):
		return fmt.Errorf("kafka brokers %s: %s failed: %w", s.brokers, s.saslDesc, err)
	case tlsfile.HandshakeFailed(err):
		return fmt.Errorf("kafka brokers %s: TLS handshake failed: %w", s.brokers, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		// Brokers close the connection of a plaintext client on a TLS
		// listener, and some (kfake) that of a client failing SASL.
		var hints []string
		if s.mechanism != nil {
			hints = append(hints, "did "+s.saslDesc+" fail?")
		}
		if s.tlsConfig == nil {
			hints = append(hints, "do the brokers expect TLS?")
		}
		if len(hints) > 0 {
			return fmt.Errorf("kafka brokers %s closed the connection (%s): %w", s.brokers, strings.Join(hints, " "), err)
		}
	}
	return fmt.Errorf("kafka brokers %s unreachable: %w", s.brokers, err)
}

// quoteTopics writes `kafka topic "a" <one>` or `kafka topics "a", "b" <many>`.
func quoteTopics(names []string, one, many string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	slices.Sort(q)
	if len(q) == 1 {
		return strings.TrimSpace("kafka topic " + q[0] + " " + one)
	}
	return strings.TrimSpace("kafka topics " + strings.Join(q, ", ") + " " + many)
}

func pronoun(names []string) string {
	if len(names) == 1 {
		return "it"
	}
	return "them"
}

// clientError drops kafka-go's "kafka.(*Client).Metadata: " prefixes from
// err's message, which name its internals, not the problem; errors.Is and
// errors.As still see the whole chain.
func clientError(err error) error {
	msg := err.Error()
	trimmed := msg
	for strings.HasPrefix(trimmed, "kafka.(*Client).") {
		_, rest, ok := strings.Cut(trimmed, ": ")
		if !ok {
			break
		}
		trimmed = rest
	}
	if trimmed == msg {
		return err
	}
	return &clientErr{msg: trimmed, err: err}
}

type clientErr struct {
	msg string
	err error
}

func (e *clientErr) Error() string { return e.msg }
func (e *clientErr) Unwrap() error { return e.err }
