package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/martencdc/cdc"
)

// This file lets a backfill (package backfill: the events already in
// mt_events, read in a snapshot) feed one sink and hand it back to the live
// stream exactly. The boundary is a hand-off LSN H, the consistent point of
// the slot that exported the snapshot: the snapshot holds the transactions
// whose commit record starts before H, the live stream brings the others.
//
// A sink goes through these modes:
//
//   - held: it takes nothing from the live stream (as if detached) and its
//     flush LSN stays where it is, so the slot keeps the WAL it will need;
//   - catching up to H (only when the backfill covers part of the events, a
//     replay --from seq:N or --tenant): it takes the live stream up to H,
//     delivering the events the backfill does not cover and skipping those
//     it does;
//   - fed: it takes the backfill's pages, at positions (H-1, ordinal)
//     between every live event before H and every one after;
//   - handed back: it takes the live stream from H again, through the
//     Handoff's filter, until it has passed the last segment's start.

// Handoff says which live events a sink takes after its backfill.
type Handoff struct {
	// Scope reports whether an event is one the backfill covers (its
	// --from and --tenant); the live stream delivers the others.
	Scope func(*cdc.Event) bool
	// Segments are the snapshots the backfill read, in order of Start
	// (several when it was resumed after a crash). A live event committed
	// at or after a segment's Start, and before the next one's, is
	// delivered when it is outside Scope or Covered by that segment: no
	// later snapshot read it. The last segment covers everything.
	Segments []Segment
}

// Segment is one snapshot of a backfill.
type Segment struct {
	Start cdc.LSN // the snapshot's hand-off LSN
	// Covered reports whether an event's key is at or below where reading
	// stood when the next snapshot started; nil covers everything.
	Covered func(*cdc.Event) bool
}

// live reports whether a live event goes to the sink.
func (h *Handoff) live(e *cdc.Event) bool {
	if h.Scope != nil && !h.Scope(e) {
		return true
	}
	i := sort.Search(len(h.Segments), func(i int) bool { return h.Segments[i].Start > e.LSN }) - 1
	if i < 0 {
		return false // before the first snapshot: the backfill had it
	}
	s := h.Segments[i]
	return s.Covered == nil || s.Covered(e)
}

// end is where the filter stops mattering: the last segment's start.
func (h *Handoff) end() cdc.LSN {
	if len(h.Segments) == 0 {
		return 0
	}
	return h.Segments[len(h.Segments)-1].Start
}

// BackfillState is how a sink starts when the pipeline opens, from what
// the backfill's store says (SinkConfig.Backfill).
type BackfillState struct {
	// Held: a backfill is pending or in progress; the sink takes nothing
	// from the live stream until Backfill.Begin or Backfill.Resume.
	Held bool
	// Handoff, when Held is false, is the filter of a backfill that
	// finished and that the sink has not passed yet.
	Handoff *Handoff
}

// ErrAbandoned is returned to a backfill whose pages the sink dropped: the
// stream lost the slot, and the instance that holds it now resumes the
// backfill.
var ErrAbandoned = errors.New("the stream gave the slot up; the backfill resumes where the sink got to")

// Backfill is a sink's side of a backfill, for the package that reads the
// table. Its methods block until the sink's goroutine has done what they
// ask, or ctx ends.
type Backfill struct {
	r     *runner
	epoch uint64
}

// Backfill returns the backfill side of sink.
func (p *Pipeline) Backfill(sink string) (*Backfill, error) {
	for _, r := range p.runners {
		if r.name == sink {
			return &Backfill{r: r}, nil
		}
	}
	return nil, fmt.Errorf("pipeline %s has no sink %s", p.cfg.Name, sink)
}

// Hold stops the sink taking the live stream: it writes what it has, saves
// its checkpoint and from then on takes nothing live (its flush LSN stays).
// Call it before creating the snapshot, so that the sink has taken nothing
// at or after the hand-off LSN.
func (b *Backfill) Hold(ctx context.Context) error {
	return b.control(ctx, &control{kind: controlHold})
}

// Begin starts a backfill at hand-off LSN h covering scope (nil: every
// event). When scope is not everything, the sink first takes the live
// stream up to h again (the slot is read again for it), delivering what
// scope leaves out; Begin returns once it has passed h. The sink must be
// held.
func (b *Backfill) Begin(ctx context.Context, h cdc.LSN, scope func(*cdc.Event) bool) error {
	return b.control(ctx, &control{kind: controlBegin, h: h, scope: scope})
}

// Resume continues a backfill the sink was fed before (its checkpoint is at
// a backfill position): it takes pages again at once. The sink must be
// held.
func (b *Backfill) Resume(ctx context.Context) error {
	return b.control(ctx, &control{kind: controlResume})
}

// Abort drops the pages the sink has not written and takes it back to its
// last checkpoint: the backfill stops here (the instance lost the slot, or
// the backfill failed) and resumes, on whichever instance holds the slot,
// from what the sink made durable. The sink stays held.
func (b *Backfill) Abort(ctx context.Context) error {
	b.r.bfGen.Add(1) // at once: a write waiting for the stream gives up
	return b.control(ctx, &control{kind: controlAbort})
}

// Abandoned reports whether the sink dropped this backfill's pages (Abort).
func (b *Backfill) Abandoned() bool { return b.r.bfGen.Load() != b.epoch }

// Feed hands the sink backfilled events, in order, with their positions
// set. It returns once they are queued; Durable says when they are written.
func (b *Backfill) Feed(ctx context.Context, events []*cdc.Event) error {
	if b.Abandoned() {
		return ErrAbandoned
	}
	items := make([]item, len(events))
	for i, e := range events {
		items[i] = item{kind: itemEvent, pos: e.Position(), event: e}
	}
	b.r.queued.Add(int64(len(items)))
	if err := b.r.send(ctx, chunk{epoch: b.epoch, items: items, backfill: true}); err != nil {
		b.r.queued.Add(-int64(len(items)))
		return err
	}
	return nil
}

