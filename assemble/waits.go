package assemble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/applied"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/internal/pgerr"
	"github.com/martencdc/cdc/replication"
)

// This file answers read-your-writes waits (/v1/wait) for a process: what
// the pipelines it runs report, and for every configured pipeline (run
// here or not) what the checkpoint table and the slot say, which any
// instance can read.

// LocalProgress returns, for applied.Pipeline.Local, the progress of the
// pipeline's sinks and whether this process holds its slot.
func (p *Pipeline) LocalProgress() (map[string]applied.Progress, bool) {
	out := map[string]applied.Progress{}
	for _, s := range p.Status() {
		out[s.Name] = applied.Progress{Reached: s.Reached, Flush: s.Flush, State: s.State, Since: s.Since, Error: s.Error}
	}
	return out, p.State() == replication.StateStreaming
}

// ProgressTable reads a pipeline's progress where every instance can: the
// sinks' rows in the checkpoint table and the slot's confirmed position
// (the slot confirms a position only once every sink has passed it). It
// opens its connections (two small pools) at its first read and keeps
// them until Close. Safe for concurrent use.
type ProgressTable struct {
	cfg *config.Pipeline

	mu    sync.Mutex
	pools pools
	store *checkpoint.Store
}

// NewProgressTable returns the progress table of pc. It does no I/O.
func NewProgressTable(pc *config.Pipeline) *ProgressTable { return &ProgressTable{cfg: pc} }

// open returns the pools, opening them the first time.
func (t *ProgressTable) open(ctx context.Context) (pools, *checkpoint.Store, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pools.src == nil {
		p, err := openPools(ctx, t.cfg, "pipeline "+t.cfg.Name+": ")
		if err != nil {
			return pools{}, nil, err
		}
		t.pools, t.store = p, checkpoint.New(p.cp, t.cfg.Checkpoints.Schema)
	}
	return t.pools, t.store, nil
}

// Progress implements applied.Source: each sink's checkpoint row, with its
// reached LSN the larger of its flush LSN and the slot's confirmed
// position (not while it is backfilled: a backfill fills it from the
// table, behind the slot).
func (t *ProgressTable) Progress(ctx context.Context) (map[string]applied.Progress, error) {
	p, store, err := t.open(ctx)
	if err != nil {
		return nil, err
	}
	cps, err := store.Load(ctx, t.cfg.Name)
	if err != nil {
		return nil, pgerr.Clean(err)
	}
	slot, err := replication.Slot(ctx, p.src, t.cfg.Source.Slot)
	if err != nil {
		return nil, pgerr.Clean(err)
	}
	var unstreamed string
	switch {
	case !slot.Exists || !slot.ThisDatabase:
		unstreamed = fmt.Sprintf("no instance streams pipeline %s: its slot %s does not exist in the source database", t.cfg.Name, t.cfg.Source.Slot)
	case !slot.Active:
		unstreamed = fmt.Sprintf("no instance streams pipeline %s: its slot %s is not active", t.cfg.Name, t.cfg.Source.Slot)
	}
	out := make(map[string]applied.Progress, len(cps))
	for name, cp := range cps {
		pr := applied.Progress{Reached: cp.Flush, Flush: cp.Flush, Checkpoint: cp.Position, State: cp.State, Since: cp.Since, Error: cp.Error, Unstreamed: unstreamed}
		if slot.Exists && slot.ThisDatabase && cp.State != cdc.SinkBackfilling {
			pr.Reached = max(pr.Reached, slot.ConfirmedFlush)
		}
		out[name] = pr
	}
	return out, nil
}

// txPoll is how often TxLSN looks again at a transaction still in
// progress.
const txPoll = 50 * time.Millisecond

// TxLSN implements applied.TxLSNs for this pipeline's source: it waits
// until transaction txid (pg_current_xact_id()) has ended, then returns
// pg_current_wal_insert_lsn(), read after the commit was seen: PostgreSQL
// inserts the commit record before it marks the transaction committed, so
// the LSN is past it, with synchronous_commit off too.
func (t *ProgressTable) TxLSN(ctx context.Context, txid uint64) (cdc.LSN, error) {
	p, _, err := t.open(ctx)
	if err != nil {
		return 0, err
	}
	for {
		var status *string
		err := p.src.QueryRow(ctx, `SELECT pg_xact_status($1::text::xid8)`, fmt.Sprint(txid)).Scan(&status)
		if err != nil {
			if pgErrCode(err) == "22023" { // "transaction ID is in the future"
				return 0, fmt.Errorf("%w: %v", applied.ErrTxInvalid, err)
			}
			if ctx.Err() != nil {
				return 0, fmt.Errorf("%w: %w", applied.ErrTxInProgress, ctx.Err())
			}
			return 0, fmt.Errorf("read the status of transaction %d: %w", txid, pgerr.Clean(err))
		}
		switch {
		case status == nil || *status == "committed":
			// nil: older than the commit log keeps, long ended; had it
			// committed, the LSN now is past its commit.
			var lsn string
			if err := p.src.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
				if ctx.Err() != nil {
					return 0, fmt.Errorf("%w: %w", applied.ErrTxInProgress, ctx.Err())
				}
				return 0, fmt.Errorf("read the WAL position after transaction %d: %w", txid, pgerr.Clean(err))
			}
			return cdc.ParseLSN(lsn)
		case *status == "aborted":
			return 0, fmt.Errorf("transaction %d: %w", txid, applied.ErrTxAborted)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("transaction %d: %w: %w", txid, applied.ErrTxInProgress, ctx.Err())
		case <-time.After(txPoll):
		}
	}
}

// Close closes the connections it opened.
func (t *ProgressTable) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pools.close()
	t.pools = pools{}
}

// Waits answers /v1/wait for the pipelines of a configuration: a tracker
// over all of them, each answered from the pipeline this process runs when
// there is one, and from the checkpoint table and the slot in any case.
type Waits struct {
	*applied.Tracker
	tables map[string]*ProgressTable
}

// NewWaits returns the waits of every pipeline of cfg. local returns the
// pipeline this process runs under that name, or nil; it is asked at each
// wait, so pipelines may open later. It does no I/O.
func NewWaits(cfg *config.Config, local func(name string) *Pipeline, poll time.Duration, log *slog.Logger) *Waits {
	w := &Waits{tables: map[string]*ProgressTable{}}
	var ps []applied.Pipeline
	for i := range cfg.Pipelines {
		pc := &cfg.Pipelines[i]
		tab := NewProgressTable(pc)
		w.tables[pc.Name] = tab
		ap := applied.Pipeline{Name: pc.Name, Table: tab}
		for _, sc := range pc.Sinks {
			ap.Sinks = append(ap.Sinks, sc.Name)
		}
		name := pc.Name
		ap.Local = func() (map[string]applied.Progress, bool) {
			if p := local(name); p != nil {
				return p.LocalProgress()
			}
			return nil, false
		}
		ps = append(ps, ap)
	}
	w.Tracker = applied.New(ps, poll, log)
	return w
}

// TxLSN implements applied.TxLSNs.
func (w *Waits) TxLSN(ctx context.Context, pipeline string, txid uint64) (cdc.LSN, error) {
	tab := w.tables[pipeline]
	if tab == nil {
		return 0, fmt.Errorf("%w %q", applied.ErrUnknownPipeline, pipeline)
	}
	return tab.TxLSN(ctx, txid)
}

// Close closes the connections of every progress table.
func (w *Waits) Close() {
	for _, t := range w.tables {
		t.Close()
	}
}

// pgErrCode returns the SQLSTATE of err, or "".
func pgErrCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
