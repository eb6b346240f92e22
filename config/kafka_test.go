package config

import (
	"reflect"
	"testing"
	"time"
)

func TestParseKafkaSink(t *testing.T) {
	tests := []struct {
		name string
		keys string
		env  map[string]string
		want *KafkaOptions // TopicTemplate is checked through Topic
		errs []string      // the lines of the error
	}{
		{
			name: "defaults",
			keys: "        brokers: [kafka:9092]\n        topic: helpdesk.events\n",
			want: &KafkaOptions{Brokers: []string{"kafka:9092"}, Topic: "helpdesk.events",
				Key: "stream_id", Partitioner: "murmur2", Value: "envelope", Compression: "none"},
		},
		{
			name: "every key",
			keys: `        brokers: [k1:9092, "k2:9093"]
        topic: "helpdesk.{{.Type}}"
        key: tenant_id
        partitioner: fnv1a
        value: data
        compression: zstd
        create_topics: true
        topic_partitions: 12
        topic_replication_factor: 3
        max_message_bytes: 2MiB
        write_timeout: 5s
        client_id: projector
        tls: {ca_file: /etc/ca.pem, cert_file: c.pem, key_file: k.pem, server_name: kafka.internal, insecure_skip_verify: false}
        sasl: {mechanism: scram-sha-512, username: cdc, password: "${KAFKA_PASSWORD}"}
`,
			env: map[string]string{"KAFKA_PASSWORD": "s3cret"},
			want: &KafkaOptions{Brokers: []string{"k1:9092", "k2:9093"}, Topic: "helpdesk.{{.Type}}",
				Key: "tenant_id", Partitioner: "fnv1a", Value: "data", Compression: "zstd",
				CreateTopics: true, TopicPartitions: 12, TopicReplicationFactor: 3, MaxMessageBytes: 2 << 20,
				WriteTimeout: 5 * time.Second, ClientID: "projector",
				TLS:  &TLSOptions{CAFile: "/etc/ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "kafka.internal"},
				SASL: &SASLOptions{Mechanism: "scram-sha-512", Username: "cdc", Password: "s3cret"}},
		},
		{
			name: "missing brokers and topic",
			keys: "",
			errs: []string{
				"cdc.yaml:5: pipelines[0].sinks[0].brokers: required",
				"cdc.yaml:5: pipelines[0].sinks[0].topic: required",
			},
		},
		{
			name: "bad values",
			keys: `        brokers: [kafka, "k:99999", []]
        topic: "x.{{.Typ}}"
        key: seq_id
        compression: brotli
        create_topics: maybe
        topic_partitions: 0
`,
			errs: []string{
				`cdc.yaml:7: pipelines[0].sinks[0].brokers[0]: want host:port, got "kafka"`,
				`cdc.yaml:7: pipelines[0].sinks[0].brokers[1]: want host:port with a port from 1 to 65535, got "k:99999"`,
				`cdc.yaml:7: pipelines[0].sinks[0].brokers[2]: want a string, got a list`,
				`cdc.yaml:8: pipelines[0].sinks[0].topic: invalid template: unknown field .Typ (did you mean .Type?)`,
				`cdc.yaml:9: pipelines[0].sinks[0].key: want one of stream_id, id, tenant_id, got "seq_id"`,
				`cdc.yaml:10: pipelines[0].sinks[0].compression: want one of none, gzip, snappy, lz4, zstd, got "brotli"`,
				`cdc.yaml:11: pipelines[0].sinks[0].create_topics: want true or false, got "maybe"`,
				`cdc.yaml:12: pipelines[0].sinks[0].topic_partitions: must be greater than 0, got 0`,
			},
		},
		{
			name: "empty broker list",
			keys: "        brokers: []\n        topic: t\n",
			errs: []string{"cdc.yaml:7: pipelines[0].sinks[0].brokers: must list at least one broker"},
		},
		{
			name: "tls and sasl problems",
			keys: `        brokers: [k:9092]
        topic: t
        tls: {cert_file: c.pem, ca: x}
        sasl: {username: cdc, password: hunter2, mechanism: kerberos}
`,
			errs: []string{
				"cdc.yaml:9: pipelines[0].sinks[0].tls.ca: unknown key (known: ca_file, cert_file, key_file, server_name, insecure_skip_verify)",
				"cdc.yaml:9: pipelines[0].sinks[0].tls: cert_file and key_file go together: set both or neither",
				`cdc.yaml:10: pipelines[0].sinks[0].sasl.mechanism: want one of plain, scram-sha-256, scram-sha-512, got "kerberos"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			cfg, err := Parse("cdc.yaml", []byte(fileSinkDoc("kafka", tt.keys)), env)
			if tt.errs != nil {
				checkErrorLines(t, err, tt.errs, "hunter2")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o, ok := cfg.Pipelines[0].Sinks[0].Options.(*KafkaOptions)
			if !ok {
				t.Fatalf("options %T", cfg.Pipelines[0].Sinks[0].Options)
			}
			if o.TopicTemplate == nil || o.TopicTemplate.String() != tt.want.Topic {
				t.Errorf("topic template %v, want %q", o.TopicTemplate, tt.want.Topic)
			}
			o.TopicTemplate = nil
			if !reflect.DeepEqual(o, tt.want) {
				t.Errorf("options\n got %+v\nwant %+v", o, tt.want)
			}
		})
	}
}
