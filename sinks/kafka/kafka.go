package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/martencdc/cdc/route"
)

// Defaults of Config.
const (
	// DefaultMaxMessageBytes is the default of Config.MaxMessageBytes: below
	// Kafka's default message.max.bytes (1048588) with room to spare.
	DefaultMaxMessageBytes = 1_000_000
	// DefaultWriteTimeout is the default of Config.WriteTimeout.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultClientID is the default of Config.ClientID.
	DefaultClientID = "cdc"
)

// minMaxMessageBytes is the smallest Config.MaxMessageBytes accepted.
const minMaxMessageBytes = 1024

// Config configures a Kafka sink. Only Brokers and Topic are required.
type Config struct {
	// Brokers are the bootstrap brokers, "host:port" (port 9092 when
	// omitted). Required.
	Brokers []string
	// Topic is the topic of each event, rendered per event (see package
	// route), e.g. "helpdesk.{{.Type}}". Required.
	Topic *route.Template
	// Key is the event field that keys messages. Default KeyStreamID.
	Key Key
	// Partitioner places keys on partitions. Default Murmur2.
	Partitioner Partitioner
	// Value is what message values hold. Default ValueEnvelope.
	Value Value
	// Compression is the codec of record batches. Default CompressionNone.
	Compression Compression
	// CreateTopics creates a topic that does not exist when an event is
	// routed to it. Default false: a missing topic is an error, retried
	// until someone creates the topic.
	CreateTopics bool
	// TopicPartitions is the partition count of topics the sink creates.
	// Default 0: the broker's num.partitions.
	TopicPartitions int
	// TopicReplicationFactor is the replication factor of topics the sink
	// creates. Default 0: the broker's default.replication.factor.
	TopicReplicationFactor int
	// MaxMessageBytes bounds, in bytes, the record batch sent to one
	// partition in one request, before compression, and so the largest
	// record: a record that does not fit (counted as kafka-go counts it:
	// key, value, headers and 22 bytes, plus 128 for the batch header) is
	// rejected without being sent. Keep it at most the topics'
	// max.message.bytes (broker message.max.bytes, 1048588 by default):
	// batches over the topic's limit are refused and sent again in halves.
	// Default DefaultMaxMessageBytes (1000000).
	MaxMessageBytes int
	// WriteTimeout bounds each request to a broker (produce, metadata,
	// topic creation); brokers are given half of it to gather the
	// acknowledgements of the replicas. Default DefaultWriteTimeout (30s).
	WriteTimeout time.Duration
	// TLS secures the connections to the brokers (see package
	// internal/tlsfile). Default nil: plaintext.
	TLS *tls.Config
	// SASL authenticates the connections. Default nil: none.
	SASL *SASL
	// ClientID is the client.id the brokers see (in logs and quotas).
	// Default DefaultClientID ("cdc").
	ClientID string
	// Logger receives the sink's logs: topics created (Info), batches
	// split to find a refused record (Debug). The sink adds
	// component; the caller's logger should carry the pipeline and the
	// sink (package assemble's does). Default: none.
	Logger *slog.Logger
}

// Validate checks the configuration. Zero values stand for the defaults.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka sink: no brokers")
	}
	for i, b := range c.Brokers {
		if err := checkBroker(b); err != nil {
			return fmt.Errorf("kafka sink: brokers[%d]: %w", i, err)
		}
	}
	if c.Topic == nil {
		return errors.New("kafka sink: no topic template")
	}
	if name, ok := c.Topic.Constant(); ok {
		if err := checkTopic(name); err != nil {
			return fmt.Errorf("kafka sink: topic: %w", err)
		}
	}
	for _, err := range []error{
		oneOf("key", c.Key, Keys()),
		oneOf("partitioner", c.Partitioner, Partitioners()),
		oneOf("value", c.Value, Values()),
		oneOf("compression", c.Compression, Compressions()),
	} {
		if err != nil {
			return fmt.Errorf("kafka sink: %w", err)
		}
	}
	switch {
	case c.TopicPartitions < 0:
		return fmt.Errorf("kafka sink: topic_partitions %d is negative", c.TopicPartitions)
	case c.TopicReplicationFactor < 0 || c.TopicReplicationFactor > 32767:
		return fmt.Errorf("kafka sink: topic_replication_factor %d: want 1 to 32767, or 0 for the broker's default", c.TopicReplicationFactor)
	case c.MaxMessageBytes != 0 && c.MaxMessageBytes < minMaxMessageBytes:
		return fmt.Errorf("kafka sink: max_message_bytes %d: want at least %d", c.MaxMessageBytes, minMaxMessageBytes)
	case c.WriteTimeout < 0:
		return fmt.Errorf("kafka sink: write_timeout %s is negative", c.WriteTimeout)
	}
	if c.SASL != nil {
		if _, err := c.SASL.mechanism(); err != nil {
			return fmt.Errorf("kafka sink: %w", err)
		}
	}
	return nil
}

// checkBroker accepts "host" and "host:port". It never quotes the address,
// in case someone put credentials in it.
func checkBroker(b string) error {
	switch {
	case b == "":
		return errors.New("empty broker address")
	case strings.ContainsAny(b, "/@ \t,"):
		return errors.New("not host:port (it holds '/', '@', ',' or blanks)")
	}
	if strings.Contains(b, ":") {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return errors.New("not host:port")
		}
	}
	return nil
}

