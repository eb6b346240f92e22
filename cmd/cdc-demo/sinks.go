package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/examples/helpdesk"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/natsserver"
	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/elastic"
	"github.com/martencdc/cdc/sinks/kafka"
	natssink "github.com/martencdc/cdc/sinks/nats"
	"github.com/martencdc/cdc/sinks/postgres"
)

// demoTargets are the demo's in-process Kafka cluster (kfake, the real wire
// protocol), NATS server (the real nats-server, with JetStream, its store in
// a temporary directory) and Elasticsearch fake, so the tour shows every
// sink without installing anything.
type demoTargets struct {
	kafka   *kfake.Cluster
	nats    *natsserver.Server
	natsDir string
	es      *esfake.Server
}

func startDemoTargets() (*demoTargets, error) {
	k, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		return nil, fmt.Errorf("demo: start Kafka: %w", err)
	}
	dir, err := os.MkdirTemp("", "cdc-demo-nats-")
	if err != nil {
		k.Close()
		return nil, fmt.Errorf("demo: NATS store directory: %w", err)
	}
	n, err := natsserver.Start(natsserver.Config{Dir: dir})
	if err != nil {
		k.Close()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("demo: %w", err)
	}
	return &demoTargets{kafka: k, nats: n, natsDir: dir, es: esfake.New()}, nil
}

func (t *demoTargets) close() {
	t.kafka.Close()
	t.nats.Stop()
	_ = os.RemoveAll(t.natsDir)
	t.es.Close()
}

// demoIndex and demoStreamIndex are the demo's Elasticsearch indices.
const (
	demoTopicPrefix = "helpdesk."
	demoIndexPrefix = "helpdesk-"
	demoStreamIndex = "helpdesk-incidents"
	demoNATSStream  = "HELPDESK"
)

// sinks are the demo pipeline's sinks: stdout, Kafka (a topic per type),
// NATS JetStream (a subject per type, in one stream),
// Elasticsearch per event and per stream, and the helpdesk read models in
// the demo database (dsn).
func (t *demoTargets) sinks(dsn string) []config.Sink {
	var projections []config.ProjectionOptions
	for _, r := range helpdesk.Projections() {
		projections = append(projections, config.ProjectionOptions{Name: r.Name, On: r.On, SQL: r.SQL})
	}
	batch := cdc.BatchPolicy{}.WithDefaults()
	return []config.Sink{
		{Name: "stdout", Kind: "stdout", Batch: batch, Options: &config.StdoutOptions{}},
		{Name: "kafka", Kind: "kafka", Batch: batch, Options: &config.KafkaOptions{
			Brokers: t.kafka.ListenAddrs(), Topic: demoTopicPrefix + "{{.Type}}", TopicTemplate: route.MustParse(demoTopicPrefix + "{{.Type}}"),
			Key: kafka.KeyStreamID, Partitioner: kafka.Murmur2, Value: kafka.ValueEnvelope, Compression: kafka.CompressionLZ4, CreateTopics: true, TopicPartitions: 6}},
		{Name: "nats", Kind: "nats", Batch: batch, Options: &config.NATSOptions{
			Servers: []string{t.nats.URL()}, Subject: demoTopicPrefix + "{{.Type}}", SubjectTemplate: route.MustParse(demoTopicPrefix + "{{.Type}}"),
			Stream: demoNATSStream, CreateStream: true, Value: natssink.ValueEnvelope}},
		{Name: "search", Kind: "elastic", Batch: batch, Options: &config.ElasticOptions{
			Addresses: []string{t.es.URL()}, Index: demoIndexPrefix + "{{.Type}}", IndexTemplate: route.MustParse(demoIndexPrefix + "{{.Type}}"), Mode: elastic.ModeEvents}},
		{Name: "incidents", Kind: "elastic", Batch: batch, Options: &config.ElasticOptions{
			Addresses: []string{t.es.URL()}, Index: demoStreamIndex, IndexTemplate: route.MustParse(demoStreamIndex), Mode: elastic.ModeLatest}},
		{Name: "readmodel", Kind: "postgres", Batch: batch, Options: &config.PostgresOptions{
			DSN: dsn, Mode: postgres.ModeProjections, Projections: projections}},
	}
}

