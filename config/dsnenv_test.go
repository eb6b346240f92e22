package config

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestDSNSecrets: a password from ${VAR} reaches the server exactly, whatever
// it holds and wherever the DSN puts it, and never spills into the host.
func TestDSNSecrets(t *testing.T) {
	passwords := []string{"plain", "Se@cret99", "p/a#ss%w?rd", "sp ace'q\\b", `p@ss: #w'rd"`, "%41%zz"}
	templates := []struct {
		name, dsn, host string
	}{
		{"url user info", "postgres://cdc:${PGPASSWORD}@db.internal:5432/helpdesk", "db.internal"},
		{"url query", "postgresql://cdc@db.internal/helpdesk?sslmode=disable&password=${PGPASSWORD}", "db.internal"},
		{"key=value", "host=db.internal user=cdc password=${PGPASSWORD} dbname=helpdesk", "db.internal"},
		{"key=value quoted", "host=db.internal user=cdc password='${PGPASSWORD}' dbname=helpdesk", "db.internal"},
		{"key=value last", "host=db.internal dbname=helpdesk password=${PGPASSWORD}", "db.internal"},
	}
	for _, tt := range templates {
		for _, pw := range passwords {
			t.Run(tt.name+"/"+pw, func(t *testing.T) {
				doc := "pipelines:\n  - name: a\n    source:\n      dsn: '" + strings.ReplaceAll(tt.dsn, "'", "''") +
					"'\n    sinks: [{name: out, kind: stdout}]\n"
				cfg, err := Parse("cdc.yaml", []byte(doc), env(map[string]string{"PGPASSWORD": pw}))
				if err != nil {
					t.Fatal(err)
				}
				dsn := cfg.Pipelines[0].Source.DSN
				pc, err := pgconn.ParseConfig(dsn)
				if err != nil {
					t.Fatalf("parse %q: %v", Redact(dsn), err)
				}
				if pc.Password != pw || pc.Host != tt.host || pc.User != "cdc" && tt.name != "key=value last" {
					t.Fatalf("password %q, host %q, user %q: want %q, %q, cdc", pc.Password, pc.Host, pc.User, pw, tt.host)
				}
				if r := Redact(dsn); strings.Contains(r, pw) && pw != "plain" {
					t.Fatalf("Redact(%q) shows the password", r)
				}
			})
		}
	}
}
