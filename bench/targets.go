package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

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

// esStub is an in-process endpoint of Elasticsearch's bulk API that accepts
// every item at once (201), so that the benchmark measures cdc and not an
// indexer; it records when each document id arrived.
type esStub struct {
	srv     *httptest.Server
	arrived *arrivals
	mu      sync.Mutex
	items   int
}

func newESStub() *esStub {
	s := &esStub{arrived: newArrivals()}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func (s *esStub) url() string { return s.srv.URL }
func (s *esStub) close()      { s.srv.Close() }

func (s *esStub) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	var out bytes.Buffer
	switch r.URL.Path {
	case "/_bulk":
		lines := bytes.Split(bytes.TrimRight(body, "\n"), []byte("\n"))
		out.WriteString(`{"errors":false,"items":[`)
		n := 0
		for i := 0; i+1 < len(lines); i += 2 {
			var action map[string]struct {
				ID string `json:"_id"`
			}
			if json.Unmarshal(lines[i], &action) == nil {
				for _, a := range action {
					s.arrived.mark(a.ID, now)
				}
			}
			if n > 0 {
				out.WriteByte(',')
			}
			out.WriteString(`{"index":{"status":201}}`)
			n++
		}
		out.WriteString(`]}`)
		s.mu.Lock()
		s.items += n
		s.mu.Unlock()
	case "/":
		out.WriteString(`{"version":{"number":"8.19.0"},"tagline":"You Know, for Search"}`)
	default:
		out.WriteString(`{}`)
	}
	_, _ = w.Write(out.Bytes())
}
