package backfill

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/internal/retry"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

// Manager runs the backfills of one pipeline: those requested (cdc replay,
// source.start, a sink's start) and those a restart interrupted. Only the
// instance that holds the pipeline's slot runs them: a Manager runs its
// jobs while Streaming says so and cancels them when it has said otherwise
// for two polls in a row.
type Manager struct {
	Pipeline  *pipeline.Pipeline
	Name      string // the pipeline's
	Sinks     []string
	Store     *Store
	Pool      *pgxpool.Pool // the source database
	DSN       string
	Schema    string // of mt_events
	Filter    string // source.filter: the publication's row filter, which the reads apply too
	Slot      replication.Config
	Instance  string
	Streaming func() bool // the pipeline holds its slot
	// Progress, when set, is told each sink's progress (metrics).
	Progress func(sink string, done, total int64)
	Log      *slog.Logger
	// Poll is how often requests are looked for; default 1s.
	Poll time.Duration
	// PageSize and InFlight are the jobs'; zero means their defaults.
	PageSize, InFlight int

	mu     sync.Mutex
	active map[string]context.CancelFunc
	next   map[string]time.Time // when a failed job may run again
	delay  map[string]*retry.Backoff
	table  *Table
}

// Run runs backfills until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	if m.Poll <= 0 {
		m.Poll = time.Second
	}
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	m.Log = m.Log.With("component", "backfill")
	m.active, m.next, m.delay = map[string]context.CancelFunc{}, map[string]time.Time{}, map[string]*retry.Backoff{}
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(m.Poll)
	defer tick.Stop()
	// Jobs stop when the stream has not been streaming at two polls in a
	// row: the moment the stream reconnects to read the slot again (a
	// sink's hand-back, a recovered sink), its own previous connection
	// may still hold the slot, and that is no reason to drop a snapshot.
	idle := 0
	for {
		if m.Streaming() {
			idle = 0
			m.start(ctx, &wg)
		} else if idle++; idle >= 2 {
			m.stopAll()
		}
		select {
		case <-ctx.Done():
			m.stopAll()
			return
		case <-tick.C:
		}
	}
}

// start starts a job for every backfill to run that has none.
func (m *Manager) start(ctx context.Context, wg *sync.WaitGroup) {
	recs, err := m.Store.Load(ctx, m.Name)
	if err != nil {
		if ctx.Err() == nil {
			m.Log.Warn("cannot read the backfills; retrying", "err", err)
		}
		return
	}
	for _, sink := range m.Sinks {
		rec := recs[sink]
		if rec == nil || rec.State == Done {
			continue
		}
		m.mu.Lock()
		_, running := m.active[sink]
		wait := time.Now().Before(m.next[sink])
		m.mu.Unlock()
		if running || wait {
			continue
		}
		if m.table == nil {
			conn, err := m.Pool.Acquire(ctx)
			if err != nil {
				m.Log.Warn("cannot read mt_events for a backfill; retrying", "err", err)
				return
			}
			m.table, err = Inspect(ctx, conn, m.Schema)
			conn.Release()
			if err != nil {
				m.Log.Error("cannot backfill", "err", err)
				return
			}
			if m.Filter != "" {
				m.table = m.table.WithRowFilter(m.Filter)
			}
		}
		b, err := m.Pipeline.Backfill(sink)
		if err != nil {
			continue
		}
		jctx, cancel := context.WithCancel(ctx)
		m.mu.Lock()
		m.active[sink] = cancel
		m.mu.Unlock()
		log := m.Log.With("sink", sink)
		job := &Job{Record: rec, Store: m.Store, Table: m.table, Pool: m.Pool, DSN: m.DSN, Slot: m.Slot, Sink: b,
			Instance: m.Instance, PageSize: m.PageSize, InFlight: m.InFlight, Log: log}
		if m.Progress != nil {
			job.Progress = func(done, total int64) { m.Progress(sink, done, total) }
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := job.Run(jctx)
			m.finished(sink, err, jctx.Err() != nil, log)
			cancel()
		}()
	}
}

// finished records the end of a job: a failure waits a backoff before the
// job runs again.
func (m *Manager) finished(sink string, err error, cancelled bool, log *slog.Logger) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.active, sink)
	d := m.delay[sink]
	if d == nil {
		d = &retry.Backoff{Min: time.Second, Max: time.Minute}
		m.delay[sink] = d
	}
	switch {
	case err == nil:
		d.Reset()
		delete(m.next, sink)
	case cancelled || errors.Is(err, pipeline.ErrAbandoned):
		log.Info("backfill interrupted; it resumes where the sink got to", "err", err)
	default:
		wait := d.Next()
		m.next[sink] = time.Now().Add(wait)
		log.Warn("backfill failed; it resumes where the sink got to", "err", err, "retry_in", wait)
	}
}

// stopAll cancels every job: the instance no longer holds the slot.
func (m *Manager) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cancel := range m.active {
		cancel()
	}
}
