package bench

import (
	"slices"
	"sync"
	"time"
)

// arrivals records, per event id, when something happened to it (its commit,
// its arrival at a sink). Safe for concurrent use.
type arrivals struct {
	mu sync.Mutex
	at map[string]time.Time
}

func newArrivals() *arrivals { return &arrivals{at: make(map[string]time.Time)} }

// mark records t for id, keeping the first time an id is seen (a duplicate
// arrival does not make the event later).
func (a *arrivals) mark(id string, t time.Time) {
	a.mu.Lock()
	if _, ok := a.at[id]; !ok {
		a.at[id] = t
	}
	a.mu.Unlock()
}

// count returns how many ids were marked.
func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// has reports whether every id of commits arrived.
func (a *arrivals) hasAll(commits *arrivals) bool {
	commits.mu.Lock()
	ids := make([]string, 0, len(commits.at))
	for id := range commits.at {
		ids = append(ids, id)
	}
	commits.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if _, ok := a.at[id]; !ok {
			return false
		}
	}
	return true
}

// Latency summarises the delays from commit to arrival.
type Latency struct {
	Events  int           // events that arrived
	Missing int           // committed events that did not arrive
	P50     time.Duration // median
	P99     time.Duration
	Max     time.Duration
}

// latency compares the arrivals of the committed events with their commit
// times.
func latency(commits, arrived *arrivals) Latency {
	commits.mu.Lock()
	defer commits.mu.Unlock()
	arrived.mu.Lock()
	defer arrived.mu.Unlock()
	var ds []time.Duration
	var l Latency
	for id, c := range commits.at {
		a, ok := arrived.at[id]
		if !ok {
			l.Missing++
			continue
		}
		ds = append(ds, max(0, a.Sub(c)))
	}
	l.Events = len(ds)
	if len(ds) == 0 {
		return l
	}
	slices.Sort(ds)
	l.P50 = quantile(ds, 0.50)
	l.P99 = quantile(ds, 0.99)
	l.Max = ds[len(ds)-1]
	return l
}

// quantile returns the q-quantile of sorted ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
