package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/marten"
)

// watchInterval is how often the watcher polls every sink; it is the
// resolution of the recovery times.
const watchInterval = 25 * time.Millisecond

// watcher polls every sink of an Env in the background and keeps what
// each holds, and when each event was first seen there.
type watcher struct {
	e      *Env
	mu     sync.Mutex // guards everything below, and serialises polls
	states []*sinkState
	logAt  int // how far the workload's log was handed to the sinks
	quit   chan struct{}
	done   chan struct{}
}

// sinkState is what the watcher knows of one sink.
type sinkState struct {
	sink      Sink
	records   []Record             // everything polled, in the order the target holds it per unit
	firstSeen map[string]time.Time // event id -> when it was first seen
	arrivals  []arrival            // first sightings, in order
	errors    int                  // failed polls
	lastErr   error
}

// arrival is the first sighting of an event in a sink.
type arrival struct {
	id string
	at time.Time
}

func newWatcher(e *Env) *watcher { return &watcher{e: e} }

// start starts polling (once).
func (w *watcher) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.quit != nil {
		return
	}
	for _, s := range w.e.sinks {
		w.states = append(w.states, &sinkState{sink: s, firstSeen: map[string]time.Time{}})
	}
	w.quit, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		tick := time.NewTicker(watchInterval)
		defer tick.Stop()
		for {
			select {
			case <-w.quit:
				return
			case <-tick.C:
				w.sync(false)
			}
		}
	}()
	w.e.t.Cleanup(w.stop)
}

// stop stops polling and waits for the poller.
func (w *watcher) stop() {
	w.mu.Lock()
	q := w.quit
	w.mu.Unlock()
	if q == nil {
		return
	}
	select {
	case <-q:
	default:
		close(q)
	}
	<-w.done
}