// natsMessages counts the messages of the demo's NATS stream.
func (t *demoTargets) natsMessages(ctx context.Context) (int64, error) {
	n, err := t.nats.Count(ctx, demoNATSStream)
	if err != nil {
		return 0, fmt.Errorf("demo: %w", err)
	}
	return int64(n), nil
}

// holdings counts the messages in the demo's topics and the documents in
// its indices.
func (t *demoTargets) holdings() (messages, eventDocs, streamDocs int64) {
	for _, typ := range marten.HelpdeskEventTypes() {
		for _, p := range t.kafka.PartitionInfos(demoTopicPrefix + typ) {
			messages += p.HighWatermark
		}
	}
	for _, idx := range t.es.Indices() {
		switch {
		case idx == demoStreamIndex:
			streamDocs += int64(len(t.es.Docs(idx)))
		case strings.HasPrefix(idx, demoIndexPrefix):
			eventDocs += int64(len(t.es.Docs(idx)))
		}
	}
	return messages, eventDocs, streamDocs
}

// deliveryCounters count, per sink, what each delivered and check the order.
type deliveryCounters struct {
	mu   sync.Mutex
	sink map[string]*deliveryCounter
}

func (c *deliveryCounters) wrap(name string, s cdc.Sink) cdc.Sink {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sink == nil {
		c.sink = map[string]*deliveryCounter{}
	}
	dc := &deliveryCounter{}
	c.sink[name] = dc
	return &countingSink{Sink: s, c: dc}
}

// names returns the sinks' names in a stable order.
func (c *deliveryCounters) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.sink))
	for n := range c.sink {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (c *deliveryCounters) get(name string) *deliveryCounter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sink[name]
}

// count is what the slowest sink delivered.
func (c *deliveryCounters) count() int64 {
	n := int64(-1)
	for _, name := range c.names() {
		if d := c.get(name).count(); n < 0 || d < n {
			n = d
		}
	}
	return max(n, 0)
}

// lastCommit is the commit time of the slowest sink's last event.
func (c *deliveryCounters) lastCommit() time.Time {
	var t time.Time
	for i, name := range c.names() {
		if l := c.get(name).lastCommit(); i == 0 || l.Before(t) {
			t = l
		}
	}
	return t
}

func (c *deliveryCounters) summary(name string) (distinct, dups int, ordered bool) {
	return c.get(name).summary()
}

// String lists each sink's count: "incidents 75 · kafka 75 · ...".
func (c *deliveryCounters) String() string {
	var parts []string
	for _, name := range c.names() {
		parts = append(parts, fmt.Sprintf("%s %d", name, c.get(name).count()))
	}
	return strings.Join(parts, " · ")
}

// deliveryCounter counts what one sink delivered and checks the order.
type deliveryCounter struct {
	mu       sync.Mutex
	seen     map[string]int
	last     cdc.Position
	ordered  bool
	n        int64
	lastTime time.Time
}

type countingSink struct {
	cdc.Sink
	c *deliveryCounter
}

func (s *countingSink) Write(ctx context.Context, b cdc.Batch) error {
	if err := s.Sink.Write(ctx, b); err != nil {
		return err
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string]int)
		c.ordered = true
	}
	for _, e := range b.Events {
		c.seen[e.ID]++
		if e.Position().Compare(c.last) <= 0 {
			c.ordered = false
		}
		c.last = e.Position()
		c.lastTime = e.CommitTime
	}
	c.n += int64(len(b.Events))
	return nil
}

func (c *deliveryCounter) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *deliveryCounter) lastCommit() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastTime
}

// summary returns the distinct events delivered, how many were delivered more
// than once, and whether positions only grew.
func (c *deliveryCounter) summary() (distinct, dups int, ordered bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.seen {
		distinct++
		dups += n - 1
	}
	return distinct, dups, c.ordered || c.seen == nil
}
