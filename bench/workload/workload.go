package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/internal/marten"
)

// Defaults of the zero Options fields.
const (
	// DefaultWriters is the default number of concurrent writers.
	DefaultWriters = 4
	// DefaultTxEvents is the default number of events per transaction.
	DefaultTxEvents = 10
	// DefaultStreamsPerWriter is how many streams each writer appends to
	// by default.
	DefaultStreamsPerWriter = 25
	// DefaultSlowFor is how long a slow transaction waits by default.
	DefaultSlowFor = 200 * time.Millisecond
)

// Options are the workload's knobs. The zero value of a field means its
// default, given in its comment.
type Options struct {
	// Schema is the PostgreSQL schema of the Marten event store, e.g.
	// "helpdesk". Required.
	Schema string
	// Layout is the store's Marten layout (see internal/marten); default
	// marten.LayoutDefault (Marten 8.x's default configuration).
	Layout marten.Layout
	// Writers is the number of concurrent writers, each on a connection of
	// its own from the pool, which must allow at least that many. Default
	// [DefaultWriters].
	Writers int
	// TxEvents is the number of events per transaction; each transaction
	// appends to one stream. The last transaction of a Run with an event
	// count may have fewer. Default [DefaultTxEvents].
	TxEvents int
	// PayloadBytes is the approximate size of each event's JSON body
	// (mt_events.data): Helpdesk bodies (150 to 350 bytes) are padded up to
	// it with a "Notes" text property; bodies already larger are left as
	// they are. Default 0: no padding.
	PayloadBytes int
	// Streams is the number of distinct streams appended to. They are
	// dealt out to the writers (a stream belongs to one writer), and each
	// writer appends to its streams round robin. Must be at least Writers.
	// Default [DefaultStreamsPerWriter] × Writers.
	Streams int
	// Tenants is the number of tenants the streams are spread over. 1 (the
	// default) writes Marten's "*DEFAULT*" tenant; more writes tenants "t1"
	// .. "tN", which needs a layout with conjoined tenancy
	// (marten.LayoutConjoined or marten.LayoutConjoinedPartitioned; Run
	// registers the tenants of the latter), as Marten writes no other
	// tenant under single tenancy.
	Tenants int
	// Rate is the number of events per second appended by all writers
	// together, rolled-back ones included. Writers are paced per
	// transaction on a shared schedule; time lost when every writer is
	// busy is not made up. Default 0: as fast as they can.
	Rate int
	// SlowShare is the share of transactions (0 to 1) that take their
	// seq_ids, then wait SlowFor before they commit: gap makers. Default 0.
	SlowShare float64
	// SlowFor is how long a slow transaction waits between its append and
	// its COMMIT. Default [DefaultSlowFor].
	SlowFor time.Duration
	// RollbackShare is the share of transactions (0 to 1) that roll back
	// after appending. SlowShare + RollbackShare must not exceed 1.
	// Default 0.
	RollbackShare float64
	// OnRollback, if set, is called with the event ids of each rolled-back
	// transaction, concurrently from the writers (see onCommit in [Run]).
	OnRollback func(ids []string)
	// Seed seeds the writers' choices (stream order, event types, which
	// transactions are slow or roll back); ids and timestamps still come
	// from the clock and crypto/rand. Default 0 is a seed like any other.
	Seed uint64
}

// withDefaults returns o with its zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Writers == 0 {
		o.Writers = DefaultWriters
	}
	if o.TxEvents == 0 {
		o.TxEvents = DefaultTxEvents
	}
	if o.Streams == 0 {
		o.Streams = DefaultStreamsPerWriter * o.Writers
	}
	if o.Tenants == 0 {
		o.Tenants = 1
	}
	if o.SlowFor == 0 {
		o.SlowFor = DefaultSlowFor
	}
	return o
}

