// Package examples holds ready configurations of cdc, one YAML file per
// common setup: Kafka topics per event type, a NATS JetStream stream, an
// Elasticsearch latest-state index beside an events index, the Helpdesk
// read models in Postgres, two shards by tenant, and a file archive per
// tenant and day. Each file starts
// with a comment that says what it does, which services and environment
// variables it needs, and how to run it.
//
// The tests of this package parse every *.yaml file here and in the
// directories below with config.Parse, check that each has the sinks its
// header names and uses only the environment variables it documents, and
// build each sink offline as cdc would, without contacting any service.
// They also parse every YAML block of docs/scaling.md the same way.
//
// examples/helpdesk is the Go side of the Helpdesk read models: their DDL,
// their SQL projections and a recomputation that the tests check them
// against.
package examples
