package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/decoder"
)

// This file implements cdc.Consumer: what the replication stream calls.

var _ cdc.Consumer = (*Pipeline)(nil)

// Open implements cdc.Consumer: it forgets the partial state of the previous
// connection, reloads the checkpoints and re-attaches every sink.
func (p *Pipeline) Open(ctx context.Context) error {
	p.hear()
	p.skewKnown = false
	p.dec.Reset()
	p.chunk = nil
	p.inTx = false
	if p.pending != nil {
		p.pending.reset()
	}
	cps, err := p.cfg.Checkpoints.Load(ctx, p.cfg.Name)
	if err != nil {
		return fmt.Errorf("pipeline %s: %w", p.cfg.Name, err)
	}
	for _, r := range p.runners {
		cp, ok := cps[r.name]
		own, ownOK, err := r.ownCheckpoint(ctx, cp, ok)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The sink's target is down: it waits on its own, the
			// others start at once.
			if err := r.attachUnresumed(ctx, cp, ok, !p.opened, err); err != nil {
				return err
			}
			continue
		}
		if err := r.attach(ctx, own, ownOK, !p.opened); err != nil {
			return err
		}
	}
	p.opened = true
	return nil
}

// Message implements cdc.Consumer: it decodes one pgoutput message and hands
// the chunk to the sinks at a commit or when it is full.
func (p *Pipeline) Message(ctx context.Context, data []byte) error {
	m, err := p.dec.Decode(data)
	if err != nil {
		return fmt.Errorf("pipeline %s: %w", p.cfg.Name, err)
	}
	switch m.Kind {
	case decoder.KindBegin:
		p.inTx = true
		return nil
	case decoder.KindEvent:
		p.received.Add(1)
		if p.pending != nil {
			p.pending.add(m.Event, p.lowestDurable)
		}
		p.chunk = append(p.chunk, item{kind: itemEvent, pos: m.Position, event: m.Event})
	case decoder.KindSkip:
		// Not an event; the commit that follows covers its position.
		p.skipped.Add(1)
		return nil
	case decoder.KindCommit:
		p.inTx = false
		p.lastEnd = max(p.lastEnd, m.EndLSN)
		p.chunk = append(p.chunk, item{kind: itemCommit, pos: cdc.Position{LSN: m.CommitLSN, Index: cdc.EndOfTx}, end: m.EndLSN, commitTime: m.CommitTime})
		return p.dispatch(ctx)
	default:
		return nil
	}
	if len(p.chunk) >= chunkSize {
		return p.dispatch(ctx)
	}
	return nil
}

// Idle implements cdc.Consumer: every sink is told, behind the chunks
// already handed to it, that nothing more is coming for now, and writes its
// pending batch without waiting out its linger (MaxWait). A sink whose queue
// is full is busy anyway: it is not told, and its linger bounds the wait.
func (p *Pipeline) Idle() {
	if p.inTx {
		return
	}
	for _, r := range p.runners {
		r.tryEnqueue(p.idleItems)
	}
}

// Advanced implements cdc.Consumer.
func (p *Pipeline) Advanced() <-chan struct{} { return p.advanced }

// Keepalive implements cdc.Consumer.
func (p *Pipeline) Keepalive(walEnd cdc.LSN) {
	if p.inTx {
		return
	}
	if walEnd > p.idleEnd && p.Confirmable() < walEnd {
		// Confirm the idle end promptly: other instances answer waits
		// (read your writes) from the slot's confirmed position.
		defer p.signalAdvanced()
	}
	p.idleEnd = max(p.idleEnd, walEnd)
	f := &frontier{wal: walEnd, dispatched: p.lastEnd}
	for _, r := range p.runners {
		r.offerFrontier(f)
		// A sink catching up to a backfill's hand-off LSN learns that the
		// stream has passed it even when nothing is committed.
		if h := r.catchUpH.Load(); h != 0 && uint64(walEnd) >= h {
			r.tryEnqueue([]item{{kind: itemFrontier, end: walEnd}})
		}
	}
}

// Confirmable implements cdc.Consumer: the minimum of the sinks' saved flush
// LSNs, or the server's WAL end when every sink has saved everything
// dispatched and no transaction is open.
func (p *Pipeline) Confirmable() cdc.LSN {
	lowest := ^cdc.LSN(0)
	caughtUp := !p.inTx
	for _, r := range p.runners {
		f := r.flushLSN()
		lowest = min(lowest, f)
		if f < p.lastEnd {
			caughtUp = false
		}
	}
	if caughtUp {
		lowest = max(lowest, p.idleEnd)
	}
	return lowest
}

// Abandon implements cdc.Consumer: every sink drops what it holds of the
// connection; the next Open starts again from the checkpoints. A lost
// connection cancels the sinks' writes in flight. On a restart a healthy
// sink's write in flight finishes and is saved, so the slot read again does
// not deliver it twice; a failing sink's retries are cancelled.
func (p *Pipeline) Abandon(restart bool) {
	p.chunk = nil
	p.inTx = false
	for _, r := range p.runners {
		r.abandon(!restart || r.failing.Load())
		r.arm()
	}
}

// Heard implements cdc.Consumer: the sinks write only while the stream
// hands over data the server sent lately. The server's clock is compared
// with this host's through the smallest difference seen on the connection
// (network delay plus clock skew), so that skew does not count as age.
func (p *Pipeline) Heard(sent time.Time) {
	now := time.Now()
	d := now.Sub(sent)
	if !p.skewKnown || d < p.skew {
		p.skew, p.skewKnown = d, true
	}
	p.heard.Store(sent.Add(p.skew).UnixNano())
}

// Restart implements cdc.Consumer.
func (p *Pipeline) Restart() <-chan struct{} { return p.restart }

// Drain implements cdc.Consumer: it hands every sink what was received, waits
// for them to write it and save their checkpoints.
func (p *Pipeline) Drain(ctx context.Context) error {
	p.drained = true
	p.draining.Store(true)
	if len(p.chunk) > 0 {
		// A transaction cut short by the shutdown: its first rows are
		// valid positions and can be delivered and checkpointed.
		if err := p.dispatch(ctx); err != nil {
			p.log.Warn("could not hand the last rows to every sink; they are read again at the next start", "err", err)
		}
	}
	p.closeInputs()
	var errs []error
	for _, r := range p.runners {
		if err := r.wait(ctx); err != nil {
			p.log.Error("sink could not flush before the shutdown timeout; it resumes from its checkpoint at the next start",
				"sink", r.name, "lsn", r.flushLSN().String(), "err", err)
			errs = append(errs, fmt.Errorf("sink %s: %w: %w", r.name, ErrNotFlushed, err))
		}
	}
	return errors.Join(errs...)
}

// ErrNotFlushed matches the error of a clean stop in which a sink could not
// write what it had received: nothing is lost (the sink resumes from its
// checkpoint at the next start), but the stop was not clean.
var ErrNotFlushed = errors.New("did not flush")
