// Package wait is the client of cdc's read-your-writes endpoint
// (GET /v1/wait on the admin listener, `cdc run --admin-addr`): after
// appending events, an application waits until a sink has applied its
// commit, then reads the sink's read model knowing it is not stale.
//
// The recipe: commit, then on the same connection read
// `SELECT pg_current_wal_lsn()` ([CommitLSN] does it); that LSN is at or
// past the end of the commit. [Client.Wait] returns once the sink's
// checkpoint has passed it:
//
//	err := tx.Commit(ctx)
//	lsn, err := wait.CommitLSN(ctx, conn) // the connection that committed
//	st, err := client.Wait(ctx, lsn)      // then query the read model
//
// Wait long-polls: each request waits on the server up to Client.Poll
// (default 10s) and Wait asks again until ctx ends, so ctx bounds the whole
// wait. Any instance of cdc answers, the one streaming the pipeline or a
// standby.
//
// A Client is safe for concurrent use.
package wait

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc"
)

// Client asks one cdc admin listener about one sink.
type Client struct {
	// BaseURL is the admin listener, e.g. "http://cdc:9187".
	BaseURL string
	// Pipeline and Sink name the sink whose read model is read.
	Pipeline, Sink string
	// HTTP is the client used; nil uses http.DefaultClient.
	HTTP *http.Client
	// Poll bounds one long-poll request; default 10s, at most 5m (the
	// server's maximum). Wait repeats requests until its context ends.
	Poll time.Duration
}

// Status is the server's answer: the JSON body of every answer of /v1/wait
// that concerns a known sink (200, 408, 409 and 503).
type Status struct {
	Pipeline string `json:"pipeline"`
	Sink     string `json:"sink"`
	LSN      string `json:"lsn"`            // the LSN waited for
	TxID     string `json:"txid,omitempty"` // the transaction waited for, when asked by txid
	Applied  bool   `json:"applied"`        // the sink has passed LSN
	// Reached: every transaction committed before it is durable in the
	// sink; FlushLSN: the end of the last transaction its saved checkpoint
	// covers; Checkpoint: that checkpoint's position, when known.
	Reached    string `json:"reached_lsn"`
	FlushLSN   string `json:"flush_lsn"`
	Checkpoint string `json:"checkpoint,omitempty"`
	// State is the sink's state (ok, failing, detached, stopped,
	// backfilling; "" when unknown), Since when it entered it and Error
	// why it fails or stopped.
	State string     `json:"state"`
	Since *time.Time `json:"since,omitempty"`
	Error string     `json:"error,omitempty"`
	// From says who answered: "local" (the pipeline runs here and holds
	// the slot) or "checkpoint_table" (read from the checkpoint table and
	// the slot).
	From     string `json:"from"`
	WaitedMS int64  `json:"waited_ms"`
}

// Errors of Wait. A *SinkError matches ErrSinkUnavailable.
var (
	// ErrTimeout: ctx ended before the sink reached the LSN (the server
	// answered 408, or ctx ended between requests).
	ErrTimeout = errors.New("the sink has not applied it yet")
	// ErrSinkUnavailable: the sink is stopped, failing or detached (503).
	ErrSinkUnavailable = errors.New("the sink is not applying events")
	// ErrNotFound: the server knows no such pipeline or sink (404).
	ErrNotFound = errors.New("no such pipeline or sink")
	// ErrBadRequest: the server refused the request (400).
	ErrBadRequest = errors.New("bad request")
	// ErrRolledBack: the transaction waited for by id rolled back (409).
	ErrRolledBack = errors.New("the transaction rolled back")
)

// SinkError is the answer about a sink in trouble (503): its state
// (stopped, failing or detached) and error.
type SinkError struct {
	Status Status
}

func (e *SinkError) Error() string {
	s := fmt.Sprintf("sink %s of pipeline %s is %s", e.Status.Sink, e.Status.Pipeline, e.Status.State)
	if e.Status.State == "" {
		s = fmt.Sprintf("sink %s of pipeline %s: its state could not be read", e.Status.Sink, e.Status.Pipeline)
	}
	if e.Status.Error != "" {
		s += ": " + e.Status.Error
	}
	return s
}

// Is makes a *SinkError match ErrSinkUnavailable.
func (e *SinkError) Is(target error) bool { return target == ErrSinkUnavailable }