// Stopped reports whether the sink stopped on an event its target rejected
// (on_error: stop): it takes nothing more until restarted.
func (b *Backfill) Stopped() bool { return b.r.stopped.Load() }

// Durable returns the position of the sink's last saved checkpoint: every
// event at or below it is durable in the sink. Safe for concurrent use.
func (b *Backfill) Durable() cdc.Position { return b.r.durable() }

// Finish waits until every event fed is written and saved, then hands the
// sink back to the live stream through h's filter: its checkpoint moves to
// just below the first segment's start and the slot is read again for it.
func (b *Backfill) Finish(ctx context.Context, h *Handoff) error {
	return b.control(ctx, &control{kind: controlFinish, handoff: h})
}

// control sends a control item to the sink's goroutine and waits for it to
// be done.
func (b *Backfill) control(ctx context.Context, c *control) error {
	c.done = make(chan error, 1)
	if err := b.r.send(ctx, chunk{control: c}); err != nil {
		return err
	}
	select {
	case <-b.r.done:
		return errClosed
	case err := <-c.done:
		if err == nil && (c.kind == controlBegin || c.kind == controlResume) {
			b.epoch = c.epoch
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type controlKind uint8

const (
	controlHold controlKind = iota + 1
	controlBegin
	controlResume
	controlFinish
	controlAbort
)

// control is a request of a backfill to the sink's goroutine.
type control struct {
	kind    controlKind
	h       cdc.LSN
	scope   func(*cdc.Event) bool
	handoff *Handoff
	epoch   uint64     // set by the runner: the generation of the pages to come
	done    chan error // closed, or sent the error, when it is done
}

// armed is a mode the sink enters with the stream's next connection.
type armed struct {
	catchUp *catchUp
	handoff *Handoff
}

// arm makes an armed mode current: the stream abandoned its connection, so
// what comes next comes from the slot's confirmed position. It runs on the
// stream's goroutine (Pipeline.Abandon), before the next connection.
func (r *runner) arm() {
	a := r.armed.Swap(nil)
	if a == nil {
		return
	}
	if a.catchUp != nil {
		r.catchUpH.Store(uint64(a.catchUp.h))
	}
	r.live.Store(a)
	r.backfilling.Store(false)
}

// takeArmed applies an armed mode on the runner's goroutine, before the
// first live chunk of the new connection.
func (r *runner) takeArmed() {
	a := r.live.Swap(nil)
	if a == nil {
		return
	}
	r.catchUp = a.catchUp
	r.handoff = a.handoff
	if r.handoff != nil && r.handoff.end() <= r.consumed.LSN {
		r.handoff = nil
	}
}

// catchUp is the runner's mode while it takes the live stream up to h.
type catchUp struct {
	h     cdc.LSN
	scope func(*cdc.Event) bool
	ready chan error // the Begin waiting for it
}

// handle carries out a backfill's request; it runs on the runner's
// goroutine.
func (r *runner) handle(ctx context.Context, c *control) {
	switch c.kind {
	case controlHold:
		if err := r.flush(ctx); err != nil {
			c.done <- err
			return
		}
		r.catchUp = nil
		r.backfilling.Store(true)
		c.done <- nil
	case controlResume:
		r.catchUp = nil
		r.backfilling.Store(true)
		c.epoch = r.bfGen.Load()
		c.done <- nil
	case controlAbort:
		if r.backfilling.Load() {
			r.drop()
		}
		c.done <- nil
	case controlBegin:
		if c.scope == nil {
			// Every event before h is in the snapshot: nothing to take
			// from the live stream first.
			r.backfilling.Store(true)
			c.epoch = r.bfGen.Load()
			c.done <- nil
			return
		}
		// The live events it needs before h may be behind the stream: the
		// slot is read again, and the sink takes the live stream from the
		// new connection on (Pipeline.Abandon arms it), never from the
		// current one, which may be past what it needs.
		r.pendingBegin = c
		r.armed.Store(&armed{catchUp: &catchUp{h: c.h, scope: c.scope, ready: c.done}})
		r.restart()
	case controlFinish:
		if err := r.flush(ctx); err != nil {
			c.done <- err
			return
		}
		first := c.handoff.Segments[0].Start
		end := cdc.Position{LSN: first - 1, Index: cdc.EndOfTx}
		if end.Compare(r.consumed) > 0 {
			r.consumed = end
		}
		r.consumedFlush = max(r.consumedFlush, first-1)
		if err := r.saveAt(ctx, r.consumed, r.consumedFlush, r.consumedTime); err != nil {
			c.done <- err
			return
		}
		// The sink takes the live stream from the next connection on,
		// read again from the slot's confirmed position: the current one
		// may be past the hand-off LSN.
		r.armed.Store(&armed{handoff: c.handoff})
		r.restart()
		c.done <- nil
	}
}

// caughtUp ends the catch-up to h: the sink has taken every live event
// before h. It writes what it has, saves, and waits for the pages.
func (r *runner) caughtUp(ctx context.Context) error {
	if err := r.flush(ctx); err != nil {
		return err
	}
	cu := r.catchUp
	r.catchUp = nil
	r.catchUpH.Store(0)
	r.backfilling.Store(true)
	c := r.pendingBegin
	r.pendingBegin = nil
	if c != nil {
		c.epoch = r.bfGen.Load()
	}
	cu.ready <- nil
	return nil
}
