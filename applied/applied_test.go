package applied_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/applied"
)

// table is a Source whose progress the test sets, counting its reads.
type table struct {
	mu    sync.Mutex
	sinks map[string]applied.Progress
	err   error
	reads atomic.Int64
}

func (f *table) Progress(context.Context) (map[string]applied.Progress, error) {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := make(map[string]applied.Progress, len(f.sinks))
	for k, v := range f.sinks {
		out[k] = v
	}
	return out, nil
}

func (f *table) set(sink string, p applied.Progress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sinks == nil {
		f.sinks = map[string]applied.Progress{}
	}
	f.sinks[sink] = p
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// result is the outcome of one Wait in the background.
type result struct {
	a   applied.Answer
	err error
}

func waitAsync(ctx context.Context, tr *applied.Tracker, pipeline, sink string, lsn cdc.LSN) <-chan result {
	ch := make(chan result, 1)
	go func() {
		a, err := tr.Wait(ctx, pipeline, sink, lsn)
		ch <- result{a, err}
	}()
	return ch
}

func TestUnknown(t *testing.T) {
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}}}, 0, nil)
	for _, tc := range []struct {
		pipeline, sink string
		want           error
	}{
		{"nope", "s", applied.ErrUnknownPipeline},
		{"p", "nope", applied.ErrUnknownSink},
	} {
		if _, err := tr.Wait(t.Context(), tc.pipeline, tc.sink, 1); !errors.Is(err, tc.want) {
			t.Errorf("Wait(%s, %s) = %v, want %v", tc.pipeline, tc.sink, err, tc.want)
		}
	}
}

// TestAdvanceReleasesInOrder: an advance releases exactly the waiters at or
// below it, the others sleep on until theirs.
func TestAdvanceReleasesInOrder(t *testing.T) {
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"a", "b"}}}, 0, nil)
	ctx := t.Context()
	var chans []<-chan result
	for _, lsn := range []cdc.LSN{30, 10, 20, 40} {
		chans = append(chans, waitAsync(ctx, tr, "p", "a", lsn))
	}
	other := waitAsync(ctx, tr, "p", "b", 10)
	eventually(t, "5 waiters asleep", func() bool { return tr.Waiters() == 5 })
	tr.Advance("p", "a", 20)
	for _, i := range []int{1, 2} {
		r := <-chans[i]
		if r.err != nil || !r.a.Applied || r.a.Progress.Reached != 20 {
			t.Fatalf("waiter %d: %+v", i, r)
		}
	}
	if n := tr.Waiters(); n != 3 {
		t.Fatalf("%d waiters asleep after the advance to 20, want 3", n)
	}
	tr.Advance("p", "a", 15) // backwards: ignored
	tr.Advance("p", "a", 40)
	for _, i := range []int{0, 3} {
		if r := <-chans[i]; !r.a.Applied || r.a.Progress.Reached != 40 {
			t.Fatalf("waiter %d: %+v", i, r)
		}
	}
	select {
	case r := <-other:
		t.Fatalf("sink b's waiter released by sink a's advance: %+v", r)
	default:
	}
	// Already reached: answered at once.
	if a, err := tr.Wait(ctx, "p", "a", 40); err != nil || !a.Applied {
		t.Fatalf("wait for a reached LSN: %+v, %v", a, err)
	}
	tr.Advance("p", "b", 10)
	if r := <-other; !r.a.Applied {
		t.Fatalf("sink b: %+v", r)
	}
}

// TestStandbyAnswersFromTable: with no local pipeline, waits are answered
// from the Source, read only while someone waits.
func TestStandbyAnswersFromTable(t *testing.T) {
	tab := &table{}
	tab.set("s", applied.Progress{Reached: 100, Flush: 100, State: cdc.SinkOK})
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}, Table: tab}}, 10*time.Millisecond, nil)
	ctx := t.Context()
	a, err := tr.Wait(ctx, "p", "s", 100)
	if err != nil || !a.Applied || a.From != applied.FromTable {
		t.Fatalf("wait for a position the table has: %+v, %v", a, err)
	}
	ch := waitAsync(ctx, tr, "p", "s", 200)
	eventually(t, "a waiter", func() bool { return tr.Waiters() == 1 })
	tab.set("s", applied.Progress{Reached: 250, Flush: 180, State: cdc.SinkOK})
	if r := <-ch; !r.a.Applied || r.a.Progress.Reached != 250 || r.a.Progress.Flush != 180 {
		t.Fatalf("after the table moved: %+v", r)
	}
	// No waiter, no reads.
	eventually(t, "the poller to end", func() bool {
		n := tab.reads.Load()
		time.Sleep(50 * time.Millisecond)
		return tab.reads.Load() == n
	})
}

