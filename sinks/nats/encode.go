package nats

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
)

// Headers of every message: Nats-Msg-Id and Nats-Expected-Stream for
// JetStream, and the event headers of the Kafka sink (SPEC §5, package
// envelope). CorrelationID and CausationID are present only when the event
// has them.
const (
	HeaderMsgID          = jetstream.MsgIDHeader          // "Nats-Msg-Id": cdc.Event.ID
	HeaderExpectedStream = jetstream.ExpectedStreamHeader // "Nats-Expected-Stream": Config.Stream
	HeaderEventID        = envelope.HeaderEventID
	HeaderEventType      = envelope.HeaderEventType
	HeaderStreamID       = envelope.HeaderStreamID
	HeaderTenantID       = envelope.HeaderTenantID
	HeaderSeqID          = envelope.HeaderSeqID
	HeaderLSN            = envelope.HeaderLSN
	HeaderCorrelationID  = envelope.HeaderCorrelationID
	HeaderCausationID    = envelope.HeaderCausationID
)

// message is the NATS message of one event of a batch, but for its
// headers: natsMsg makes the message to publish, so that only the
// messages in flight hold a header map.
type message struct {
	event   int    // index of the event in the batch
	subject string //
	data    []byte // the payload
	next    int    // index in the message list of the next message of the event's stream; -1 for none
}

// encode makes the messages of the events not yet acknowledged (not in
// skip), in batch order, stopping at the first event it rejects (a subject
// that does not render or is not a valid subject). Each message's next
// links the messages of one event stream.
func (s *Sink) encode(events []*cdc.Event, skip map[string]struct{}) ([]message, *cdc.RejectedError) {
	msgs := make([]message, 0, len(events))
	last := map[string]int{} // stream id -> index in msgs of its latest message
	var arena []byte
	if s.cfg.Value == ValueEnvelope {
		n := 0
		for _, e := range events {
			n += e.Size()
		}
		arena = make([]byte, 0, n)
	}
	for i, e := range events {
		if _, ok := skip[e.ID]; ok {
			continue
		}
		subj, err := s.cfg.Subject.Render(e)
		if err == nil {
			err = s.checkRendered(subj)
		}
		if err != nil {
			return msgs, &cdc.RejectedError{Index: i, Err: fmt.Errorf("nats subject of event %s: %w", e.ID, err)}
		}
		var data []byte
		switch {
		case s.cfg.Value == ValueData && len(e.Data) > 0:
			data = e.Data
		case s.cfg.Value == ValueData:
			data = []byte("null")
		default:
			lo := len(arena)
			arena = envelope.Append(arena, e)
			data = arena[lo:len(arena):len(arena)]
		}
		if j, ok := last[e.StreamID]; ok {
			msgs[j].next = len(msgs)
		}
		last[e.StreamID] = len(msgs)
		msgs = append(msgs, message{event: i, next: -1, subject: subj, data: data})
	}
	return msgs, nil
}

// natsMsg returns the message of m, the message of event e, with its
// headers.
func (s *Sink) natsMsg(m *message, e *cdc.Event) *nats.Msg {
	h := make(nats.Header, 10)
	h[HeaderMsgID] = []string{e.ID}
	h[HeaderExpectedStream] = []string{s.cfg.Stream}
	h[HeaderEventID] = []string{e.ID}
	h[HeaderEventType] = []string{e.Type}
	h[HeaderStreamID] = []string{e.StreamID}
	h[HeaderTenantID] = []string{e.TenantID}
	h[HeaderSeqID] = []string{strconv.FormatInt(e.SeqID, 10)}
	h[HeaderLSN] = []string{e.LSN.String()}
	if e.CorrelationID != "" {
		h[HeaderCorrelationID] = []string{e.CorrelationID}
	}
	if e.CausationID != "" {
		h[HeaderCausationID] = []string{e.CausationID}
	}
	return &nats.Msg{Subject: m.subject, Header: h, Data: m.data}
}

// checkRendered checks a rendered subject: a valid subject to publish to,
// and not one of the reserved subjects ($JS.API..., _INBOX...) unless the
// template itself starts there, so that no event field can steer a message
// to the JetStream API.
func (s *Sink) checkRendered(subj string) error {
	if err := CheckSubject(subj, false); err != nil {
		return err
	}
	first, _, _ := strings.Cut(subj, ".")
	if (strings.HasPrefix(first, "$") || first == "_INBOX") && !strings.HasPrefix(s.cfg.Subject.Prefix(), first+".") && s.cfg.Subject.Prefix() != subj {
		return fmt.Errorf("subject %q is reserved (it starts with %s)", subj, first)
	}
	return nil
}

// CheckSubject checks a subject: tokens separated by dots, none empty,
// no blanks; the wildcard tokens * and > only when wild (a stream's
// subjects), > only last.
func CheckSubject(subj string, wild bool) error {
	if subj == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(subj, " \t\r\n\x00") {
		return fmt.Errorf("subject %q holds blanks", subj)
	}
	tokens := strings.Split(subj, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Errorf("subject %q has an empty token (a leading, trailing or doubled dot)", subj)
		case (t == "*" || t == ">") && !wild:
			return fmt.Errorf("subject %q has the wildcard token %s: messages are published to literal subjects", subj, t)
		case t == ">" && i != len(tokens)-1:
			return fmt.Errorf("subject %q has > before its last token", subj)
		}
	}
	return nil
}
