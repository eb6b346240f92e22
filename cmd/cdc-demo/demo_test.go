package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/martencdc/cdc/internal/cli"
)

// TestDemo runs the demo briefly: it starts its own PostgreSQL, Kafka, NATS
// server and Elasticsearch fake, delivers what its writers commit to every sink and
// checks the result itself (it exits 1 on any mismatch).
func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := cli.ExitCode("cdc-demo", run(t.Context(), []string{"--duration", "3s", "--rate", "100"}, &stdout, &stderr), &stderr)
	out, errOut := stdout.String(), stderr.String()
	if code != 0 {
		t.Fatalf("demo exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"sink stdout    delivered", "sink kafka     delivered", "sink nats      delivered", "sink search    delivered", "sink incidents delivered", "sink readmodel delivered",
		"equal a recomputation from mt_events: true",
		"0 duplicates, commit order kept: true", "Kafka holds", "NATS stream HELPDESK holds", "PostgreSQL stopped and its files removed",
	} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("demo summary lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Count(out, "\n") < 50 {
		t.Fatalf("demo printed %d events", strings.Count(out, "\n"))
	}
}
