// Package bench is the harness behind cdc bench: it measures, over the same
// WAL of one PostgreSQL, the decode ceiling of a slot (a bare consumer that
// only decodes the inserts and acknowledges), cdc per sink kind (as a child
// `cdc run` process, so that its peak RSS is its own), a Marten-style
// polling projector, live latency from commit to the sink at fixed rates,
// and one big COPY transaction, and reports them as one table.
//
// The write workload is package bench/workload and the polling projector
// package bench/poller. Kafka runs in-process (kfake) unless brokers are
// given; Elasticsearch is an in-process stub of the bulk API that accepts
// every item (so the figure is cdc's, not an indexer's) unless an address is
// given.
package bench
