package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/kafka"
)

// KafkaOptions configures a "kafka" sink (SPEC §4). The choices (key,
// partitioner, value, compression, SASL mechanism) and their defaults are
// package sinks/kafka's own: they are spelled only there.
type KafkaOptions struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string
	// Topic is the topic template, e.g. "helpdesk.{{.Type}}". Required.
	Topic string
	// TopicTemplate is Topic parsed.
	TopicTemplate *route.Template
	// Key is what the message key is: kafka.Keys(), default stream_id
	// (keeps each stream in one partition and in order).
	Key kafka.Key
	// Partitioner places keys: kafka.Partitioners(), default murmur2 (as
	// Java clients do).
	Partitioner kafka.Partitioner
	// Value is kafka.Values(): envelope (default, the JSON envelope) or
	// data (the event's data as is).
	Value kafka.Value
	// Compression is kafka.Compressions(), default none.
	Compression kafka.Compression
	// CreateTopics creates missing topics (default false: a missing topic
	// is an error).
	CreateTopics bool
	// TopicPartitions and TopicReplicationFactor are used for the topics
	// cdc creates; 0 (default) leaves them to the broker's defaults.
	TopicPartitions        int
	TopicReplicationFactor int
	// MaxMessageBytes is the largest record batch sent to one partition;
	// 0 means the sink's default (1000000).
	MaxMessageBytes int
	// WriteTimeout bounds one produce round trip; 0 means the sink's
	// default (30s).
	WriteTimeout time.Duration
	// ClientID is the Kafka client id; "" means "cdc".
	ClientID string
	// TLS is set when the tls key is present.
	TLS *TLSOptions
	// SASL is set when the sasl key is present.
	SASL *SASLOptions
}

// Kind returns "kafka".
func (*KafkaOptions) Kind() string { return "kafka" }

// TLSOptions are the TLS settings of a sink that talks to a server over
// the network.
type TLSOptions struct {
	CAFile             string // PEM file of the CAs to trust; "" trusts the system's
	CertFile, KeyFile  string // client certificate and key, both or neither
	ServerName         string // overrides the name checked in the server's certificate
	InsecureSkipVerify bool   // for development only: accept any certificate
}

// SASLOptions are SASL credentials.
type SASLOptions struct {
	Mechanism string // one of kafka.Mechanisms()
	Username  string
	Password  string // usually ${VAR}; never printed
}

// kafkaKind decodes the keys of a kafka sink.
var kafkaKind = sinkKind{
	name: "kafka",
	keys: []string{"brokers", "topic", "key", "partitioner", "value", "compression", "create_topics",
		"topic_partitions", "topic_replication_factor", "max_message_bytes", "write_timeout",
		"client_id", "tls", "sasl"},
	decode: func(m *mapping) SinkOptions {
		o := &KafkaOptions{Key: kafka.Keys()[0], Partitioner: kafka.Partitioners()[0], Value: kafka.Values()[0], Compression: kafka.Compressions()[0]}
		o.Brokers = m.requiredStrs("brokers", hostPort, "broker")
		o.Topic, o.TopicTemplate, _ = m.template("topic", true)
		if v, ok := oneOf(m, "key", kafka.Keys()...); ok {
			o.Key = v
		}
		if v, ok := oneOf(m, "partitioner", kafka.Partitioners()...); ok {
			o.Partitioner = v
		}
		if v, ok := oneOf(m, "value", kafka.Values()...); ok {
			o.Value = v
		}
		if v, ok := oneOf(m, "compression", kafka.Compressions()...); ok {
			o.Compression = v
		}
		o.CreateTopics, _ = m.boolean("create_topics")
		o.TopicPartitions, _ = m.positiveInt("topic_partitions")
		o.TopicReplicationFactor, _ = m.positiveInt("topic_replication_factor")
		o.MaxMessageBytes, _ = m.size("max_message_bytes")
		o.WriteTimeout, _ = m.duration("write_timeout")
		o.ClientID, _ = m.str("client_id", false, nil)
		if _, ok := m.get("tls"); ok {
			o.TLS = decodeTLS(m.child("tls"))
		}
		if _, ok := m.get("sasl"); ok {
			o.SASL = decodeSASL(m.child("sasl"))
		}
		return o
	},
}

// decodeTLS reads a tls mapping; nil m (not a mapping, reported) gives an
// empty value.
func decodeTLS(m *mapping) *TLSOptions {
	o := &TLSOptions{}
	if m == nil {
		return o
	}
	m.only("ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify")
	o.CAFile, _ = m.str("ca_file", false, nil)
	o.CertFile, _ = m.str("cert_file", false, nil)
	o.KeyFile, _ = m.str("key_file", false, nil)
	o.ServerName, _ = m.str("server_name", false, nil)
	o.InsecureSkipVerify, _ = m.boolean("insecure_skip_verify")
	if (o.CertFile == "") != (o.KeyFile == "") {
		m.d.addf(m.line, m.path, "cert_file and key_file go together: set both or neither")
	}
	return o
}

// decodeSASL reads a sasl mapping.
func decodeSASL(m *mapping) *SASLOptions {
	o := &SASLOptions{}
	if m == nil {
		return o
	}
	m.only("mechanism", "username", "password")
	o.Mechanism, _ = oneOf(m, "mechanism", kafka.Mechanisms()...)
	if _, ok := m.get("mechanism"); !ok {
		m.required("mechanism")
	}
	o.Username, _ = m.str("username", true, nil)
	o.Password, _ = m.str("password", true, nil)
	return o
}

// hostPort checks a broker address.
func hostPort(s string) string {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "want host:port, got " + quote(s)
	}
	if p, err := strconv.Atoi(s[i+1:]); err != nil || p <= 0 || p > 65535 {
		return "want host:port with a port from 1 to 65535, got " + quote(s)
	}
	return ""
}

// requiredStrs returns the non-empty list of strings at key, each checked
// by check; an absent key, an empty list (naming what it lists) and bad
// items are reported, and give nil.
func (m *mapping) requiredStrs(key string, check func(string) string, what string) []string {
	v, ok := m.strs(key, check)
	switch {
	case ok && len(v) > 0:
		return v
	case !ok:
		if _, present := m.get(key); !present {
			m.required(key)
		}
	default:
		m.d.addf(m.valueLine(key), join(m.path, key), "must list at least one %s", what)
	}
	return nil
}

// boolean returns the boolean at key (true/false, YAML's spellings).
func (m *mapping) boolean(key string) (bool, bool) {
	return parsed(m, key, "a boolean", func(s string) (bool, string) {
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			return true, ""
		case "false", "no", "off":
			return false, ""
		}
		return false, "want true or false, got " + quote(s)
	})
}