// TestSinkStates: a stopped sink answers at once, with its error; a failing
// or detached one when the wait's context ends, with its state and error;
// a healthy one that is merely behind, likewise, with state ok.
func TestSinkStates(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		state cdc.SinkState
		early bool // answered before the context ends
	}{
		{cdc.SinkStopped, true},
		{cdc.SinkFailing, false},
		{cdc.SinkDetached, false},
		{cdc.SinkOK, false},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			tab := &table{}
			tab.set("s", applied.Progress{Reached: 10, Flush: 10, State: tc.state, Since: since, Error: "boom"})
			tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}, Table: tab}}, 10*time.Millisecond, nil)
			const timeout = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			a, err := tr.Wait(ctx, "p", "s", 20)
			if err != nil {
				t.Fatal(err)
			}
			if a.Applied || a.Progress.State != tc.state || a.Progress.Error != "boom" || !a.Progress.Since.Equal(since) || a.From != applied.FromTable {
				t.Fatalf("answer %+v", a)
			}
			if early := ctx.Err() == nil; early != tc.early {
				t.Fatalf("answered before the timeout: %v, want %v", early, tc.early)
			}
		})
	}
}

// TestLocalStopped: a local pipeline that holds the slot and has the sink
// stopped answers at once, from its own state.
func TestLocalStopped(t *testing.T) {
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}, Local: func() (map[string]applied.Progress, bool) {
		return map[string]applied.Progress{"s": {Reached: 5, State: cdc.SinkStopped, Error: "rejected"}}, true
	}}}, 0, nil)
	a, err := tr.Wait(t.Context(), "p", "s", 6)
	if err != nil || a.Applied || a.From != applied.FromLocal || a.Progress.State != cdc.SinkStopped {
		t.Fatalf("answer %+v, %v", a, err)
	}
}

// TestTableUnreadable: the answer at the timeout carries the table's error.
func TestTableUnreadable(t *testing.T) {
	tab := &table{err: errors.New("connection refused")}
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}, Table: tab}}, 10*time.Millisecond, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	a, err := tr.Wait(ctx, "p", "s", 1)
	if err != nil || a.Applied || a.Err == nil || a.Err.Error() != "connection refused" {
		t.Fatalf("answer %+v, %v", a, err)
	}
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestManyIdleWaiters: 10,000 concurrent waiters cost no measurable CPU
// while idle (nothing polls per waiter; the one table poller reads every
// PollInterval) and are all released, each by the advance that satisfies it.
func TestManyIdleWaiters(t *testing.T) {
	const n = 10_000
	tab := &table{}
	tab.set("s", applied.Progress{Reached: 0, State: cdc.SinkOK})
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}, Table: tab}}, 0, nil)
	ctx := t.Context()
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := tr.Wait(ctx, "p", "s", cdc.LSN(i+1))
			if err != nil || !a.Applied || a.Progress.Reached < cdc.LSN(i+1) {
				wrong.Add(1)
			}
		}()
	}
	eventually(t, "10,000 waiters asleep", func() bool { return tr.Waiters() == n })
	const idle = time.Second
	readsBefore := tab.reads.Load()
	before := cpuTime(t)
	time.Sleep(idle) // measuring an idle interval, not synchronising
	used := cpuTime(t) - before
	reads := tab.reads.Load() - readsBefore
	t.Logf("%d idle waiters: %v of CPU over %v (%.2f%% of one core), %d table reads", n, used, idle, 100*used.Seconds()/idle.Seconds(), reads)
	// Loose, so that a loaded machine (other test processes) does not fail
	// it: a busy loop per waiter would use the whole second many times over.
	if used > idle/4 {
		t.Errorf("%d idle waiters used %v of CPU in %v", n, used, idle)
	}
	tr.Advance("p", "s", n/2)
	eventually(t, "half released", func() bool { return tr.Waiters() == n/2 })
	tab.set("s", applied.Progress{Reached: n, State: cdc.SinkOK}) // the rest through the table
	wg.Wait()
	if w := wrong.Load(); w != 0 {
		t.Fatalf("%d waiters got a wrong answer", w)
	}
	if tr.Waiters() != 0 {
		t.Fatalf("%d waiters left", tr.Waiters())
	}
}

// TestLocalHolderSparesTheTable: while the pipeline streaming here holds
// the slot (it pushes its moves), a wait does not make the tracker read the
// table at once, only at the poll interval.
func TestLocalHolderSparesTheTable(t *testing.T) {
	tab := &table{}
	tab.set("s", applied.Progress{Reached: 1, State: cdc.SinkOK})
	local := func() (map[string]applied.Progress, bool) {
		return map[string]applied.Progress{"s": {Reached: 1, State: cdc.SinkOK}}, true
	}
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"s"}, Local: local, Table: tab}}, time.Hour, nil)
	ch := waitAsync(t.Context(), tr, "p", "s", 5)
	eventually(t, "a waiter", func() bool { return tr.Waiters() == 1 })
	tr.Advance("p", "s", 5)
	if r := <-ch; !r.a.Applied || r.a.From != applied.FromLocal {
		t.Fatalf("answer %+v", r)
	}
	if n := tab.reads.Load(); n != 0 {
		t.Fatalf("%d table reads for a wait the local pipeline answered", n)
	}
}
