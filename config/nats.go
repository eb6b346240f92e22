package config

import (
	"time"

	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/nats"
)

// NATSOptions configures a "nats" sink: NATS JetStream (SPEC §8). The
// choices (value, retention, storage) and the defaults are package
// sinks/nats's own.
type NATSOptions struct {
	// Servers are the servers, host:port or nats:// and tls:// URLs
	// without credentials. Required.
	Servers []string
	// Subject is the subject template, e.g.
	// "helpdesk.{{.TenantID}}.{{.Type}}". Required.
	Subject string
	// SubjectTemplate is Subject parsed.
	SubjectTemplate *route.Template
	// Stream is the JetStream stream that stores the messages. Required.
	Stream string
	// CreateStream creates the stream when it is missing (default false:
	// a missing stream is an error), with the Stream* settings and
	// DuplicateWindow, which are only allowed with it.
	CreateStream bool
	// StreamSubjects are the created stream's subjects; default: the
	// subject's literal prefix up to its last dot, then ">".
	StreamSubjects []string
	// StreamRetention is nats.Retentions(), default limits.
	StreamRetention nats.Retention
	// StreamMaxAge is the created stream's max age; 0: unlimited.
	StreamMaxAge time.Duration
	// StreamReplicas is the created stream's replica count; 0: 1.
	StreamReplicas int
	// StreamStorage is nats.Storages(), default file.
	StreamStorage nats.Storage
	// DuplicateWindow is the created stream's duplicate window; 0:
	// JetStream's default (2m).
	DuplicateWindow time.Duration
	// Value is nats.Values(): envelope (default) or data.
	Value nats.Value
	// MaxInFlight bounds the messages waiting for their acknowledgement;
	// 0 means the sink's default (512).
	MaxInFlight int
	// AckTimeout bounds the wait for one acknowledgement; 0 means the
	// sink's default (10s).
	AckTimeout time.Duration
	// ClientName is the connection name; "" means "cdc".
	ClientName string
	// User and Password, Token, NKeyFile and CredsFile authenticate; at
	// most one way. Password and Token are never printed.
	User, Password, Token, NKeyFile, CredsFile string
	// TLS is set when the tls key is present.
	TLS *TLSOptions
}

// Kind returns "nats".
func (*NATSOptions) Kind() string { return "nats" }

// natsStreamKeys are the keys that only apply to a stream cdc creates.
var natsStreamKeys = []string{"stream_subjects", "stream_retention", "stream_max_age", "stream_replicas", "stream_storage", "duplicate_window"}

// natsKind decodes the keys of a nats sink.
var natsKind = sinkKind{
	name: "nats",
	keys: append([]string{"servers", "subject", "stream", "create_stream", "value", "max_in_flight", "ack_timeout",
		"client_name", "user", "password", "token", "nkey_file", "creds_file", "tls"}, natsStreamKeys...),
	decode: func(m *mapping) SinkOptions {
		o := &NATSOptions{Value: nats.Values()[0], StreamRetention: nats.Retentions()[0], StreamStorage: nats.Storages()[0]}
		o.Servers = m.requiredStrs("servers", checkWith(nats.CheckServer), "server")
		o.Subject, o.SubjectTemplate, _ = m.template("subject", true)
		if o.SubjectTemplate != nil {
			if subj, ok := o.SubjectTemplate.Constant(); ok {
				if err := nats.CheckSubject(subj, false); err != nil {
					m.d.addf(m.valueLine("subject"), join(m.path, "subject"), "%s", err.Error())
				}
			}
		}
		o.Stream, _ = m.str("stream", true, checkWith(nats.CheckStreamName))
		o.CreateStream, _ = m.boolean("create_stream")
		o.StreamSubjects, _ = m.strs("stream_subjects", checkWith(func(s string) error { return nats.CheckSubject(s, true) }))
		if v, ok := oneOf(m, "stream_retention", nats.Retentions()...); ok {
			o.StreamRetention = v
		}
		o.StreamMaxAge, _ = m.duration("stream_max_age")
		o.StreamReplicas, _ = m.positiveInt("stream_replicas")
		if v, ok := oneOf(m, "stream_storage", nats.Storages()...); ok {
			o.StreamStorage = v
		}
		o.DuplicateWindow, _ = m.duration("duplicate_window")
		if !o.CreateStream {
			for _, k := range natsStreamKeys {
				if _, ok := m.get(k); ok {
					m.d.addf(m.valueLine(k), join(m.path, k), "%s only applies to a stream cdc creates: set create_stream: true, or change the existing stream with the nats CLI", k)
				}
			}
		}
		if o.StreamMaxAge > 0 && o.DuplicateWindow > o.StreamMaxAge {
			m.d.addf(m.valueLine("duplicate_window"), join(m.path, "duplicate_window"), "duplicate_window %s is longer than stream_max_age %s", o.DuplicateWindow, o.StreamMaxAge)
		}
		if v, ok := oneOf(m, "value", nats.Values()...); ok {
			o.Value = v
		}
		o.MaxInFlight, _ = m.positiveInt("max_in_flight")
		o.AckTimeout, _ = m.duration("ack_timeout")
		o.ClientName, _ = m.str("client_name", false, nil)
		o.User, _ = m.str("user", false, nil)
		o.Password, _ = m.str("password", false, nil)
		o.Token, _ = m.str("token", false, nil)
		o.NKeyFile, _ = m.str("nkey_file", false, nil)
		o.CredsFile, _ = m.str("creds_file", false, nil)
		if err := (nats.Auth{User: o.User, Password: o.Password, Token: o.Token, NKeyFile: o.NKeyFile, CredsFile: o.CredsFile}).Check(); err != nil {
			m.d.addf(m.line, m.path, "%s", err.Error())
		}
		if _, ok := m.get("tls"); ok {
			o.TLS = decodeTLS(m.child("tls"))
		}
		return o
	},
}

// checkWith turns a check returning an error into one returning its
// message.
func checkWith(check func(string) error) func(string) string {
	return func(s string) string {
		if err := check(s); err != nil {
			return err.Error()
		}
		return ""
	}
}
