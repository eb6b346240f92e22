package postgres

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc"
)

// Projection applies events to the target database inside the sink's
// transaction: the Go API for embedding cdc as a library. Apply is called
// once per event of a type its route matches, in position order, and
// exactly once per event as far as committed state goes: the transaction
// also moves the sink's checkpoint, so an event whose transaction committed
// is never applied again, and one whose transaction rolled back left
// nothing behind. Apply must do all its work through tx (not another
// connection) and must not commit or roll it back; it may use tx.Begin for
// savepoints of its own.
//
// An error from Apply fails the batch. A connection, serialization or
// deadlock failure, or a statement that cannot run at all (SQLSTATE class 42,
// e.g. a missing column), is retried; any other error (a
// [*pgconn.PgError] such as a check constraint violation, or an error of the
// projection's own) rejects the event: see [Sink.Write].
type Projection interface {
	Apply(ctx context.Context, tx pgx.Tx, e *cdc.Event) error
}

// Batcher is a Projection that can queue its statements for an event into a
// pgx.Batch instead of running them, so that the whole batch of events goes
// to the server in one round trip (pipelined). When every projection that
// matches a batch's events is a Batcher, Write sends the batch that way. The
// queued queries run in order, after those of the events and routes before,
// in the sink's transaction; they may carry callbacks (QueuedQuery.Exec,
// Query, QueryRow), which run when the results arrive. Queue must not
// depend on the results of queries queued before it. SQL projections are
// Batchers.
type Batcher interface {
	Projection
	Queue(b *pgx.Batch, e *cdc.Event) error
}

// Route pairs event types with a projection: events whose type matches one
// of the On globs are applied by Projection.
type Route struct {
	// Name names the projection in errors, logs and Check lines, e.g.
	// "incident_details". Required.
	Name string
	// On are event-type globs in path.Match syntax, e.g.
	// "incident_logged" or "incident_*". Required.
	On []string
	// Projection applies the events. Required.
	Projection Projection
}

// validate checks the route.
func (r *Route) validate() error {
	if r.Name == "" {
		return errors.New("a projection without a name")
	}
	if len(r.On) == 0 {
		return fmt.Errorf("projection %s: no event types (on)", r.Name)
	}
	for _, g := range r.On {
		if g == "" {
			return fmt.Errorf("projection %s: an empty event type in on", r.Name)
		}
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("projection %s: event type glob %q: %w", r.Name, g, err)
		}
	}
	if r.Projection == nil {
		return fmt.Errorf("projection %s: no projection", r.Name)
	}
	return nil
}

// matches reports whether the route applies events of type typ.
func (r *Route) matches(typ string) bool {
	for _, g := range r.On {
		if ok, _ := path.Match(g, typ); ok {
			return true
		}
	}
	return false
}

// SQL returns a route whose projection runs statements for each event whose
// type matches one of the globs on, in order, in the sink's transaction.
//
// Statements name event fields with placeholders: $id $seq_id $stream_id
// $version $type $dotnet_type $tenant_id $timestamp $data $correlation_id
// $causation_id $headers $user_name $lsn $commit_time (see [Placeholders]).
// Each becomes a query parameter ($1, $2...): event data is never spliced
// into the SQL text. $data and $headers are jsonb, so "$data->>'CustomerId'"
// and "$data->'Response'" work. Every other placeholder is sent as text and
// behaves like a quoted literal: PostgreSQL gives it the type the context
// asks for ($stream_id compared with or inserted into a uuid column is a
// uuid, $version inserted into a bigint column a bigint, $lsn into a pg_lsn
// column a pg_lsn, $timestamp into a timestamptz column a timestamptz), and
// text when the context says nothing; cast it where that is ambiguous
// ($version::bigint + 1), and where one placeholder is used in two contexts
// of different types. Absent optional fields ($dotnet_type, $correlation_id,
// $causation_id, $headers, $user_name, a zero $timestamp or $commit_time)
// are NULL. $lsn is the commit LSN of the event's transaction as PostgreSQL
// prints it ("0/16B3748").
//
// Each statement is one SQL command. SQL returns an error, naming the
// projection, the statement and the placeholder, for an unknown $name, a
// positional $1, several commands in one statement, an empty statement or an
// unterminated literal, comment or quoted identifier. String literals, quoted
// identifiers, comments, dollar-quoted strings and casts are left alone.
// Whether the statements are valid SQL for the target is for [Sink.Check]
// to say.
func SQL(name string, on []string, statements ...string) (Route, error) {
	if len(statements) == 0 {
		return Route{}, fmt.Errorf("projection %s: no SQL statements", name)
	}
	p := &sqlProjection{name: name, stmts: make([]statement, len(statements))}
	for i, src := range statements {
		st, err := parseStatement(src)
		if err != nil {
			return Route{}, fmt.Errorf("projection %s, statement %d: %w", name, i+1, err)
		}
		p.stmts[i] = st
	}
	r := Route{Name: name, On: append([]string(nil), on...), Projection: p}
	if err := r.validate(); err != nil {
		return Route{}, err
	}
	return r, nil
}

// sqlProjection is the projection of SQL: statements run for each event.
type sqlProjection struct {
	name  string
	stmts []statement
}

// Queue queues the statements for e.
func (p *sqlProjection) Queue(b *pgx.Batch, e *cdc.Event) error {
	for i := range p.stmts {
		b.Queue(p.stmts[i].text, p.stmts[i].args(e)...)
	}
	return nil
}

// Apply runs the statements for e in tx, in one round trip.
func (p *sqlProjection) Apply(ctx context.Context, tx pgx.Tx, e *cdc.Event) error {
	var b pgx.Batch
	if err := p.Queue(&b, e); err != nil {
		return err
	}
	br := tx.SendBatch(ctx, &b)
	for i := range p.stmts {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return &statementError{n: i + 1, err: err}
		}
	}
	return br.Close()
}

// statementError is the failure of the n-th statement (1-based) of a
// projection.
type statementError struct {
	n   int
	err error
}

func (e *statementError) Error() string { return fmt.Sprintf("statement %d: %v", e.n, e.err) }
func (e *statementError) Unwrap() error { return e.err }

// ProjectionError is why a projection failed for an event: the error of a
// statement (a [*pgconn.PgError] for a failing SQL statement) or of a Go
// projection. Write returns it inside a [cdc.RejectedError] when the event
// is rejected, and wraps it in the plain errors of retried failures when the
// failing event is known.
type ProjectionError struct {
	Projection string       // Route.Name
	Statement  int          // 1-based statement number within the projection; 0 when unknown
	EventID    string       // the event's id
	Type       string       // the event's type
	Position   cdc.Position // the event's position
	Err        error        // the cause
}

func (e *ProjectionError) Error() string {
	stmt := ""
	if e.Statement > 0 {
		stmt = fmt.Sprintf(", statement %d", e.Statement)
	}
	return fmt.Sprintf("projection %s%s, event %s (%s at %s): %v", e.Projection, stmt, e.EventID, e.Type, e.Position, e.Err)
}

func (e *ProjectionError) Unwrap() error { return e.Err }
