// Package config parses the YAML configuration of the projector (SPEC §4)
// into typed, validated, defaulted values.
//
// It sits at the very start of the flow: cmd/cdc reads the file and the
// environment and hands both to [Parse]; everything downstream (replication,
// pipeline, sinks) receives the structs of this package and never sees YAML.
// The package does no I/O of its own and keeps no global state, so it is
// safe for concurrent use.
//
// # Guarantees
//
//   - Strict: unknown keys, duplicate keys, wrong types and invalid values are
//     errors. Parse reports every problem it finds, not just the first, as one
//     [*Error] whose lines read "file:line: key.path: message".
//   - Defaults are filled in: a returned [Config] needs no further checks.
//   - Secrets stay secret: no error message contains a DSN or an expanded
//     environment value of one. Use [Redact] to show a DSN in logs.
//
// # Environment variables
//
// After the YAML is parsed, every string value (not keys) is expanded:
// ${VAR} is replaced by the variable's value, ${VAR:-default} by its value or,
// when it is unset or empty, by default; $$ is a literal $. A $ followed by
// anything else is kept as is. Expansion happens after parsing, so a value
// containing YAML-special characters (a password with ": " or "#") is safe.
// An unset variable without a default, an unterminated "${" and an invalid
// variable name are errors.
//
// # Sink kinds
//
// Each sink kind has its own options struct (e.g. [StdoutOptions]) and its
// own set of keys beyond the common ones; [Sink.Options] holds it. Adding a
// kind is adding one struct and one entry of the kind table in kinds.go.
package config
