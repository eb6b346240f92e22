package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/martencdc/cdc/internal/pgerr"
)

// Checker is a Projection that can tell whether it can run against the
// target, for cdc validate. Check is called in a transaction that is rolled
// back afterwards (in which the sink's own tables exist, created if they
// were missing); it returns one line per problem, nil when all is well. SQL
// projections are Checkers.
type Checker interface {
	Projection
	Check(ctx context.Context, tx pgx.Tx) []string
}

// checkName is the name of the prepared statement Check prepares.
const checkName = "cdc_check"

// Check is Problems as lines: see Problems.
func (s *Sink) Check(ctx context.Context) []string {
	var lines []string
	for _, err := range s.Problems(ctx) {
		lines = append(lines, err.Error())
	}
	return lines
}

// Problems reports, one error per problem, what would keep the sink from
// writing: the target unreachable, a table the sink needs missing and not
// creatable by this role, a statement that is not valid for the target or
// that the role may not run. It works in a transaction that it rolls back,
// so it changes nothing: it creates the missing tables there, then prepares
// every statement (the projections', the checkpoint upsert, the events
// insert) and plans it with EXPLAIN EXECUTE and NULL parameters, which
// checks tables, columns, types and privileges without running anything. A
// line names what failed: "projection incident_details, statement 2: ERROR:
// column "x" does not exist (SQLSTATE 42703)". Projections that are neither
// SQL nor Checkers are not checked. It returns nil when all is well. The
// errors of statements wrap the server's *pgconn.PgError.
func (s *Sink) Problems(ctx context.Context) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return []error{errClosed}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return []error{fmt.Errorf("postgres sink %s: cannot connect to the target: %s", s.sink, pgerr.Describe(err))}
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return []error{fmt.Errorf("postgres sink %s: cannot begin a transaction in the target: %w", s.sink, err)}
	}
	defer rollback(ctx, tx)

	var problems []error
	checkTable := func(what string, t table, ddl, stmt string) {
		if err := inSavepoint(ctx, tx, func(sp pgx.Tx) error {
			_, err := ensureTable(ctx, sp, t, ddl)
			return err
		}); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", what, err))
			return
		}
		if err := checkStatement(ctx, tx, stmt); err != nil {
			problems = append(problems, fmt.Errorf("%s %s: %w", what, t, err))
		}
	}
	checkTable("checkpoint table", s.cpTable, checkpointDDL(s.cpTable), s.cpSQL)
	if s.events != nil {
		checkTable("events table", s.events.table, s.events.ddl(), s.events.insert)
	}
	for _, r := range s.routes {
		switch p := r.Projection.(type) {
		case *sqlProjection:
			for i := range p.stmts {
				if err := checkStatement(ctx, tx, p.stmts[i].text); err != nil {
					problems = append(problems, fmt.Errorf("projection %s, statement %d: %w", r.Name, i+1, err))
				}
			}
		case Checker:
			for _, line := range p.Check(ctx, tx) {
				problems = append(problems, fmt.Errorf("projection %s: %s", r.Name, line))
			}
		}
	}
	return problems
}

// Check prepares and plans each statement: see Sink.Check.
func (p *sqlProjection) Check(ctx context.Context, tx pgx.Tx) []string {
	var out []string
	for i := range p.stmts {
		if err := checkStatement(ctx, tx, p.stmts[i].text); err != nil {
			out = append(out, fmt.Sprintf("statement %d: %v", i+1, err))
		}
	}
	return out
}

// checkStatement prepares sql in tx and plans it with NULL parameters
// (EXPLAIN EXECUTE), in a savepoint rolled back on failure.
func checkStatement(ctx context.Context, tx pgx.Tx, sql string) error {
	prepared := false
	err := inSavepoint(ctx, tx, func(sp pgx.Tx) error {
		sd, err := sp.Prepare(ctx, checkName, sql)
		if err != nil {
			return err
		}
		prepared = true
		explain := "EXPLAIN EXECUTE " + checkName
		if n := len(sd.ParamOIDs); n > 0 {
			explain += "(" + strings.TrimSuffix(strings.Repeat("NULL, ", n), ", ") + ")"
		}
		_, err = sp.Exec(ctx, explain)
		return err
	})
	if prepared {
		if derr := tx.Conn().Deallocate(ctx, checkName); derr != nil && err == nil {
			err = derr
		}
	}
	return err
}

// inSavepoint runs fn in a savepoint of tx, released when fn succeeds and
// rolled back to when it fails.
func inSavepoint(ctx context.Context, tx pgx.Tx, fn func(sp pgx.Tx) error) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(sp); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}
