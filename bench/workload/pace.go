package workload

import (
	"context"
	"sync"
	"time"
)

// pacer spaces the transactions of all writers so that their events start
// at a given rate: each transaction reserves the next slot of a shared
// schedule, as long as its events take at the rate, and waits for it.
// Slots are absolute times, so waiting late does not add up; but when
// every writer is late (the server cannot keep up) the schedule restarts
// from now rather than letting the writers burst to catch up.
type pacer struct {
	perEvent float64 // nanoseconds per event

	mu   sync.Mutex
	next time.Time // the next free slot
}

// reserve returns the start of the next slot for n events at now and
// moves the schedule on.
func (p *pacer) reserve(n int, now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = at.Add(time.Duration(float64(n) * p.perEvent))
	return at
}

// wait reserves a slot for n events and waits for it. It returns false if
// ctx ended first.
func (p *pacer) wait(ctx context.Context, n int) bool {
	d := time.Until(p.reserve(n, time.Now()))
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
