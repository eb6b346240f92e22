// Package assemble turns a configuration into running parts: for each
// pipeline it opens the connection pools, checks the server, creates the
// publication, slot, checkpoint and dead-letter tables when they are
// missing, builds every sink from its kind's options (decorated with
// metrics when asked), and wires the replication stream to the pipeline.
//
// It is what the cdc command and the demo both call; it reads no files
// other than what a configuration names (an Elasticsearch index_settings
// file, TLS certificates) and no flags or environment.
//
// A connection string never appears in its errors or logs: errors name the
// configuration key instead.
package assemble
