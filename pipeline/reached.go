package pipeline

import (
	"github.com/martencdc/cdc"
)

// This file keeps each sink's reached LSN, for read-your-writes waits: the
// LSN before which every committed transaction is durable in the sink (or
// was filtered out for it). It is at least the saved flush LSN (the end of
// the last transaction the sink fully accepted) and moves past it to the
// server's WAL end from a keepalive once the sink has saved everything the
// stream dispatched before that keepalive: a keepalive's WAL end says that
// every transaction committed before it was handed over (cdc.Consumer), so
// an LSN read with pg_current_wal_lsn() after a commit is passed once the
// sink is caught up, even when no later transaction touches mt_events.

// frontier is the WAL end of a keepalive, with the end LSN of the last
// transaction the stream had dispatched when it came.
type frontier struct {
	wal        cdc.LSN // every transaction committed before it was dispatched
	dispatched cdc.LSN // largest end LSN dispatched at the time
}

// reachedLSN returns the sink's reached LSN. Safe for concurrent use.
func (r *runner) reachedLSN() cdc.LSN { return cdc.LSN(r.reached.Load()) }

// offerFrontier tells the runner of a keepalive outside a transaction.
// Stream goroutine.
func (r *runner) offerFrontier(f *frontier) {
	// Stored before the flush LSN is read: a save that raises the flush
	// LSN concurrently reads the frontier after it raised it (progressed).
	r.front.Store(f)
	if r.flushLSN() >= f.dispatched {
		r.reach(f.wal)
	}
}

// progressed raises the reached LSN after the flush LSN moved.
func (r *runner) progressed() {
	lsn := r.flushLSN()
	if f := r.front.Load(); f != nil && lsn >= f.dispatched {
		lsn = max(lsn, f.wal)
	}
	r.reach(lsn)
}

// reach raises the reached LSN to lsn (never lowers it) and reports the
// move (Config.Reached). Safe for concurrent use.
func (r *runner) reach(lsn cdc.LSN) {
	for {
		cur := r.reached.Load()
		if uint64(lsn) <= cur {
			return
		}
		if r.reached.CompareAndSwap(cur, uint64(lsn)) {
			break
		}
	}
	if r.onReached != nil {
		r.onReached(r.name, lsn)
	}
}
