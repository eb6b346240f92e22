package bench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/internal/natsserver"
)

// natsTarget is where the NATS sink publishes: an in-process nats-server
// with JetStream (file storage in a temporary directory), or the servers
// given.
type natsTarget struct {
	servers []string
	server  *natsserver.Server // nil with external servers or none needed
	dir     string
}

// newNATSTarget starts the in-process server when no servers are given and
// a measure needs one.
func newNATSTarget(servers []string, needed bool) (*natsTarget, error) {
	if len(servers) > 0 || !needed {
		return &natsTarget{servers: servers}, nil
	}
	dir, err := os.MkdirTemp("", "cdc-bench-nats-")
	if err != nil {
		return nil, fmt.Errorf("start the in-process NATS server: %w", err)
	}
	s, err := natsserver.Start(natsserver.Config{Dir: dir})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &natsTarget{servers: []string{s.URL()}, server: s, dir: dir}, nil
}

func (n *natsTarget) close() {
	if n == nil || n.server == nil {
		return
	}
	n.server.Stop()
	_ = os.RemoveAll(n.dir)
}

// kafkaTarget is where the Kafka sink produces: an in-process kfake cluster
// or the brokers given.
type kafkaTarget struct {
	brokers []string
	cluster *kfake.Cluster // nil with external brokers
}

func newKafkaTarget(brokers []string) (*kafkaTarget, error) {
	if len(brokers) > 0 {
		return &kafkaTarget{brokers: brokers}, nil
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(12), kfake.AllowAutoTopicCreation())
	if err != nil {
		return nil, fmt.Errorf("start the in-process Kafka: %w", err)
	}
	return &kafkaTarget{brokers: c.ListenAddrs(), cluster: c}, nil
}

func (k *kafkaTarget) close() {
	if k.cluster != nil {
		k.cluster.Close()
	}
}

// consume reads topic from its start until ctx ends and marks each record's
// event-id header in arrived, with the time the consumer got it.
func (k *kafkaTarget) consume(ctx context.Context, topic string, arrived *arrivals) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(10*time.Millisecond),
		// The topic appears when cdc first produces to it: look often.
		kgo.MetadataMaxAge(250*time.Millisecond), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "event-id" {
					arrived.mark(string(h.Value), now)
				}
			}
		})
	}
	return nil
}

// esStub is an in-process endpoint of Elasticsearch's API that accepts
// every item at once (esfake.Stub), so that the benchmark measures cdc and
// not an indexer; it records when each document id arrived.
type esStub struct {
	srv     *httptest.Server
	arrived *arrivals
}

func newESStub() *esStub {
	s := &esStub{arrived: newArrivals()}
	s.srv = httptest.NewServer(&esfake.Stub{OnItem: func(_, id string) { s.arrived.mark(id, time.Now()) }})
	return s
}

func (s *esStub) url() string { return s.srv.URL }
func (s *esStub) close()      { s.srv.Close() }
