package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/martencdc/cdc/route"
)

func TestCheckPrepare(t *testing.T) {
	c := newCluster(t, kfake.DefaultNumPartitions(4))
	createTopic(t, c, "present", 3, nil)
	tests := []struct {
		name       string
		cfg        Config
		check      string // in the one problem Check reports; "" for none
		prepare    string // in Prepare's error; "" for none
		unknown    bool   // Prepare's error wraps ErrUnknownTopic
		partitions int    // of the topic after Prepare; 0: not checked
	}{
		{name: "topic present", cfg: Config{Topic: route.MustParse("present")}},
		{name: "template", cfg: Config{Topic: route.MustParse("absent.{{.Type}}")}},
		{
			name:    "topic missing",
			cfg:     Config{Topic: route.MustParse("absent")},
			check:   `kafka topic "absent" does not exist and create_topics is false`,
			prepare: `kafka topic "absent" does not exist and create_topics is false`,
			unknown: true,
		},
		{
			name:       "topic missing, created",
			cfg:        Config{Topic: route.MustParse("created"), CreateTopics: true, TopicPartitions: 7},
			partitions: 7,
		},
		{
			name:       "topic missing, created with the defaults",
			cfg:        Config{Topic: route.MustParse("created-default"), CreateTopics: true},
			partitions: 4, // the cluster's default
		},
		{
			name:    "too many replicas",
			cfg:     Config{Topic: route.MustParse("too-many-replicas"), CreateTopics: true, TopicReplicationFactor: 5},
			prepare: `create kafka topic "too-many-replicas" (partitions: the broker's default, replication factor: 5)`,
		},
		{
			name:    "brokers unreachable",
			cfg:     Config{Brokers: []string{"127.0.0.1:1", "127.0.0.1:2"}, Topic: route.MustParse("present")},
			check:   "kafka brokers 127.0.0.1:1, 127.0.0.1:2 unreachable",
			prepare: "kafka brokers 127.0.0.1:1, 127.0.0.1:2 unreachable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, c, "", tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			problems := s.Check(ctx)
			switch {
			case tt.check == "" && problems != nil:
				t.Errorf("Check = %q, want none", problems)
			case tt.check != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.check)):
				t.Errorf("Check = %q, want one problem saying %q", problems, tt.check)
			}
			err := s.Prepare(ctx)
			switch {
			case tt.prepare == "" && err != nil:
				t.Errorf("Prepare: %v", err)
			case tt.prepare != "" && (err == nil || !strings.Contains(err.Error(), tt.prepare)):
				t.Errorf("Prepare: err = %v, want one saying %q", err, tt.prepare)
			case tt.unknown != errors.Is(err, ErrUnknownTopic):
				t.Errorf("Prepare: err = %v, wraps ErrUnknownTopic: %v, want %v", err, !tt.unknown, tt.unknown)
			}
			if tt.partitions > 0 {
				name, _ := tt.cfg.Topic.Constant()
				if n := len(c.PartitionInfos(name)); n != tt.partitions {
					t.Errorf("topic %s has %d partitions, want %d", name, n, tt.partitions)
				}
				if problems := s.Check(ctx); problems != nil {
					t.Errorf("Check after Prepare = %q", problems)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	topic := route.MustParse("t")
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" for none
	}{
		{"minimal", Config{Brokers: []string{"k:9092"}, Topic: topic}, ""},
		{"no port", Config{Brokers: []string{"kafka"}, Topic: topic}, ""},
		{"ipv6", Config{Brokers: []string{"[::1]:9092"}, Topic: topic}, ""},
		{"no brokers", Config{Topic: topic}, "no brokers"},
		{"broker with credentials", Config{Brokers: []string{"k:9092", "user:secret@k:9092"}, Topic: topic}, "brokers[1]: not host:port"},
		{"no topic", Config{Brokers: []string{"k"}}, "no topic"},
		{"invalid constant topic", Config{Brokers: []string{"k"}, Topic: route.MustParse("a/b")}, `"a/b" is not a valid Kafka topic name`},
		{"key", Config{Brokers: []string{"k"}, Topic: topic, Key: "version"}, `key "version"`},
		{"partitioner", Config{Brokers: []string{"k"}, Topic: topic, Partitioner: "crc32"}, `partitioner "crc32"`},
		{"value", Config{Brokers: []string{"k"}, Topic: topic, Value: "json"}, `value "json"`},
		{"compression", Config{Brokers: []string{"k"}, Topic: topic, Compression: "brotli"}, `compression "brotli"`},
		{"partitions", Config{Brokers: []string{"k"}, Topic: topic, TopicPartitions: -1}, "topic_partitions"},
		{"replication", Config{Brokers: []string{"k"}, Topic: topic, TopicReplicationFactor: -2}, "topic_replication_factor"},
		{"max message bytes", Config{Brokers: []string{"k"}, Topic: topic, MaxMessageBytes: 100}, "max_message_bytes 100"},
		{"write timeout", Config{Brokers: []string{"k"}, Topic: topic, WriteTimeout: -time.Second}, "write_timeout"},
		{"sasl mechanism", Config{Brokers: []string{"k"}, Topic: topic, SASL: &SASL{Mechanism: "gssapi", Username: "u", Password: "p"}}, `unknown mechanism "gssapi"`},
		{"sasl user", Config{Brokers: []string{"k"}, Topic: topic, SASL: &SASL{Mechanism: "plain", Password: "p"}}, "no username"},
		{"sasl prohibited password", Config{Brokers: []string{"k"}, Topic: topic, SASL: &SASL{Mechanism: "scram-sha-512", Username: "u", Password: "pa\x00ss"}}, "SASLprep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
			for _, secret := range []string{"secret", "pa\x00ss"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("err = %q holds a secret", err)
				}
			}
		})
	}
}

func TestSASLPrintsNoPassword(t *testing.T) {
	s := &SASL{Mechanism: "scram-sha-256", Username: "cdc", Password: "hunter2"}
	cfg := Config{SASL: s}
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", s, s, s, s), fmt.Sprintf("%+v", cfg)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%q shows the password", out)
		}
	}
	if got := s.String(); got != `SASL SCRAM-SHA-256 as "cdc"` {
		t.Errorf("String() = %q", got)
	}
}