// sync polls every sink once; with full, each reads everything it holds
// and an error is returned rather than counted.
func (w *watcher) sync(full bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var fresh []string
	if wl := w.e.currentWorkload(); wl != nil {
		fresh, w.logAt = wl.logFrom(w.logAt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []string
	for _, st := range w.states {
		recs, err := st.sink.poll(ctx, fresh, full)
		now := time.Now()
		for _, r := range recs {
			st.records = append(st.records, r)
			if r.Torn {
				continue
			}
			if _, ok := st.firstSeen[r.ID]; !ok {
				st.firstSeen[r.ID] = now
				st.arrivals = append(st.arrivals, arrival{r.ID, now})
			}
		}
		if err != nil {
			st.errors++
			st.lastErr = err
			errs = append(errs, err.Error())
		}
	}
	if full && len(errs) > 0 {
		return fmt.Errorf("read the sinks: %s", strings.Join(errs, "; "))
	}
	return nil
}

// state returns the state of the sink called name.
func (w *watcher) state(name string) *sinkState {
	for _, st := range w.states {
		if st.sink.Name() == name {
			return st
		}
	}
	return nil
}

// currentWorkload returns the Env's workload, or nil.
func (e *Env) currentWorkload() *Workload {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workload
}

// Held returns the number of distinct events the sink called name has been
// seen holding (by the watcher, at most 25ms ago).
func (e *Env) Held(name string) int {
	e.watch.mu.Lock()
	defer e.watch.mu.Unlock()
	st := e.watch.state(name)
	if st == nil {
		e.t.Fatalf("Held: no sink %s (or WriteConfig not called)", name)
	}
	return len(st.firstSeen)
}

// WaitHeld waits until every sink holds at least n distinct events.
func (e *Env) WaitHeld(n int, timeout time.Duration) {
	e.t.Helper()
	for _, s := range e.sinks {
		e.Eventually(timeout, func() bool { return e.Held(s.Name()) >= n }, "sink %s holds %d events (holds %v)", s.Name(), n, lazy(func() any { return e.Held(s.Name()) }))
	}
}

// Progress waits until every sink holds n more distinct events than when
// it was called: the stream goes on after a fault.
func (e *Env) Progress(n int, timeout time.Duration) {
	e.t.Helper()
	for _, s := range e.sinks {
		from := e.Held(s.Name())
		e.Eventually(timeout, func() bool { return e.Held(s.Name()) >= from+n }, "sink %s holds %d more events (from %d; holds %v)", s.Name(), n, from, lazy(func() any { return e.Held(s.Name()) }))
	}
}

// Fault is one injected fault: what, when it began and ended, and how long
// each sink took to deliver an event committed after its end.
type Fault struct {
	Name  string
	Start time.Time
	End   time.Time // zero until Lift
	// Recovery is, per sink, the time from End to the first sighting of an
	// event whose commit returned after End (set by AwaitRecovery).
	Recovery map[string]time.Duration
	// arrivalsAtEnd is, per sink, how many first sightings there were at End.
	arrivalsAtEnd map[string]int
}

// Inject records that a fault begins now. Faults without duration (a
// reset, a crash followed at once by a restart) are lifted at once by the
// caller.
func (e *Env) Inject(name string) *Fault {
	f := &Fault{Name: name, Start: time.Now(), Recovery: map[string]time.Duration{}}
	e.faults = append(e.faults, f)
	e.log.Info("fault injected", "fault", name)
	return f
}

// Lift records that the fault ended now.
func (e *Env) Lift(f *Fault) {
	e.watch.mu.Lock()
	f.End = time.Now()
	f.arrivalsAtEnd = map[string]int{}
	for _, st := range e.watch.states {
		f.arrivalsAtEnd[st.sink.Name()] = len(st.arrivals)
	}
	e.watch.mu.Unlock()
	e.log.Info("fault lifted", "fault", f.Name, "after", f.End.Sub(f.Start).Round(time.Millisecond))
}

// AwaitRecovery waits (up to timeout) until every sink has received an
// event whose commit returned after the fault was lifted, and records in
// f.Recovery how long after the lift the first such event arrived. The
// workload must be running.
func (e *Env) AwaitRecovery(f *Fault, timeout time.Duration) {
	e.t.Helper()
	var names []string
	for _, s := range e.sinks {
		names = append(names, s.Name())
	}
	e.AwaitRecoveryOf(f, timeout, names...)
}

// AwaitRecoveryOf is AwaitRecovery for the named sinks only (the others
// may still be down).
func (e *Env) AwaitRecoveryOf(f *Fault, timeout time.Duration, names ...string) {
	e.t.Helper()
	if f.End.IsZero() {
		e.t.Fatalf("AwaitRecovery(%s) before Lift", f.Name)
	}
	wl := e.currentWorkload()
	if wl == nil || wl.isStopped() {
		e.t.Fatalf("AwaitRecovery(%s) needs a running workload", f.Name)
	}
	for _, name := range names {
		e.Eventually(timeout, func() bool {
			e.watch.mu.Lock()
			defer e.watch.mu.Unlock()
			st := e.watch.state(name)
			if st == nil {
				e.t.Fatalf("AwaitRecovery: no sink %s", name)
			}
			for _, a := range st.arrivals[f.arrivalsAtEnd[name]:] {
				if at, ok := wl.ackedAt(a.id); ok && at.After(f.End) {
					f.Recovery[name] = a.at.Sub(f.End)
					return true
				}
			}
			return false
		}, "sink %s delivers an event committed after fault %q was lifted (workload: %v, last errors %v)", name, f.Name,
			lazy(func() any { return fmt.Sprintf("%+v", wl.Counts()) }), lazy(func() any { return fmt.Sprintf("%q", wl.LastErrors()) }))
	}
	var parts []string
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %v", name, f.Recovery[name].Round(time.Millisecond)))
	}
	e.t.Logf("fault %q (lasted %v): recovered: %s", f.Name, f.End.Sub(f.Start).Round(time.Millisecond), strings.Join(parts, ", "))
}

// WaitDelivered stops the workload and waits (up to timeout) until every
// sink holds every event of mt_events.
func (e *Env) WaitDelivered(timeout time.Duration) {
	e.t.Helper()
	var names []string
	for _, s := range e.sinks {
		names = append(names, s.Name())
	}
	e.WaitDeliveredTo(timeout, names...)
}

// WaitDeliveredTo is WaitDelivered for the named sinks only (the others
// may have stopped).
func (e *Env) WaitDeliveredTo(timeout time.Duration, names ...string) {
	e.t.Helper()
	if wl := e.currentWorkload(); wl != nil {
		wl.Stop()
	}
	events, err := marten.Events(e.t.Context(), e.Pool, Schema)
	mustDo(e.t, "read mt_events", err)
	for _, name := range names {
		missing := make([]string, len(events))
		for i, ev := range events {
			missing[i] = ev.ID
		}
		e.Eventually(timeout, func() bool {
			e.watch.mu.Lock()
			defer e.watch.mu.Unlock()
			st := e.watch.state(name)
			missing = slices.DeleteFunc(missing, func(id string) bool { _, ok := st.firstSeen[id]; return ok })
			return len(missing) == 0
		}, "sink %s holds every one of the %d events of mt_events (%v missing)", name, len(events), lazy(func() any { return len(missing) }))
	}
}

// Report is what Env.Check found.
type Report struct {
	Test       string
	Events     int // events in mt_events: what every sink must hold
	Workload   WorkloadCounts
	Uncertain  int // events of uncertain commits that are in mt_events
	LostCommit int // events whose commit returned nil but are not in mt_events
	Resurrect  int // events rolled back on purpose that are in mt_events
	Sinks      []SinkReport
	Faults     []FaultReport
	// Notes are figures a test adds (Report.Note), such as the soak's
	// samples.
	Notes map[string]any `json:",omitempty"`
}

// Note adds a figure to the report (and to the -faults.report line).
func (r *Report) Note(key string, v any) {
	if r.Notes == nil {
		r.Notes = map[string]any{}
	}
	r.Notes[key] = v
}

// SinkReport is what one sink holds, compared with mt_events.
type SinkReport struct {
	Sink       string
	Kind       string
	Guarantee  string
	Records    int      // events held, copies included
	Distinct   int      // distinct events held
	Missing    int      // events of mt_events not held
	Duplicates int      // extra copies: Records - Distinct
	Absorbed   int64    // re-deliveries the target absorbed (Elasticsearch 409s)
	OutOfOrder int      // first deliveries behind an earlier one in the same ordering unit
	Unexpected int      // events held that are not in mt_events
	Torn       int      // unparsable lines (writes cut by SIGKILL), not events
	Problems   []string `json:",omitempty"` // the first few problems, for the failure message
}

// FaultReport is a Fault in a report.
type FaultReport struct {
	Name       string
	DurationMS int64
	RecoveryMS map[string]int64
}

// maxProblems bounds the examples a SinkReport keeps.
const maxProblems = 5

// Check compares every sink with mt_events and returns the report. The
// workload is stopped first; call it after WaitDelivered.
func (e *Env) Check() *Report {
	e.t.Helper()
	wl := e.currentWorkload()
	if wl != nil {
		wl.Stop()
	}
	events, err := marten.Events(e.t.Context(), e.Pool, Schema)
	mustDo(e.t, "read mt_events", err)
	mustDo(e.t, "read the sinks", e.watch.sync(true))
	committed := make(map[string]bool, len(events))
	for _, ev := range events {
		committed[ev.ID] = true
	}
	r := &Report{Test: e.t.Name(), Events: len(events)}
	if wl != nil {
		r.Workload = wl.Counts()
		wl.mu.Lock()
		for id := range wl.ackAt {
			if !committed[id] {
				r.LostCommit++
			}
		}
		for id := range wl.rolledBack {
			if committed[id] {
				r.Resurrect++
			}
		}
		for id := range wl.uncertain {
			if committed[id] {
				r.Uncertain++
			}
		}
		wl.mu.Unlock()
	}
	e.watch.mu.Lock()
	for _, st := range e.watch.states {
		r.Sinks = append(r.Sinks, st.report(committed, events))
	}
	e.watch.mu.Unlock()
	for _, f := range e.faults {
		fr := FaultReport{Name: f.Name, RecoveryMS: map[string]int64{}}
		if !f.End.IsZero() {
			fr.DurationMS = f.End.Sub(f.Start).Milliseconds()
		}
		for s, d := range f.Recovery {
			fr.RecoveryMS[s] = d.Milliseconds()
		}
		r.Faults = append(r.Faults, fr)
	}
	e.mu.Lock()
	e.report = r
	e.mu.Unlock()
	return r
}

// report compares what the sink holds with mt_events.
func (st *sinkState) report(committed map[string]bool, events []*cdc.Event) SinkReport {
	s := st.sink
	sr := SinkReport{Sink: s.Name(), Kind: s.Kind(), Guarantee: s.Guarantee().String(), Absorbed: s.absorbed()}
	problem := func(format string, args ...any) {
		if len(sr.Problems) < maxProblems {
			sr.Problems = append(sr.Problems, fmt.Sprintf(format, args...))
		}
	}
	seen := map[string]int{}
	high := map[string]Record{} // per unit, the furthest first delivery
	for i, rec := range st.records {
		if rec.Torn {
			sr.Torn++
			continue
		}
		sr.Records++
		seen[rec.ID]++
		if seen[rec.ID] > 1 {
			continue
		}
		if !committed[rec.ID] {
			sr.Unexpected++
			problem("record %d: event %s is not in mt_events", i, rec.ID)
		}
		if !s.Ordered() {
			continue
		}
		if h, ok := high[rec.Unit]; ok && !rec.Pos.after(h.Pos) {
			sr.OutOfOrder++
			problem("record %d in %s: event %s at %s first delivered after event %s at %s", i, rec.Unit, rec.ID, rec.Pos, h.ID, h.Pos)
			continue
		}
		high[rec.Unit] = rec
	}
	sr.Distinct = len(seen)
	sr.Duplicates = sr.Records - sr.Distinct
	for _, ev := range events {
		if seen[ev.ID] == 0 {
			sr.Missing++
			problem("event %s (stream %s version %d, seq_id %d) missing", ev.ID, ev.StreamID, ev.Version, ev.SeqID)
		}
	}
	if sr.Duplicates > 0 {
		var dups []string
		for id, n := range seen {
			if n > 1 {
				dups = append(dups, fmt.Sprintf("%s x%d", id, n))
			}
		}
		sort.Strings(dups)
		problem("duplicated: %s", strings.Join(dups[:min(len(dups), 5)], ", "))
	}
	return sr
}

// Expect is what a test requires beyond what every sink's guarantee
// requires.
type Expect struct {
	// NoDuplicates names at-least-once sinks that must hold no duplicate
	// in this test (for example when cdc itself was never killed).
	NoDuplicates []string
	// Stopped names sinks that stopped on a rejected event (on_error:
	// stop): they may miss events, the test checks which; everything else
	// (duplicates by their guarantee, order, unexpected events) holds.
	Stopped []string
}

// Assert fails the test unless: every acknowledged commit is in mt_events
// and no rolled-back event is; every sink holds every event of mt_events,
// nothing else, and in commit order within each ordering unit; exactly-once
// and effectively-once sinks hold each event once, and so do the sinks of
// x.NoDuplicates.
func (r *Report) Assert(e *Env, x Expect) {
	t := e.t
	t.Helper()
	if r.LostCommit > 0 || r.Resurrect > 0 {
		t.Errorf("PostgreSQL lost %d acknowledged events and kept %d rolled-back ones", r.LostCommit, r.Resurrect)
	}
	for _, s := range r.Sinks {
		bad := (s.Missing > 0 && !slices.Contains(x.Stopped, s.Sink)) || s.Unexpected > 0 || s.OutOfOrder > 0
		if s.Guarantee != AtLeastOnce.String() || slices.Contains(x.NoDuplicates, s.Sink) {
			bad = bad || s.Duplicates > 0
		}
		if bad {
			t.Errorf("sink %s (%s, %s): %d of %d events missing, %d duplicates, %d out of order, %d unexpected:\n  %s",
				s.Sink, s.Kind, s.Guarantee, s.Missing, r.Events, s.Duplicates, s.OutOfOrder, s.Unexpected, strings.Join(s.Problems, "\n  "))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// Records returns a copy of what the watcher read from the sink called
// name so far, in the order the target holds it per ordering unit.
func (e *Env) Records(name string) []Record {
	e.watch.mu.Lock()
	defer e.watch.mu.Unlock()
	st := e.watch.state(name)
	if st == nil {
		e.t.Fatalf("Records: no sink %s", name)
	}
	return append([]Record(nil), st.records...)
}

// Log writes the report to the test log as a table.
func (r *Report) Log(e *Env) {
	t := e.t
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%d events in mt_events; workload: %d committed, %d rolled back, %d uncertain (%d of them committed), %d failed transactions, %d errors\n",
		r.Events, r.Workload.Committed, r.Workload.RolledBack, r.Workload.Uncertain, r.Uncertain, r.Workload.Failed, r.Workload.Errors)
	fmt.Fprintf(&b, "%-10s %-8s %-16s %8s %8s %8s %8s %8s %8s %8s\n", "sink", "kind", "guarantee", "records", "distinct", "missing", "dups", "absorbed", "order", "torn")
	for _, s := range r.Sinks {
		fmt.Fprintf(&b, "%-10s %-8s %-16s %8d %8d %8d %8d %8d %8d %8d\n", s.Sink, s.Kind, s.Guarantee, s.Records, s.Distinct, s.Missing, s.Duplicates, s.Absorbed, s.OutOfOrder, s.Torn)
	}
	for _, f := range r.Faults {
		var parts []string
		for _, s := range r.Sinks {
			if d, ok := f.RecoveryMS[s.Sink]; ok {
				parts = append(parts, fmt.Sprintf("%s %dms", s.Sink, d))
			}
		}
		fmt.Fprintf(&b, "fault %q lasted %dms; recovery: %s\n", f.Name, f.DurationMS, strings.Join(parts, ", "))
	}
	t.Log("report:\n" + b.String())
}

// writeReport appends the Env's report as one JSON line to -faults.report.
func (e *Env) writeReport() {
	e.mu.Lock()
	r := e.report
	e.mu.Unlock()
	if *reportPath == "" || r == nil {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		e.t.Errorf("encode the report: %v", err)
		return
	}
	f, err := os.OpenFile(*reportPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		e.t.Errorf("open %s: %v", *reportPath, err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		e.t.Errorf("write %s: %v", *reportPath, err)
	}
}