// validate checks o, with its defaults applied.
func (o Options) validate() error {
	if err := marten.ValidateSchema(o.Schema); err != nil {
		return err
	}
	switch {
	case o.Writers < 0:
		return fmt.Errorf("writers %d: negative", o.Writers)
	case o.TxEvents < 0:
		return fmt.Errorf("events per transaction %d: negative", o.TxEvents)
	case o.PayloadBytes < 0:
		return fmt.Errorf("payload bytes %d: negative", o.PayloadBytes)
	case o.Streams < o.Writers:
		return fmt.Errorf("%d streams for %d writers: each writer needs a stream of its own", o.Streams, o.Writers)
	case o.Tenants < 0:
		return fmt.Errorf("tenants %d: negative", o.Tenants)
	case o.Tenants > 1 && !o.Layout.Conjoined():
		return fmt.Errorf("%d tenants: the %v layout has single tenancy; use a conjoined layout", o.Tenants, o.Layout)
	case o.Tenants > o.Streams:
		return fmt.Errorf("%d tenants for %d streams: each tenant needs a stream", o.Tenants, o.Streams)
	case o.Rate < 0:
		return fmt.Errorf("rate %d: negative", o.Rate)
	case o.SlowShare < 0 || o.SlowShare > 1:
		return fmt.Errorf("slow share %v: not between 0 and 1", o.SlowShare)
	case o.RollbackShare < 0 || o.RollbackShare > 1:
		return fmt.Errorf("rollback share %v: not between 0 and 1", o.RollbackShare)
	case o.SlowShare+o.RollbackShare > 1:
		return fmt.Errorf("slow share %v + rollback share %v: more than 1", o.SlowShare, o.RollbackShare)
	case o.SlowFor < 0:
		return fmt.Errorf("slow for %v: negative", o.SlowFor)
	}
	return nil
}

// tenantID returns the tenant of stream i: "" (Marten's default tenant)
// with one tenant, else "t1".."tN" round robin.
func (o Options) tenantID(i int) string {
	if o.Tenants <= 1 {
		return ""
	}
	return "t" + strconv.Itoa(1+i%o.Tenants)
}

// Commit is one committed transaction.
type Commit struct {
	// IDs are the ids of the transaction's events, in append order.
	IDs []string
	// SeqIDs are their seq_ids, in the same order.
	SeqIDs []int64
	// At is when COMMIT returned (for Run's plain transactions, when the
	// autocommitted append returned).
	At time.Time
	// Slow reports a slow transaction: one that waited SlowFor between
	// taking its seq_ids and committing.
	Slow bool
}

// Result is what a Run did.
type Result struct {
	// Committed is the number of events committed.
	Committed int
	// Transactions is the number of transactions committed.
	Transactions int
	// Slow is the number of those that were slow.
	Slow int
	// RolledBack is the number of events rolled back on purpose.
	RolledBack int
	// RolledBackTransactions is the number of transactions rolled back.
	RolledBackTransactions int
	// Elapsed is the time from the start of Run until its last transaction
	// ended.
	Elapsed time.Duration
}

