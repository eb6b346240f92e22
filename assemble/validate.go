package assemble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/replication"
)

// Validate returns the problems of one pipeline: its source and checkpoint
// databases, then each sink's target. It changes nothing: no slot, table,
// topic or stream is created. A problem only the configuration can fix (a
// connection string that does not parse, SQL the target refuses as
// written) is a *ConfigError; what is only a risk is a *Warning.
func Validate(ctx context.Context, pc *config.Pipeline) []error {
	return append(validateSource(ctx, pc), validateSinks(ctx, pc)...)
}

// validateSource checks the source and checkpoint databases.
func validateSource(ctx context.Context, pc *config.Pipeline) []error {
	src, err := NewPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return []error{err}
	}
	defer src.Close()
	if err := WaitReachable(ctx, src, "the source database", false, nil); err != nil {
		return []error{err}
	}
	problems := replication.Check(ctx, src, ReplicationConfig(pc, nil), decoder.RequiredColumns())
	cp := src
	if pc.Checkpoints.DSN != pc.Source.DSN {
		if cp, err = NewPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn"); err != nil {
			return append(problems, err)
		}
		defer cp.Close()
		if err := WaitReachable(ctx, cp, "the checkpoint database", false, nil); err != nil {
			return append(problems, err)
		}
	}
	sameSchema := pc.Checkpoints.DSN == pc.Source.DSN && pc.Checkpoints.Schema == pc.Source.Schema
	if p := checkpointSchemaProblem(ctx, cp, pc.Checkpoints.Schema, sameSchema); p != nil {
		problems = append(problems, p)
	}
	var traits storeTraits
	if err := detectProgress(ctx, pc, src, &traits); err != nil && len(problems) == 0 {
		problems = append(problems, err)
	}
	return problems
}

// checkpointSchemaProblem says why cdc run could not create its tables
// (cdc_checkpoints and the others) in the checkpoint schema: the schema is
// missing, or the role may not create in it while cdc_checkpoints does not
// exist yet. A missing schema that is mt_events' own (sameSchema) is
// reported by the source's check already.
func checkpointSchemaProblem(ctx context.Context, pool *pgxpool.Pool, schema string, sameSchema bool) error {
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
		return fmt.Errorf("check checkpoint schema %s: %w", schema, err)
	case !exists && sameSchema:
		return nil
	case !exists:
		return fmt.Errorf("checkpoint schema %s does not exist: create it (CREATE SCHEMA %s) or set checkpoints.schema", schema, pgx.Identifier{schema}.Sanitize())
	case !canCreate && !hasTable:
		return fmt.Errorf("role %s may not create %s in schema %s: GRANT CREATE ON SCHEMA %s TO %s", role, checkpoint.TableName, schema,
			pgx.Identifier{schema}.Sanitize(), pgx.Identifier{role}.Sanitize())
	}
	return nil
}

// validateSinks checks each sink's target, for the sinks that can tell
// (stdout and files need nothing checked).
func validateSinks(ctx context.Context, pc *config.Pipeline) []error {
	a := New(Options{Stdout: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	var problems []error
	for i := range pc.Sinks {
		sc := &pc.Sinks[i]
		s, err := a.newSink(ctx, pc.Name, sc, storeTraits{}, a.opts.Logger)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		switch c := s.(type) {
		case inspector:
			ps, ws := c.Inspect(ctx)
			for _, p := range ps {
				problems = append(problems, errors.New("sink "+sc.Name+": "+p))
			}
			for _, w := range ws {
				problems = append(problems, &Warning{Msg: "sink " + sc.Name + ": " + w})
			}
		case problemChecker:
			for _, p := range c.Problems(ctx) {
				p = fmt.Errorf("sink %s: %w", sc.Name, p)
				if refusedSQL(p) {
					p = &ConfigError{p}
				}
				problems = append(problems, p)
			}
		case checker:
			for _, p := range c.Check(ctx) {
				problems = append(problems, errors.New("sink "+sc.Name+": "+p))
			}
		}
		_ = s.Close(ctx)
	}
	return problems
}

// inspector is a sink that says what is wrong with its target (problems)
// and what may go wrong (warnings), one line each (the NATS sink: a
// duplicate window too short for exactly once).
type inspector interface {
	Inspect(ctx context.Context) (problems, warnings []string)
}

// Warning is what Validate reports about a pipeline that can run but may
// not keep a guarantee (a NATS stream's duplicate window shorter than the
// sink may need). It is not a problem: cdc validate prints it and still
// exits 0 when there is nothing else.
type Warning struct{ Msg string }

func (w *Warning) Error() string { return w.Msg }

// problemChecker is a sink that reports its problems as errors (the
// Postgres sink: they wrap the server's errors).
type problemChecker interface {
	Problems(ctx context.Context) []error
}

// refusedSQL reports whether err is the server refusing SQL from the
// configuration as written (SQLSTATE class 42: syntax, an unknown table,
// column, function or type), not for a privilege it lacks.
func refusedSQL(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "42") && pe.Code != "42501"
}
