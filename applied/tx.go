package applied

import (
	"context"
	"errors"

	"github.com/martencdc/cdc"
)

// TxLSNs turns a transaction id into an LSN to wait for, for waits by
// txid (the value of pg_current_xact_id() inside the transaction).
type TxLSNs interface {
	// TxLSN waits until transaction txid of pipeline's source database
	// has ended, then returns an LSN at or past the end of its commit and
	// before any later commit can be assumed: pg_current_wal_lsn() read
	// once the commit is known. A transaction that rolled back gives an
	// error matching ErrTxAborted; one still running when ctx ends, ctx's
	// error wrapped with ErrTxInProgress.
	TxLSN(ctx context.Context, pipeline string, txid uint64) (cdc.LSN, error)
}

// Errors of TxLSNs.TxLSN.
var (
	ErrTxAborted    = errors.New("the transaction rolled back: nothing of it will be applied")
	ErrTxInProgress = errors.New("the transaction is still in progress")
	ErrTxInvalid    = errors.New("not a transaction id of this server")
)