// Run appends events to the store in o.Schema until events events are
// committed, or, with events 0, until ctx ends; see the package comment
// for what happens to transactions in flight then. It calls onCommit (if
// not nil) for each committed transaction as soon as its COMMIT returned,
// from the writer goroutines: onCommit must be safe for concurrent use and
// should be quick, as it delays its writer. Rolled-back transactions are
// counted in the Result and passed to o.OnRollback, never to onCommit.
//
// The pool must allow at least o.Writers connections; a slow transaction
// holds one more connection until it commits, and writers wait for one
// when the pool has none left. Run stops at the first error (an append or
// commit that failed) and returns it with the Result so far; with an event
// count, it also returns an error if ctx ends first.
func Run(ctx context.Context, pool *pgxpool.Pool, o Options, events int, onCommit func(Commit)) (Result, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return Result{}, fmt.Errorf("run workload: %w", err)
	}
	if events < 0 {
		return Result{}, fmt.Errorf("run workload: event count %d: negative", events)
	}
	if events > 0 && o.RollbackShare >= 1 {
		return Result{}, fmt.Errorf("run workload: %d events to commit with every transaction rolled back", events)
	}
	if maxConns := int(pool.Config().MaxConns); maxConns < o.Writers {
		return Result{}, fmt.Errorf("run workload: the pool allows %d connections, fewer than %d writers", maxConns, o.Writers)
	}
	store := marten.Store{Layout: o.Layout, Schema: o.Schema}
	for i := range min(o.Tenants, o.Streams) {
		if t := o.tenantID(i); t != "" {
			if err := store.AddTenant(ctx, pool, t); err != nil {
				return Result{}, fmt.Errorf("run workload: %w", err)
			}
		}
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &runner{
		o:        o,
		store:    store,
		pool:     pool,
		target:   events,
		onCommit: onCommit,
		start:    time.Now(),
		db:       context.WithoutCancel(ctx),
	}
	r.fail = func(err error) {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
		cancel(err)
	}
	if o.Rate > 0 {
		r.pacer = &pacer{perEvent: float64(time.Second) / float64(o.Rate)}
	}
	for w := range o.Writers {
		var streams []stream
		for i := w; i < o.Streams; i += o.Writers {
			// Each writer's streams go round the tenants, so that every
			// writer writes for every tenant it can.
			streams = append(streams, stream{id: store.NewStreamID(), tenant: o.tenantID(i/o.Writers + w)})
		}
		rng := rand.New(rand.NewPCG(o.Seed, uint64(w)))
		r.wg.Go(func() {
			if err := r.writer(runCtx, rng, streams); err != nil {
				r.fail(err)
			}
		})
	}
	r.wg.Wait()

	r.mu.Lock()
	res, err := r.res, r.err
	r.mu.Unlock()
	res.Elapsed = time.Since(r.start)
	if err != nil {
		return res, fmt.Errorf("run workload: %w", err)
	}
	if events > 0 && res.Committed < events {
		return res, fmt.Errorf("run workload: %d of %d events committed: %w", res.Committed, events, context.Cause(ctx))
	}
	return res, nil
}

// stream is a stream a writer appends to.
type stream struct {
	id     string
	tenant string // "" for Marten's default tenant
}

// runner is the state of one Run shared by its writers.
type runner struct {
	o        Options
	store    marten.Store
	pool     *pgxpool.Pool
	target   int // events to commit; 0 for no limit
	onCommit func(Commit)
	pacer    *pacer // nil without a rate
	start    time.Time
	db       context.Context // for statements: not cancelled with Run's context
	fail     func(error)     // records the first error and stops the writers
	wg       sync.WaitGroup  // writers and parked slow transactions

	mu      sync.Mutex
	claimed int // events of committing transactions started (or done)
	res     Result
	err     error // the first error
}

// txKind is what a transaction does after its append.
type txKind int

const (
	commitNow txKind = iota
	commitLate
	rollBack
)

// claim reserves up to n events of the target for a transaction that will
// commit, and returns how many it got: 0 when the target is reached.
func (r *runner) claim(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.target > 0 {
		n = min(n, r.target-r.claimed)
	}
	r.claimed += n
	return n
}

// unclaim gives back n claimed events of a transaction that did not start.
func (r *runner) unclaim(n int) {
	r.mu.Lock()
	r.claimed -= n
	r.mu.Unlock()
}

// done reports whether the target is claimed entirely.
func (r *runner) done() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target > 0 && r.claimed >= r.target
}

// committed records and reports a committed transaction.
func (r *runner) committed(c Commit) {
	r.mu.Lock()
	r.res.Committed += len(c.IDs)
	r.res.Transactions++
	if c.Slow {
		r.res.Slow++
	}
	r.mu.Unlock()
	if r.onCommit != nil {
		r.onCommit(c)
	}
}

// rolledBack records and reports a rolled-back transaction.
func (r *runner) rolledBack(ids []string) {
	r.mu.Lock()
	r.res.RolledBack += len(ids)
	r.res.RolledBackTransactions++
	r.mu.Unlock()
	if r.o.OnRollback != nil {
		r.o.OnRollback(ids)
	}
}

