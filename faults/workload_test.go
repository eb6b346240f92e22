package faults

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/internal/marten"
	"github.com/martencdc/cdc/internal/retry"
)

// WorkloadOptions configures Env.StartWorkload.
type WorkloadOptions struct {
	// Writers is the number of concurrent writers. Default 3.
	Writers int
	// Pause is how long each writer waits between transactions: the load
	// is paced, nothing is synchronised by it. Default 2ms.
	Pause time.Duration
	// RollbackOneIn makes one transaction in n roll back after appending.
	// Default 10; negative for none.
	RollbackOneIn int
	// LateOneIn makes one transaction in n wait up to 20ms between
	// appending and committing, so that transactions that took their
	// seq_ids later commit first (Marten's gaps). Default 10; negative
	// for none.
	LateOneIn int
}

// Workload is a set of writers that append helpdesk events to the store
// through mt_quick_append_events, directly (not through the proxy), and
// record the outcome of every transaction: committed (the commit returned
// nil), rolled back (on purpose), uncertain (the commit returned an error:
// the server may or may not have committed) or failed (an error before the
// commit: not committed). Writers survive errors: they back off (50ms
// doubling to 1s) and go on, so that a workload runs through a server
// crash.
type Workload struct {
	e    *Env
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu         sync.Mutex
	ackAt      map[string]time.Time // committed event id -> when the commit returned
	log        []string             // ids of committed and uncertain events, in the order recorded
	rolledBack map[string]bool
	uncertain  map[string]bool
	failed     int      // transactions that failed before their commit (not counting those Stop interrupted)
	errors     int      // every error a writer met
	lastErrs   []string // the last few errors
	stopped    bool
}

// WorkloadCounts summarises a workload.
type WorkloadCounts struct {
	Committed  int // events whose commit returned nil
	RolledBack int // events of transactions rolled back on purpose
	Uncertain  int // events whose commit failed with an unknown outcome
	Failed     int // transactions that failed before their commit
	Errors     int // errors met (every failed or uncertain transaction)
}

// StartWorkload starts the writers; they run until Workload.Stop or the
// end of the test. One workload per Env.
func (e *Env) StartWorkload(o WorkloadOptions) *Workload {
	e.t.Helper()
	if o.Writers <= 0 {
		o.Writers = 3
	}
	if o.Pause == 0 {
		o.Pause = 2 * time.Millisecond
	}
	if o.RollbackOneIn == 0 {
		o.RollbackOneIn = 10
	}
	if o.LateOneIn == 0 {
		o.LateOneIn = 10
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workload{e: e, stop: cancel, ackAt: map[string]time.Time{}, rolledBack: map[string]bool{}, uncertain: map[string]bool{}}
	e.mu.Lock()
	if e.workload != nil {
		e.mu.Unlock()
		e.t.Fatal("StartWorkload: the Env already has a workload")
	}
	e.workload = w
	e.mu.Unlock()
	seed := uint64(time.Now().UnixNano())
	for i := range o.Writers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.write(ctx, e.Pool, o, mrand.New(mrand.NewPCG(uint64(i), seed)))
		}()
	}
	e.t.Cleanup(w.Stop)
	return w
}

// write is one writer's loop.
func (w *Workload) write(ctx context.Context, pool *pgxpool.Pool, o WorkloadOptions, rng *mrand.Rand) {
	hd := marten.NewHelpdesk(rng)
	backoff := retry.Backoff{Min: 50 * time.Millisecond, Max: time.Second}
	for ctx.Err() == nil {
		if err := w.one(ctx, pool, hd, rng, o); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.noteError(err, !errors.Is(err, errUncertain))
			if !retry.Sleep(ctx, backoff.Next()) {
				return
			}
			continue
		}
		backoff.Reset()
		if !retry.Sleep(ctx, o.Pause) {
			return
		}
	}
}

// one runs one transaction and records its outcome.
func (w *Workload) one(ctx context.Context, pool *pgxpool.Pool, hd *marten.Helpdesk, rng *mrand.Rand, o WorkloadOptions) error {
	stream, events := hd.Next()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, _, err := marten.QuickAppend(ctx, tx, Schema, stream, marten.HelpdeskStreamType, marten.DefaultTenantID, events); err != nil {
		return err
	}
	if o.RollbackOneIn > 0 && rng.IntN(o.RollbackOneIn) == 0 {
		if err := tx.Rollback(ctx); err != nil {
			// Not committed either way: a rollback that fails leaves the
			// transaction to die with its connection.
			return fmt.Errorf("rollback: %w", err)
		}
		w.count(func() {
			for _, e := range events {
				w.rolledBack[e.ID] = true
			}
		})
		return nil
	}
	if o.LateOneIn > 0 && rng.IntN(o.LateOneIn) == 0 {
		if !retry.Sleep(ctx, time.Duration(rng.IntN(20))*time.Millisecond) {
			return ctx.Err()
		}
	}
	// Once the decision to commit is taken, the outcome must be known:
	// the commit is not cancelled by Stop.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		w.count(func() {
			for _, e := range events {
				w.uncertain[e.ID] = true
				w.log = append(w.log, e.ID)
			}
		})
		return fmt.Errorf("%w: %w", errUncertain, err)
	}
	now := time.Now()
	w.count(func() {
		for _, e := range events {
			w.ackAt[e.ID] = now
			w.log = append(w.log, e.ID)
		}
	})
	return nil
}

// count runs f under the workload's lock.
func (w *Workload) count(f func()) {
	w.mu.Lock()
	f()
	w.mu.Unlock()
}

// errUncertain marks the error of a commit whose outcome is unknown.
var errUncertain = errors.New("commit failed, outcome unknown")

// noteError records an error a writer met; failed says that its
// transaction certainly did not commit.
func (w *Workload) noteError(err error, failed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errors++
	if failed {
		w.failed++
	}
	w.lastErrs = append(w.lastErrs, err.Error())
	if len(w.lastErrs) > 5 {
		w.lastErrs = w.lastErrs[1:]
	}
}

// Stop stops the writers and waits for them. It is idempotent.
func (w *Workload) Stop() {
	w.stop()
	w.wg.Wait()
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// Counts returns the workload's figures so far.
func (w *Workload) Counts() WorkloadCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WorkloadCounts{Committed: len(w.ackAt), RolledBack: len(w.rolledBack), Uncertain: len(w.uncertain),
		Failed: w.failed, Errors: w.errors}
}

// LastErrors returns the last few errors the writers met.
func (w *Workload) LastErrors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lastErrs...)
}

// CommittedSince counts the events whose commit returned after t.
func (w *Workload) CommittedSince(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, at := range w.ackAt {
		if at.After(t) {
			n++
		}
	}
	return n
}

// ackedAt returns when the commit of event id returned, if it did.
func (w *Workload) ackedAt(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.ackAt[id]
	return at, ok
}

// logFrom returns the ids of committed and uncertain events recorded
// from index i on, and the index to ask from next time.
func (w *Workload) logFrom(i int) ([]string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.log[i:]...), len(w.log)
}

// isStopped reports whether Stop has returned.
func (w *Workload) isStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}
