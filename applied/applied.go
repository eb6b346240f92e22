package applied

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/martencdc/cdc"
)

// Progress is what is known of one sink.
type Progress struct {
	// Reached: every transaction committed before it is durable in the
	// sink (or was filtered out for it).
	Reached cdc.LSN
	// Flush is the end LSN of the last transaction the sink's saved
	// checkpoint fully covers; Checkpoint its position, when known.
	Flush      cdc.LSN
	Checkpoint cdc.Position
	State      cdc.SinkState // "" when unknown
	Since      time.Time     // when the sink entered State; zero for ok
	Error      string        // why it fails or stopped
	// Unstreamed, when set, says why no instance is moving the sink
	// forward: the pipeline's slot is not held by any instance.
	Unstreamed string
}

// Source reads the progress of one pipeline's sinks by sink name, from
// where any instance can read it (the checkpoint table and the slot).
// Sinks without a checkpoint yet are absent.
type Source interface {
	Progress(ctx context.Context) (map[string]Progress, error)
}

// SourceFunc adapts a function to [Source].
type SourceFunc func(ctx context.Context) (map[string]Progress, error)

// Progress implements [Source].
func (f SourceFunc) Progress(ctx context.Context) (map[string]Progress, error) { return f(ctx) }

// Pipeline is one pipeline the tracker answers for.
type Pipeline struct {
	Name  string
	Sinks []string // its sinks' names
	// Local, when set, returns the progress of the pipeline running in
	// this process, and whether it holds the slot (its states are then
	// current). It must be cheap: it is called for every wait.
	Local func() (map[string]Progress, bool)
	// Table, when set, reads the checkpoint table and the slot.
	Table Source
}

// Origins of an answer (Answer.From).
const (
	FromLocal = "local"            // the pipeline running in this process
	FromTable = "checkpoint_table" // the checkpoint table and the slot
)

// Answer is the outcome of a wait.
type Answer struct {
	Applied  bool     // the sink reached the LSN
	Progress Progress // what is known of the sink when answering
	From     string   // FromLocal or FromTable: where Progress comes from
	// Err is set when the checkpoint table could not be read and nothing
	// else answered.
	Err error
}

// Errors of Wait for a question about nothing configured.
var (
	ErrUnknownPipeline = errors.New("unknown pipeline")
	ErrUnknownSink     = errors.New("unknown sink")
)

// DefaultPollInterval is how often a pipeline's Source is read while it
// has waiters, unless Tracker.PollInterval says otherwise.
const DefaultPollInterval = 200 * time.Millisecond

// Tracker keeps the waiters of every pipeline. The zero value is not
// usable: call New.
type Tracker struct {
	poll time.Duration
	log  *slog.Logger

	mu        sync.Mutex
	pipelines map[string]*tracked
}

// New returns a tracker for pipelines. poll is how often a pipeline's
// Source is read while it has waiters (DefaultPollInterval when 0). It
// starts nothing: pollers run only while there are waiters.
func New(pipelines []Pipeline, poll time.Duration, log *slog.Logger) *Tracker {
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{poll: poll, log: log.With("component", "applied"), pipelines: map[string]*tracked{}}
	for _, p := range pipelines {
		tp := &tracked{cfg: p, sinks: map[string]*sinkState{}}
		for _, s := range p.Sinks {
			tp.sinks[s] = &sinkState{}
		}
		t.pipelines[p.Name] = tp
	}
	return t
}

// tracked is one pipeline's waiters and what is known of its sinks.
// Guarded by Tracker.mu.
type tracked struct {
	cfg     Pipeline
	sinks   map[string]*sinkState
	waiters int           // across its sinks
	polling bool          // a poller runs
	kick    chan struct{} // wakes the poller for an immediate read
	table   map[string]Progress
	read    bool  // table holds a successful read
	err     error // the last read's error
}

// sinkState is one sink's reached LSN and its waiters.
type sinkState struct {
	reached cdc.LSN
	waiting waiters
}

// waiter is one Wait call asleep.
type waiter struct {
	lsn   cdc.LSN
	done  chan struct{} // closed when released
	index int           // in the heap; -1 once removed
}

// waiters is a min-heap of waiters by LSN.
type waiters []*waiter

func (h waiters) Len() int           { return len(h) }
func (h waiters) Less(i, j int) bool { return h[i].lsn < h[j].lsn }
func (h waiters) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waiters) Push(x any) { w := x.(*waiter); w.index = len(*h); *h = append(*h, w) }
func (h *waiters) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}

// Advance records that sink of pipeline has reached lsn and releases the
// waiters it satisfies. It never blocks for long: wire it to
// pipeline.Config.Reached.
func (t *Tracker) Advance(pipeline, sink string, lsn cdc.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tp := t.pipelines[pipeline]; tp != nil {
		if s := tp.sinks[sink]; s != nil {
			t.raise(tp, s, lsn)
		}
	}
}

// raise raises s's reached LSN and releases its satisfied waiters. t.mu
// is held.
func (t *Tracker) raise(tp *tracked, s *sinkState, lsn cdc.LSN) {
	if lsn <= s.reached {
		return
	}
	s.reached = lsn
	for len(s.waiting) > 0 && s.waiting[0].lsn <= lsn {
		t.release(tp, heap.Pop(&s.waiting).(*waiter))
	}
}

// releaseAll releases every waiter of s (it stopped). t.mu is held.
func (t *Tracker) releaseAll(tp *tracked, s *sinkState) {
	for len(s.waiting) > 0 {
		t.release(tp, heap.Pop(&s.waiting).(*waiter))
	}
}

func (t *Tracker) release(tp *tracked, w *waiter) {
	close(w.done)
	tp.waiters--
}

