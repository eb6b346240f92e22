package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/applied"
	"github.com/martencdc/cdc/wait"
)

// Waiter answers read-your-writes waits (applied.Tracker).
type Waiter interface {
	// Known returns an error matching applied.ErrUnknownPipeline or
	// applied.ErrUnknownSink for a sink it does not know.
	Known(pipeline, sink string) error
	Wait(ctx context.Context, pipeline, sink string, lsn cdc.LSN) (applied.Answer, error)
}

// Bounds of the timeout parameter of /v1/wait.
const (
	DefaultWaitTimeout = 10 * time.Second
	MaxWaitTimeout     = 5 * time.Minute
)

// WaitResponse is the JSON body of every answer of /v1/wait that concerns
// a known sink (200, 408, 409 and 503): the type package wait's client
// reads.
type WaitResponse = wait.Status

// errorBody is the JSON body of 400, 404 and 405 answers.
type errorBody struct {
	Error string `json:"error"`
}

// serveWait is GET /v1/wait?pipeline=P&sink=S&lsn=L[&timeout=2s], or
// txid=X instead of lsn=L.
func serveWait(waits Waiter, txs applied.TxLSNs) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{"use GET"})
			return
		}
		if waits == nil {
			writeJSON(w, http.StatusNotFound, errorBody{"this listener answers no waits"})
			return
		}
		q := r.URL.Query()
		pipeline, sink := q.Get("pipeline"), q.Get("sink")
		lsnText, txText := q.Get("lsn"), q.Get("txid")
		switch {
		case pipeline == "":
			writeJSON(w, http.StatusBadRequest, errorBody{"parameter pipeline is required"})
			return
		case sink == "":
			writeJSON(w, http.StatusBadRequest, errorBody{"parameter sink is required"})
			return
		case lsnText == "" && txText == "":
			writeJSON(w, http.StatusBadRequest, errorBody{"parameter lsn (pg_current_wal_lsn() after the commit) or txid (pg_current_xact_id() in the transaction) is required"})
			return
		case lsnText != "" && txText != "":
			writeJSON(w, http.StatusBadRequest, errorBody{"give lsn or txid, not both"})
			return
		}
		timeout := DefaultWaitTimeout
		if t := q.Get("timeout"); t != "" {
			d, err := parseTimeout(t)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
				return
			}
			timeout = d
		}
		var lsn cdc.LSN
		if lsnText != "" {
			l, err := cdc.ParseLSN(lsnText)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, errorBody{fmt.Sprintf("parameter lsn %q: not an LSN like 0/16B3748", lsnText)})
				return
			}
			lsn = l
		}
		var txid uint64
		if txText != "" {
			if txs == nil {
				writeJSON(w, http.StatusBadRequest, errorBody{"this listener does not resolve txid: give lsn"})
				return
			}
			x, err := strconv.ParseUint(txText, 10, 64)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, errorBody{fmt.Sprintf("parameter txid %q: not a transaction id like 771 (pg_current_xact_id())", txText)})
				return
			}
			txid = x
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := waits.Known(pipeline, sink); err != nil {
			writeWaitError(w, err)
			return
		}
		resp := WaitResponse{Pipeline: pipeline, Sink: sink}
		if txText != "" {
			resp.TxID = txText
			l, err := txs.TxLSN(ctx, pipeline, txid)
			if err != nil {
				resp.Error = err.Error()
				resp.WaitedMS = time.Since(start).Milliseconds()
				switch {
				case errors.Is(err, applied.ErrTxAborted):
					writeJSON(w, http.StatusConflict, resp)
				case errors.Is(err, applied.ErrTxInvalid):
					writeJSON(w, http.StatusBadRequest, errorBody{fmt.Sprintf("parameter txid %s: %v", txText, err)})
				case ctx.Err() != nil:
					writeJSON(w, http.StatusRequestTimeout, resp)
				default:
					writeJSON(w, http.StatusServiceUnavailable, resp)
				}
				return
			}
			lsn = l
		}
		a, err := waits.Wait(ctx, pipeline, sink, lsn)
		if err != nil {
			writeWaitError(w, err)
			return
		}
		resp.LSN = lsn.String()
		resp.Applied = a.Applied
		resp.Reached = a.Progress.Reached.String()
		resp.FlushLSN = a.Progress.Flush.String()
		if a.Progress.Checkpoint != (cdc.Position{}) {
			resp.Checkpoint = a.Progress.Checkpoint.String()
		}
		resp.State = string(a.Progress.State)
		if !a.Progress.Since.IsZero() {
			since := a.Progress.Since.UTC()
			resp.Since = &since
		}
		resp.Error = a.Progress.Error
		if u := a.Progress.Unstreamed; u != "" && !a.Applied {
			resp.Error = strings.TrimPrefix(resp.Error+"; "+u, "; ")
		}
		resp.From = a.From
		if a.Err != nil && resp.Error == "" {
			resp.Error = a.Err.Error()
		}
		resp.WaitedMS = time.Since(start).Milliseconds()
		writeJSON(w, waitStatus(a), resp)
	}
}

// waitStatus is the HTTP status of an answer: 200 applied; 503 when the
// sink is stopped, failing or detached, when no instance streams its
// pipeline (or nothing could be read), so
// that a caller tells a sink in trouble from one merely behind; 408
// otherwise (the timeout ended first).
func waitStatus(a applied.Answer) int {
	switch {
	case a.Applied:
		return http.StatusOK
	case a.Progress.State == cdc.SinkStopped, a.Progress.State == cdc.SinkFailing, a.Progress.State == cdc.SinkDetached:
		return http.StatusServiceUnavailable
	case a.Progress.State == "" && a.Err != nil, a.Progress.Unstreamed != "":
		return http.StatusServiceUnavailable
	}
	return http.StatusRequestTimeout
}

func writeWaitError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, applied.ErrUnknownPipeline) || errors.Is(err, applied.ErrUnknownSink) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, errorBody{err.Error()})
}

// parseTimeout reads the timeout parameter: a Go duration ("2s", "500ms")
// or a number of seconds, at most MaxWaitTimeout.
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, fmt.Errorf("parameter timeout %q: not a duration like 2s or 500ms", s)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("parameter timeout %q: negative", s)
	case d > MaxWaitTimeout:
		return 0, fmt.Errorf("parameter timeout %q: more than the maximum %s", s, MaxWaitTimeout)
	}
	return d, nil
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
