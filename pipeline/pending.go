package pipeline

import (
	"sort"
	"sync"

	"github.com/martencdc/cdc"
)

// This file keeps, when Config.TrackPending is set, the seq_ids of the
// events the stream received that some sink may not have made durable yet,
// so that a sink's progress in Marten's terms (the highest seq_id below
// which nothing is pending, package progression) can leave out what is
// still on its way: concurrent appends commit out of seq_id order.

// maxPending bounds the events kept; beyond it the oldest are dropped (a
// sink far behind, detached or stopped, then sees fewer of them pending).
const maxPending = 1 << 18

// pendingEvent is one received event.
type pendingEvent struct {
	pos    cdc.Position
	tenant string
	seq    int64
}

// pendingLog holds the received events in stream order since the lowest
// durable position of the sinks. Safe for concurrent use.
type pendingLog struct {
	mu     sync.Mutex
	events []pendingEvent
	adds   int
}

// add records a received event. Stream goroutine.
func (l *pendingLog) add(e *cdc.Event, lowest func() cdc.Position) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.adds++; l.adds%1024 == 0 {
		l.trim(lowest())
	}
	if len(l.events) >= maxPending {
		l.events = append(l.events[:0], l.events[len(l.events)-maxPending/2:]...)
	}
	l.events = append(l.events, pendingEvent{pos: e.Position(), tenant: e.TenantID, seq: e.SeqID})
}

// reset forgets everything: a new connection sends it again. Stream
// goroutine.
func (l *pendingLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = l.events[:0]
}

// trim drops the events at or below p. l.mu is held.
func (l *pendingLog) trim(p cdc.Position) {
	i := sort.Search(len(l.events), func(i int) bool { return l.events[i].pos.Compare(p) > 0 })
	if i > 0 {
		l.events = append(l.events[:0], l.events[i:]...)
	}
}

// after returns, by tenant, the lowest seq_id of the events received after
// p.
func (l *pendingLog) after(p cdc.Position) map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.events), func(i int) bool { return l.events[i].pos.Compare(p) > 0 })
	out := map[string]int64{}
	for _, e := range l.events[i:] {
		if cur, ok := out[e.tenant]; !ok || e.seq < cur {
			out[e.tenant] = e.seq
		}
	}
	return out
}

// lowestDurable returns the lowest durable position over the sinks.
func (p *Pipeline) lowestDurable() cdc.Position {
	var low cdc.Position
	for i, r := range p.runners {
		if d := r.durable(); i == 0 || d.Compare(low) < 0 {
			low = d
		}
	}
	return low
}

// PendingSeq returns, by tenant id, the lowest seq_id of the events the
// stream has received after position after (the last event sink wrote)
// and after sink's saved checkpoint: the events still on their way to the
// sink (events its filters skip count until its checkpoint passes them).
// It needs Config.TrackPending (nil otherwise). Safe for concurrent use.
func (p *Pipeline) PendingSeq(sink string, after cdc.Position) map[string]int64 {
	if p.pending == nil {
		return nil
	}
	for _, r := range p.runners {
		if r.name == sink {
			if d := r.durable(); d.Compare(after) > 0 {
				after = d
			}
		}
	}
	return p.pending.after(after)
}