// Sink writes events to Kafka topics. Its methods are safe for concurrent
// use; Write calls are serialised.
type Sink struct {
	topic        *route.Template
	key          Key
	value        Value
	balancer     kafka.Balancer
	codec        kafka.Compression
	create       bool
	partitions   int // for created topics; -1: the broker's default
	replication  int // for created topics; -1: the broker's default
	maxBatch     int // largest estimated size of a partition's records in one request
	timeout      time.Duration
	brokers      string // for messages: "a:9092, b:9092"
	addr         net.Addr
	tlsConfig    *tls.Config
	mechanism    sasl.Mechanism
	saslDesc     string // "SASL SCRAM-SHA-256 as \"cdc\"", no password
	clientID     string
	log          *slog.Logger
	sem          chan struct{} // held by Write and Close
	closed       atomic.Bool
	w            writeState // guarded by sem
	tmu          sync.Mutex
	transport    *kafka.Transport // guarded by tmu; replaced after failures
	transportGen uint64           // guarded by tmu; counts replacements
}

// Settings of the kafka-go transport. Connections idle for idleTimeout are
// closed (brokers close theirs after connections.max.idle.ms, 10 minutes
// by default). The cluster metadata is read again at random intervals of up
// to metadataTTL (kafka-go's default is 6s; a failure also makes the sink
// read it again, see reset).
const (
	idleTimeout = 5 * time.Minute
	metadataTTL = time.Minute
)

// batchOverhead is what a record batch adds to its records: the v2 batch
// header (61 bytes) and the log overhead (12), rounded up.
const batchOverhead = 128

// errClosed is returned by Write after Close.
var errClosed = errors.New("kafka sink is closed")

// New returns a Kafka sink. It validates cfg and connects to nothing: the
// first Write, Check or Prepare does.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{
		topic:       cfg.Topic,
		key:         cfg.Key,
		value:       cfg.Value,
		balancer:    cfg.Partitioner.balancer(),
		codec:       cfg.Compression.codec(),
		create:      cfg.CreateTopics,
		partitions:  cfg.TopicPartitions,
		replication: cfg.TopicReplicationFactor,
		maxBatch:    cfg.MaxMessageBytes,
		timeout:     cfg.WriteTimeout,
		brokers:     strings.Join(cfg.Brokers, ", "),
		addr:        kafka.TCP(cfg.Brokers...),
		tlsConfig:   cfg.TLS,
		clientID:    cfg.ClientID,
		log:         cfg.Logger,
		sem:         make(chan struct{}, 1),
	}
	if s.key == "" {
		s.key = KeyStreamID
	}
	if s.value == "" {
		s.value = ValueEnvelope
	}
	if s.partitions == 0 {
		s.partitions = -1
	}
	if s.replication == 0 {
		s.replication = -1
	}
	if s.maxBatch == 0 {
		s.maxBatch = DefaultMaxMessageBytes
	}
	s.maxBatch -= batchOverhead
	if s.timeout == 0 {
		s.timeout = DefaultWriteTimeout
	}
	if s.clientID == "" {
		s.clientID = DefaultClientID
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "kafka")
	if cfg.SASL != nil {
		s.mechanism, _ = cfg.SASL.mechanism() // checked by Validate
		s.saslDesc = cfg.SASL.String()
	}
	return s, nil
}

// Close releases the connections. A Write in progress is waited for until
// ctx ends. Close is idempotent; Write fails after it.
func (s *Sink) Close(ctx context.Context) error {
	s.closed.Store(true)
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		// The Write in progress closes the transport when it returns.
		s.closeTransport()
		return fmt.Errorf("close kafka sink: a write is still in progress: %w", ctx.Err())
	}
	s.w = writeState{}
	s.closeTransport()
	return nil
}

func (s *Sink) closeTransport() {
	s.tmu.Lock()
	t := s.transport
	s.transport = nil
	s.transportGen++
	s.tmu.Unlock()
	if t != nil {
		t.CloseIdleConnections()
	}
}

// client returns a client over the current transport, and the transport's
// generation for reset.
func (s *Sink) client() (*kafka.Client, uint64) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if s.transport == nil {
		s.transport = &kafka.Transport{
			ClientID:    s.clientID,
			TLS:         s.tlsConfig,
			SASL:        s.mechanism,
			IdleTimeout: idleTimeout,
			MetadataTTL: metadataTTL,
			DialTimeout: min(10*time.Second, s.timeout),
		}
	}
	return &kafka.Client{Addr: s.addr, Transport: s.transport, Timeout: s.timeout}, s.transportGen
}

// reset drops the transport of generation gen, if it is still the current
// one, so that the next request connects again and reads fresh metadata.
//
// kafka-go's Transport caches the cluster's metadata (which topics exist,
// partition counts, leaders) and refreshes it only every few seconds, not
// when a broker answers NOT_LEADER_OR_FOLLOWER or a topic is missing; a
// request sent after such an error would go by the same stale metadata.
func (s *Sink) reset(gen uint64) {
	s.tmu.Lock()
	t := s.transport
	if gen != s.transportGen || t == nil {
		s.tmu.Unlock()
		return
	}
	s.transport = nil
	s.transportGen++
	s.tmu.Unlock()
	t.CloseIdleConnections()
	s.log.Debug("kafka connections reset to refresh metadata")
}