// writer appends to its streams, round robin, until ctx ends or the target
// is claimed.
func (r *runner) writer(ctx context.Context, rng *rand.Rand, streams []stream) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("acquire a connection: %w", err)
	}
	defer func() { // conn changes after a slow transaction
		if conn != nil {
			conn.Release()
		}
	}()
	gen := newGenerator(rng, r.o.PayloadBytes)
	// A stream with a parked slow transaction is busy until it commits: a
	// second append would wait for its lock (or, on a stream the slow
	// transaction created, fail on mt_streams' primary key, as it does in
	// Marten).
	busy := make([]bool, len(streams))
	freed := make(chan int, len(streams))
	next := 0
	for ctx.Err() == nil {
		kind := commitNow
		switch p := rng.Float64(); {
		case p < r.o.RollbackShare:
			kind = rollBack
		case p < r.o.RollbackShare+r.o.SlowShare:
			kind = commitLate
		}
		n := r.o.TxEvents
		if kind == rollBack {
			if r.done() {
				return nil
			}
		} else if n = r.claim(n); n == 0 {
			return nil
		}
		if r.pacer != nil && !r.pacer.wait(ctx, n) {
			if kind != rollBack {
				r.unclaim(n)
			}
			return nil
		}

		si, ok := r.pick(ctx, busy, freed, next)
		if !ok {
			if kind != rollBack {
				r.unclaim(n)
			}
			return nil
		}
		next = si + 1
		s := streams[si]
		events := gen.events(s.id, n)
		ids := marten.IDs(events)
		switch kind {
		case commitNow:
			// One autocommitted statement: the append is its own transaction.
			_, seqIDs, err := r.store.QuickAppend(r.db, conn, s.id, marten.HelpdeskStreamType, s.tenant, events)
			if err != nil {
				return fmt.Errorf("append %d events: %w", n, err)
			}
			r.committed(Commit{IDs: ids, SeqIDs: seqIDs, At: time.Now()})
		case rollBack:
			tx, err := conn.Begin(r.db)
			if err != nil {
				return fmt.Errorf("begin a transaction to roll back: %w", err)
			}
			_, _, err = r.store.QuickAppend(r.db, tx, s.id, marten.HelpdeskStreamType, s.tenant, events)
			if err = errors.Join(err, tx.Rollback(r.db)); err != nil {
				return fmt.Errorf("append %d events and roll back: %w", n, err)
			}
			r.rolledBack(ids)
		case commitLate:
			tx, err := conn.Begin(r.db)
			if err != nil {
				return fmt.Errorf("begin a slow transaction: %w", err)
			}
			_, seqIDs, err := r.store.QuickAppend(r.db, tx, s.id, marten.HelpdeskStreamType, s.tenant, events)
			if err != nil {
				return errors.Join(fmt.Errorf("append %d events in a slow transaction: %w", n, err), tx.Rollback(r.db))
			}
			// Park the transaction on its connection; go on with another.
			parked := conn
			busy[si] = true
			r.wg.Go(func() {
				defer func() { freed <- si }()
				defer parked.Release()
				t := time.NewTimer(r.o.SlowFor)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done(): // commit at once
				}
				if err := tx.Commit(r.db); err != nil {
					r.fail(fmt.Errorf("commit a slow transaction of %d events: %w", n, err))
					return
				}
				r.committed(Commit{IDs: ids, SeqIDs: seqIDs, At: time.Now(), Slow: true})
			})
			if conn, err = r.pool.Acquire(ctx); err != nil {
				conn = nil
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("acquire a connection: %w", err)
			}
		}
	}
	return nil
}

// pick returns the index of the first stream from next on (round robin)
// that is not busy, waiting for one to be freed if all are. It returns
// false if ctx ended first.
func (r *runner) pick(ctx context.Context, busy []bool, freed <-chan int, next int) (int, bool) {
	for {
		for drained := false; !drained; {
			select {
			case i := <-freed:
				busy[i] = false
			default:
				drained = true
			}
		}
		for k := range busy {
			if i := (next + k) % len(busy); !busy[i] {
				return i, true
			}
		}
		select {
		case i := <-freed:
			busy[i] = false
		case <-ctx.Done():
			return 0, false
		}
	}
}