// Waiters returns how many waits are asleep across every pipeline.
func (t *Tracker) Waiters() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, tp := range t.pipelines {
		n += tp.waiters
	}
	return n
}

// Wait waits until sink of pipeline has reached lsn (every transaction
// committed before lsn is durable in it), until the sink is found stopped,
// or until ctx ends, and says which. It returns an error only for a
// pipeline or sink it does not know.
func (t *Tracker) Wait(ctx context.Context, pipeline, sink string, lsn cdc.LSN) (Answer, error) {
	t.mu.Lock()
	tp, s, err := t.find(pipeline, sink)
	t.mu.Unlock()
	if err != nil {
		return Answer{}, err
	}
	a, holds, ok := t.look(tp, s, sink, lsn)
	if ok {
		return a, nil
	}
	w := &waiter{lsn: lsn, done: make(chan struct{})}
	t.mu.Lock()
	if s.reached >= lsn {
		t.mu.Unlock()
		return t.answer(tp, s, sink, lsn), nil
	}
	heap.Push(&s.waiting, w)
	tp.waiters++
	// The pipeline streaming here pushes every move: the table is then
	// only read at the poll interval (for a sink that stops meanwhile).
	t.startPoller(tp, !holds)
	t.mu.Unlock()
	select {
	case <-w.done:
	case <-ctx.Done():
		t.mu.Lock()
		if w.index >= 0 {
			heap.Remove(&s.waiting, w.index)
			tp.waiters--
		}
		t.mu.Unlock()
	}
	return t.answer(tp, s, sink, lsn), nil
}

// Known returns an error matching ErrUnknownPipeline or ErrUnknownSink
// unless the tracker answers for sink of pipeline.
func (t *Tracker) Known(pipeline, sink string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _, err := t.find(pipeline, sink)
	return err
}

// find returns the pipeline and sink. t.mu is held.
func (t *Tracker) find(pipeline, sink string) (*tracked, *sinkState, error) {
	tp := t.pipelines[pipeline]
	if tp == nil {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownPipeline, pipeline)
	}
	s := tp.sinks[sink]
	if s == nil {
		return nil, nil, fmt.Errorf("%w %q in pipeline %s", ErrUnknownSink, sink, pipeline)
	}
	return tp, s, nil
}

// look answers at once from the local pipeline when it has reached lsn,
// or holds the slot and has the sink stopped; holds says whether it holds
// the slot.
func (t *Tracker) look(tp *tracked, s *sinkState, sink string, lsn cdc.LSN) (a Answer, holds, ok bool) {
	if tp.cfg.Local == nil {
		return Answer{}, false, false
	}
	local, holds := tp.cfg.Local()
	p, ok := local[sink]
	if !ok {
		return Answer{}, false, false
	}
	t.mu.Lock()
	t.raise(tp, s, p.Reached)
	t.mu.Unlock()
	if p.Reached >= lsn || holds && p.State == cdc.SinkStopped {
		return Answer{Applied: p.Reached >= lsn, Progress: p, From: FromLocal}, holds, true
	}
	return Answer{}, holds, false
}

// answer says where sink stands now: applied or not, with the freshest
// word on its state: the local pipeline's when it holds the slot, else the
// checkpoint table's.
func (t *Tracker) answer(tp *tracked, s *sinkState, sink string, lsn cdc.LSN) Answer {
	var a Answer
	if tp.cfg.Local != nil {
		local, holds := tp.cfg.Local()
		if p, ok := local[sink]; ok && holds {
			a = Answer{Progress: p, From: FromLocal}
		}
	}
	t.mu.Lock()
	if a.From == "" {
		if p, ok := tp.table[sink]; ok {
			a = Answer{Progress: p, From: FromTable}
		} else {
			a = Answer{From: FromTable, Err: tp.err}
			if tp.read && tp.err == nil {
				a.Err = errors.New("the sink has no checkpoint yet")
			}
		}
	}
	a.Progress.Reached = max(a.Progress.Reached, s.reached)
	t.mu.Unlock()
	a.Applied = a.Progress.Reached >= lsn
	return a
}

// startPoller starts tp's poller unless it runs; with now, it makes it
// read the table at once. t.mu is held.
func (t *Tracker) startPoller(tp *tracked, now bool) {
	if tp.cfg.Table == nil {
		return
	}
	if tp.polling {
		if now {
			select {
			case tp.kick <- struct{}{}:
			default:
			}
		}
		return
	}
	tp.polling = true
	tp.kick = make(chan struct{}, 1)
	first := t.poll
	if now {
		first = 0
	}
	go t.pollLoop(tp, tp.kick, first)
}

// pollLoop reads tp's table after first, then every poll interval (at
// once when kicked) while tp has waiters, then ends.
func (t *Tracker) pollLoop(tp *tracked, kick chan struct{}, first time.Duration) {
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(5*time.Second, 10*t.poll))
		got, err := tp.cfg.Table.Progress(ctx)
		cancel()
		t.mu.Lock()
		if err != nil {
			if tp.err == nil {
				t.log.Warn("cannot read the checkpoint table to answer waits", "pipeline", tp.cfg.Name, "err", err)
			}
			tp.err = err
		} else {
			tp.err, tp.read, tp.table = nil, true, got
			for name, s := range tp.sinks {
				p, ok := got[name]
				if !ok {
					continue
				}
				t.raise(tp, s, p.Reached)
				if p.State == cdc.SinkStopped {
					t.releaseAll(tp, s)
				}
			}
		}
		if tp.waiters == 0 {
			tp.polling = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		timer.Reset(t.poll)
	}
}
