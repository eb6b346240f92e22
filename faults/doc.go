// Package faults is the fault suite of cdc: end-to-end tests that run the
// real cdc binary against a real PostgreSQL while a workload appends Marten
// events, break something on the way (the database server, the network,
// a sink's target, the cdc process itself), and then check, event by
// event, that every sink holds what it must.
//
// The package has no code of its own beyond this comment: everything is in
// its _test.go files, so that `go test ./faults` is the suite and nothing
// links it.
//
// # Running
//
//	go test ./faults                         # every fault test, short variants (well under a minute on 2 cores)
//	go test ./faults -faults.long            # more faults per test and more events
//	go test ./faults -run Soak -soak=10m -v  # the soak: steady load, restarts, crashes, outages, RSS watch
//	go test ./faults -faults.report=r.jsonl  # also append each test's figures as a JSON line to r.jsonl
//
// TestMain starts one throwaway PostgreSQL cluster (internal/pgtest) and
// builds the cdc binary once (go build ./cmd/cdc) into a temporary
// directory. docs/reliability.md describes every test and the figures
// they measured.
//
// # The harness
//
// A test builds an Env (NewEnv): a fresh database with Marten's schema in
// schema helpdesk, on the shared cluster or, for faults that hit the whole
// server, on a cluster of its own; a netproxy.Proxy in front of the
// cluster through which every connection of cdc goes (the tests' own
// connections do not); and a working directory for the cdc children.
// It then adds the sinks it wants (Env.Stdout, Env.File, Env.Kafka,
// Env.Elastic, Env.Postgres), each with the in-process target it needs (a
// kfake cluster whose brokers are reached through proxies, an esfake
// server, a target database), writes a configuration (Env.WriteConfig),
// starts cdc children (Env.Start, Env.StartStreaming) and a workload
// (Env.StartWorkload: concurrent writers with late commits and rollbacks
// that record what committed, what rolled back and which commits have an
// unknown outcome).
//
// A watcher polls every sink every 25 ms and records when each event was
// first seen there, which gives recovery times: Env.Inject marks a fault,
// Fault.Lift marks its end, and Env.AwaitRecovery waits until every sink
// has received an event committed after the end, recording how long that
// took. Env.WaitDelivered waits until every sink holds every event of
// mt_events, and Env.Check compares them: per sink, the events missing,
// duplicated (extra copies), out of commit order (first deliveries behind
// an earlier one in the same ordering unit: the stdout stream, a file, a
// Kafka partition, the read-model table), and unexpected (not committed),
// with exact counts. Report.Assert fails the test on anything the sink's
// guarantee does not allow.
//
// Besides the sinks, tests check what an operator sees: the child's JSON
// log records (Proc.Records), its error lines and exit status, /readyz of
// its admin listener (Proc.MetricsAddr, Readyz), cdc status run as a
// command (Env.Command, Env.StatusJSON) and cdc_checkpoints
// (Env.Checkpoint). The defects the suite found are fixed; a check that
// one is back fails with its description (regression); docs/reliability.md
// lists them.
//
// Env.Progress waits for more events after a recovery. When a test fails,
// every cdc child still running gets SIGQUIT first, and its stderr, with
// the Go runtime's goroutine dump, is kept in a file of the system's
// temporary directory whose path the test logs.
//
// A new fault test is a function of a dozen lines: see TestReplicationReset
// for the pattern, and docs/reliability.md. Extra configuration keys go in
// Config.Pipeline, Config.Source or Config.Top.
package faults
