package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Config is what a test adds to the configuration Env.WriteConfig writes.
// Every text is YAML without indentation; WriteConfig indents it.
type Config struct {
	// Top holds extra top-level keys, e.g. "shutdown_timeout: 5s".
	Top string
	// Pipeline holds extra keys of the pipeline, e.g. "failure_grace: 5s".
	Pipeline string
	// Source holds extra keys of the pipeline's source, e.g. "timeout: 3s".
	Source string
	// StandbyRetry and StatusInterval override the pipeline's
	// standby_retry (default here 100ms) and status_interval (200ms).
	StandbyRetry, StatusInterval string
	// Sinks names the sinks to configure, in order; default: every sink
	// added to the Env.
	Sinks []string
}

// WriteConfig writes a configuration with one pipeline, "helpdesk", that
// reads the store through the proxy from the slot Env.Slot (the DSN comes from the environment
// variable FAULTS_SOURCE_DSN; the checkpoints' from FAULTS_CHECKPOINTS_DSN
// with Options.CheckpointProxy) and delivers to the Env's sinks, and returns
// its path. The first call starts the watcher: add every sink before it.
func (e *Env) WriteConfig(c Config) string {
	e.t.Helper()
	standby, status := c.StandbyRetry, c.StatusInterval
	if standby == "" {
		standby = "100ms"
	}
	if status == "" {
		status = "200ms"
	}
	var b strings.Builder
	b.WriteString(indent(c.Top, ""))
	pipeline := c.Pipeline
	if e.CheckpointProxy != nil {
		pipeline = "checkpoints:\n  dsn: ${FAULTS_CHECKPOINTS_DSN}\n" + pipeline
	}
	fmt.Fprintf(&b, `pipelines:
  - name: %s
    source:
      dsn: ${FAULTS_SOURCE_DSN}
      schema: %s
      slot: %s
%s    standby_retry: %s
    status_interval: %s
%s    sinks:
`, Pipeline, Schema, e.Slot, indent(c.Source, "      "), standby, status, indent(pipeline, "    "))
	n := 0
	for _, s := range e.sinks {
		if c.Sinks != nil && !slices.Contains(c.Sinks, s.Name()) {
			continue
		}
		b.WriteString(s.yaml())
		n++
	}
	if n == 0 {
		e.t.Fatal("WriteConfig: no sink: add sinks to the Env first")
	}
	e.configs++
	path := filepath.Join(e.Dir, fmt.Sprintf("cdc-%d.yaml", e.configs))
	mustDo(e.t, "write the configuration", os.WriteFile(path, []byte(b.String()), 0o600))
	e.watch.start()
	return path
}

// indent prefixes every non-empty line of s with prefix and ends s with a
// newline.
func indent(s, prefix string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString(prefix)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
