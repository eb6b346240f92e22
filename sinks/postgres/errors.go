package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// transientError marks an error as retryable whatever its cause says: a
// failure that left the transaction or the connection unusable.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// retryable reports whether a failed batch should be written again as it
// is (a plain error from Write) rather than searched for a rejected event:
// the connection or the server failed, the transaction lost a
// serialization or deadlock conflict, ctx ended, another writer moved the
// checkpoint, or the statement cannot run for any event (see
// retryableCode).
func retryable(err error) bool {
	var te *transientError
	if errors.As(err, &te) {
		return true
	}
	if errors.Is(err, errCheckpointMoved) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, pgx.ErrTxClosed) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return retryableCode(pe.Code)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// retryableCode reports whether an error with this SQLSTATE is worth
// retrying the batch for. Retried: connection exceptions (class 08),
// transaction rollbacks but integrity violations at commit (40001
// serialization failure, 40P01 deadlock...), insufficient resources (53:
// disk full, out of memory, too many connections), operator intervention
// (57: admin or crash shutdown, query canceled by statement_timeout,
// database starting up), system errors (58), lock_not_available (55P03),
// object_in_use (55006), a read-only transaction (25006: the target is a
// standby, e.g. during a failover), snapshot_too_old (72000), and
// statements that cannot run for any event: syntax error or access rule
// violation (42: undefined table, column or function, wrong types,
// insufficient privilege) and feature not supported (0A, e.g. a cached
// plan whose result type changed). Those are configuration problems, not
// poison events: dead-lettering would set aside every event until they are
// fixed. Every other error (data exceptions 22, integrity constraint
// violations 23, exceptions raised by triggers P0...) is the event's.
func retryableCode(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "08", "53", "57", "58", "42", "0A":
		return true
	case "40":
		return code != "40002"
	}
	switch code {
	case "55P03", "55006", "25006", "72000":
		return true
	}
	return false
}
