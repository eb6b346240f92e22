package kafka

import (
	"fmt"
	"slices"
	"strings"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/martencdc/cdc"
)

// Key says which event field is the message key. Messages with the same key
// go to the same partition, in order.
type Key string

// Keys.
const (
	// KeyStreamID keys messages by stream id: the events of one stream stay
	// in order in one partition. The default.
	KeyStreamID Key = "stream_id"
	// KeyID keys messages by event id: spread evenly, with no order between
	// the events of a stream.
	KeyID Key = "id"
	// KeyTenantID keys messages by tenant: the events of one tenant stay in
	// order in one partition.
	KeyTenantID Key = "tenant_id"
)

// Keys returns every Key, the default (KeyStreamID) first: the spellings the
// configuration accepts.
func Keys() []Key { return []Key{KeyStreamID, KeyID, KeyTenantID} }

// of returns the key of e.
func (k Key) of(e *cdc.Event) string {
	switch k {
	case KeyID:
		return e.ID
	case KeyTenantID:
		return e.TenantID
	}
	return e.StreamID
}

// Partitioner says how a key picks a partition.
type Partitioner string

// Partitioners.
const (
	// Murmur2 places a key where the Java client's default partitioner does
	// (murmur2 of the key, positive, modulo the partition count), so cdc and
	// Java producers of the same key agree. The default.
	Murmur2 Partitioner = "murmur2"
	// FNV1a places a key by 32-bit FNV-1a as Sarama's and kafka-go's hash
	// partitioners do.
	FNV1a Partitioner = "fnv1a"
)

// Partitioners returns every Partitioner, the default (Murmur2) first.
func Partitioners() []Partitioner { return []Partitioner{Murmur2, FNV1a} }

// balancer returns kafka-go's balancer of p. Keys are never nil, so neither
// balancer falls back to random placement.
func (p Partitioner) balancer() kafka.Balancer {
	if p == FNV1a {
		return &kafka.Hash{}
	}
	return kafka.Murmur2Balancer{Consistent: true}
}

// Value says what the message value is.
type Value string

// Values.
const (
	// ValueEnvelope is the JSON envelope of SPEC §5 (package envelope). The
	// default.
	ValueEnvelope Value = "envelope"
	// ValueData is the event's data JSON as stored by Marten, the event
	// metadata being in the headers only.
	ValueData Value = "data"
)

// Values returns every Value, the default (ValueEnvelope) first.
func Values() []Value { return []Value{ValueEnvelope, ValueData} }

// Compression is the codec of the record batches sent.
type Compression string

// Compressions.
const (
	CompressionNone   Compression = "none" // the default
	CompressionGzip   Compression = "gzip"
	CompressionSnappy Compression = "snappy"
	CompressionLZ4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
)

// Compressions returns every Compression, the default (CompressionNone)
// first.
func Compressions() []Compression {
	return []Compression{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}
}

// codec returns kafka-go's codec of c; 0 is none.
func (c Compression) codec() kafka.Compression {
	switch c {
	case CompressionGzip:
		return kafka.Gzip
	case CompressionSnappy:
		return kafka.Snappy
	case CompressionLZ4:
		return kafka.Lz4
	case CompressionZstd:
		return kafka.Zstd
	}
	return 0
}

// SASL mechanisms.
const (
	MechanismPlain       = "plain"
	MechanismScramSHA256 = "scram-sha-256"
	MechanismScramSHA512 = "scram-sha-512"
)

// Mechanisms returns every SASL mechanism.
func Mechanisms() []string {
	return []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512}
}

// oneOf checks that v is empty (the default) or one of choices, naming key
// in the error.
func oneOf[T ~string](key string, v T, choices []T) error {
	if v == "" || slices.Contains(choices, v) {
		return nil
	}
	names := make([]string, len(choices))
	for i, c := range choices {
		names[i] = string(c)
	}
	return fmt.Errorf("%s %q: want one of %s", key, v, strings.Join(names, ", "))
}

// SASL is the authentication of the connections to the brokers. Combine it
// with TLS: PLAIN sends the password as is.
type SASL struct {
	// Mechanism is "plain", "scram-sha-256" or "scram-sha-512"
	// (case-insensitive). Required.
	Mechanism string
	// Username is the SASL user. Required.
	Username string
	// Password is the user's password. It appears in no error or log.
	Password string
}

// String describes the authentication without the password, so that
// printing a SASL with %v or %+v, or logging it, shows no password.
func (s *SASL) String() string {
	return fmt.Sprintf("SASL %s as %q", strings.ToUpper(s.Mechanism), s.Username)
}

// GoString is String, for %#v.
func (s *SASL) GoString() string { return s.String() }

// mechanism returns kafka-go's mechanism for s.
func (s *SASL) mechanism() (sasl.Mechanism, error) {
	if s.Username == "" {
		return nil, fmt.Errorf("sasl: no username")
	}
	switch strings.ToLower(s.Mechanism) {
	case MechanismPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case MechanismScramSHA256:
		return scramMechanism(scram.SHA256, s)
	case MechanismScramSHA512:
		return scramMechanism(scram.SHA512, s)
	case "":
		return nil, fmt.Errorf("sasl: no mechanism (%s)", strings.Join(Mechanisms(), ", "))
	}
	return nil, fmt.Errorf("sasl: unknown mechanism %q (%s)", s.Mechanism, strings.Join(Mechanisms(), ", "))
}

func scramMechanism(algo scram.Algorithm, s *SASL) (sasl.Mechanism, error) {
	m, err := scram.Mechanism(algo, s.Username, s.Password)
	if err != nil {
		// The error of xdg-go/scram quotes the string that failed SASLprep,
		// which may be the password: it is not passed on.
		return nil, fmt.Errorf("sasl: %s: the user name or the password holds characters SASLprep prohibits (RFC 4013)", s.Mechanism)
	}
	return m, nil
}
