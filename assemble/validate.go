package assemble

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/replication"
)

// Validate returns the problems of one pipeline, one line each: its source
// and checkpoint databases, then each sink's target. It changes nothing: no
// slot, table or topic is created.
func Validate(ctx context.Context, pc *config.Pipeline) []string {
	return append(validateSource(ctx, pc), validateSinks(ctx, pc)...)
}

// validateSource checks the source and checkpoint databases.
func validateSource(ctx context.Context, pc *config.Pipeline) []string {
	src, err := NewPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return []string{err.Error()}
	}
	defer src.Close()
	if err := WaitReachable(ctx, src, "the source database", false, nil); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, p := range replication.Check(ctx, src, ReplicationConfig(pc, nil), decoder.RequiredColumns()) {
		problems = append(problems, p.Error())
	}
	cp := src
	if pc.Checkpoints.DSN != pc.Source.DSN {
		if cp, err = NewPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn"); err != nil {
			return append(problems, err.Error())
		}
		defer cp.Close()
		if err := WaitReachable(ctx, cp, "the checkpoint database", false, nil); err != nil {
			return append(problems, err.Error())
		}
	}
	if p := checkpointSchemaProblem(ctx, cp, pc.Checkpoints.Schema); p != "" {
		problems = append(problems, p)
	}
	return problems
}

// checkpointSchemaProblem says why cdc run could not create its tables
// (cdc_checkpoints and the others) in the checkpoint schema: the schema is
// missing, or the role may not create in it while cdc_checkpoints does not
// exist yet.
func checkpointSchemaProblem(ctx context.Context, pool *pgxpool.Pool, schema string) string {
	if schema == "" {
		schema = "public"
	}
	var exists, canCreate, hasTable bool
	var role string
	err := pool.QueryRow(ctx, `SELECT n.oid IS NOT NULL,
    coalesce(has_schema_privilege(n.oid, 'CREATE'), false),
    to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL, current_user
FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = $1`, schema, checkpoint.TableName).Scan(&exists, &canCreate, &hasTable, &role)
	switch {
	case err != nil:
		return fmt.Sprintf("check checkpoint schema %s: %v", schema, err)
	case !exists:
		return fmt.Sprintf("checkpoint schema %s does not exist: create it (CREATE SCHEMA %s) or set checkpoints.schema", schema, pgx.Identifier{schema}.Sanitize())
	case !canCreate && !hasTable:
		return fmt.Sprintf("role %s may not create %s in schema %s: GRANT CREATE ON SCHEMA %s TO %s", role, checkpoint.TableName, schema,
			pgx.Identifier{schema}.Sanitize(), pgx.Identifier{role}.Sanitize())
	}
	return ""
}

// validateSinks checks each sink's target, for the sinks that can tell
// (stdout and files need nothing checked).
func validateSinks(ctx context.Context, pc *config.Pipeline) []string {
	a := New(Options{Stdout: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	var problems []string
	for i := range pc.Sinks {
		sc := &pc.Sinks[i]
		s, err := a.newSink(ctx, pc.Name, sc, storeTraits{}, a.opts.Logger)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if c, ok := s.(checker); ok {
			for _, p := range c.Check(ctx) {
				problems = append(problems, "sink "+sc.Name+": "+p)
			}
		}
		_ = s.Close(ctx)
	}
	return problems
}