// Querier runs a query returning one row: *pgx.Conn, *pgxpool.Conn
// and pgx.Tx satisfy it. It must be the connection that committed (not a
// pool, which may hand out another connection).
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CommitLSNQuery is the SQL of the recipe: run it on the connection that
// committed, right after the commit.
const CommitLSNQuery = `SELECT pg_current_wal_lsn()::text`

// CommitLSN reads pg_current_wal_lsn() on q, the connection that just
// committed: the LSN is at or past the end of that commit.
func CommitLSN(ctx context.Context, q Querier) (cdc.LSN, error) {
	var s string
	if err := q.QueryRow(ctx, CommitLSNQuery).Scan(&s); err != nil {
		return 0, fmt.Errorf("read pg_current_wal_lsn(): %w", err)
	}
	return cdc.ParseLSN(s)
}

// Wait returns once the sink has applied everything committed before lsn,
// or an error: ErrTimeout when ctx ends first, a *SinkError when the sink
// is stopped, failing or detached, ErrNotFound, ErrBadRequest.
func (c *Client) Wait(ctx context.Context, lsn cdc.LSN) (Status, error) {
	return c.wait(ctx, url.Values{"lsn": {lsn.String()}})
}

// WaitTx is Wait for the transaction whose pg_current_xact_id() was txid:
// the server waits for it to end and resolves it to an LSN. A rolled-back
// transaction gives ErrRolledBack.
func (c *Client) WaitTx(ctx context.Context, txid uint64) (Status, error) {
	return c.wait(ctx, url.Values{"txid": {strconv.FormatUint(txid, 10)}})
}

func (c *Client) wait(ctx context.Context, q url.Values) (Status, error) {
	q.Set("pipeline", c.Pipeline)
	q.Set("sink", c.Sink)
	poll := c.Poll
	if poll <= 0 {
		poll = 10 * time.Second
	}
	poll = min(poll, 5*time.Minute)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	for {
		d := poll
		if dl, ok := ctx.Deadline(); ok {
			d = min(d, time.Until(dl))
		}
		if d <= 0 || ctx.Err() != nil {
			return Status{}, fmt.Errorf("wait for %s/%s: %w", c.Pipeline, c.Sink, ErrTimeout)
		}
		q.Set("timeout", d.String())
		st, code, err := c.get(ctx, hc, q)
		if err != nil {
			if ctx.Err() != nil {
				return Status{}, fmt.Errorf("wait for %s/%s: %w: %w", c.Pipeline, c.Sink, ErrTimeout, ctx.Err())
			}
			return Status{}, err
		}
		switch code {
		case http.StatusOK:
			return st, nil
		case http.StatusRequestTimeout:
			continue // asks again until ctx ends
		case http.StatusServiceUnavailable:
			return st, &SinkError{Status: st}
		case http.StatusConflict:
			return st, fmt.Errorf("wait for %s/%s: transaction %s: %w", c.Pipeline, c.Sink, st.TxID, ErrRolledBack)
		case http.StatusNotFound:
			return st, fmt.Errorf("wait for %s/%s: %w: %s", c.Pipeline, c.Sink, ErrNotFound, st.Error)
		case http.StatusBadRequest:
			return st, fmt.Errorf("wait for %s/%s: %w: %s", c.Pipeline, c.Sink, ErrBadRequest, st.Error)
		default:
			return st, fmt.Errorf("wait for %s/%s: unexpected answer %d: %s", c.Pipeline, c.Sink, code, st.Error)
		}
	}
}

// get makes one request and decodes its body.
func (c *Client) get(ctx context.Context, hc *http.Client, q url.Values) (Status, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/v1/wait?"+q.Encode(), nil)
	if err != nil {
		return Status{}, 0, fmt.Errorf("wait for %s/%s: %w", c.Pipeline, c.Sink, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Status{}, 0, fmt.Errorf("wait for %s/%s: %w", c.Pipeline, c.Sink, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Status{}, 0, fmt.Errorf("wait for %s/%s: read answer: %w", c.Pipeline, c.Sink, err)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return Status{}, 0, fmt.Errorf("wait for %s/%s: answer %d is not JSON: %.200s", c.Pipeline, c.Sink, resp.StatusCode, body)
	}
	return st, resp.StatusCode, nil
}
