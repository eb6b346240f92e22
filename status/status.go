// Package status reads what a configured pipeline is doing from its
// databases, without running it: the replication slot (active, holder,
// confirmed position, retained WAL) and each sink's checkpoint and lag. It
// is what cdc status prints; any instance can read it, running or not.
package status

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/assemble"
	"github.com/martencdc/cdc/backfill"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

// peekLimit bounds how many pending changes status reads from an inactive
// slot to count the events each sink lacks.
const peekLimit = 200000

// Slot is the state of a pipeline's replication slot.
type Slot struct {
	Name              string `json:"name"`
	Exists            bool   `json:"exists"`
	Active            bool   `json:"active"`
	ActivePID         int32  `json:"active_pid,omitempty"`
	Holder            string `json:"holder,omitempty"`
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn,omitempty"`
	RetainedWALBytes  int64  `json:"retained_wal_bytes"`
	WALStatus         string `json:"wal_status,omitempty"`
	// Lost is true when PostgreSQL removed WAL the slot still needed
	// (wal_status lost): the events since the sinks' checkpoints can no
	// longer be read from it. Recovery says what to do.
	Lost     bool   `json:"lost,omitempty"`
	Recovery string `json:"recovery,omitempty"`
}

// Sink is one sink's checkpoint and lag.
type Sink struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Checkpoint string `json:"checkpoint,omitempty"` // position "LSN#index"
	FlushLSN   string `json:"flush_lsn,omitempty"`
	LagBytes   int64  `json:"lag_bytes"`
	LagEvents  int64  `json:"lag_events"`
	// LagEventsAtLeast is true when LagEvents is a lower bound (a long
	// backlog was counted only in part).
	LagEventsAtLeast bool    `json:"lag_events_at_least,omitempty"`
	LagSeconds       float64 `json:"lag_seconds"`
	Delivered        int64   `json:"delivered"`
	// LagEventsUnknown is true when the pending events cannot be counted
	// (the slot is lost).
	LagEventsUnknown bool      `json:"lag_events_unknown,omitempty"`
	Instance         string    `json:"instance,omitempty"`
	UpdatedAt        time.Time `json:"updated_at,omitzero"`
	// State is what the instance that last wrote the checkpoint row
	// reported: ok, failing, detached or stopped; Since is when the sink
	// entered it and Error why (the last failure, or the rejected event
	// and the reason it stopped).
	State cdc.SinkState `json:"state"`
	Since time.Time     `json:"since,omitzero"`
	Error string        `json:"error,omitempty"`
	// Backfill is the sink's backfill in progress or last finished
	// (source.start, start: beginning, cdc replay), if any.
	Backfill *Backfill `json:"backfill,omitempty"`
}

// Backfill is a sink's backfill as cdc_backfills records it.
type Backfill struct {
	State      string    `json:"state"` // requested, running or done
	From       string    `json:"from"`  // beginning, seq:N or time:T
	Tenants    []string  `json:"tenants,omitempty"`
	Done       int64     `json:"done"`  // events durable in the sink
	Total      int64     `json:"total"` // events to deliver, as counted so far
	Rate       float64   `json:"rate"`  // events per second lately
	Segments   int       `json:"segments"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	Instance   string    `json:"instance,omitempty"`
	Error      string    `json:"error,omitempty"`
	HandOffLSN string    `json:"handoff_lsn,omitempty"` // the first snapshot's hand-off LSN
}

// Pipeline is the status of one pipeline; Error is set when some of it
// could not be read.
type Pipeline struct {
	Name       string `json:"name"`
	CurrentWAL string `json:"current_wal_lsn,omitempty"`
	Slot       Slot   `json:"slot"`
	Sinks      []Sink `json:"sinks"`
	// Connected is false when the source database could not be reached:
	// then Error says why and nothing else is known (not even whether
	// the slot exists).
	Connected bool   `json:"connected"`
	Error     string `json:"error,omitempty"`
}

// Read reads the status of pc from its databases: the slot, and each sink's
// checkpoint and lag. When no instance holds the slot, it reads the slot's
// pending changes without consuming them (at most 200,000) to count, per
// sink and through its filters, the events the sink has not received.
func Read(ctx context.Context, pc *config.Pipeline) Pipeline {
	ps := Pipeline{Name: pc.Name, Slot: Slot{Name: pc.Source.Slot}}
	fail := func(err error) Pipeline {
		ps.Error = err.Error()
		return ps
	}
	src, err := assemble.NewPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	if err := assemble.WaitReachable(ctx, src, "the source database", false, nil); err != nil {
		return fail(err)
	}
	ps.Connected = true
	slot, err := replication.Slot(ctx, src, pc.Source.Slot)
	if err != nil {
		return fail(err)
	}
	var current cdc.LSN
	if slot.Exists {
		current = slot.CurrentWAL
		ps.Slot = Slot{
			Name: pc.Source.Slot, Exists: true, Active: slot.Active, ActivePID: slot.ActivePID, Holder: slot.Holder,
			ConfirmedFlushLSN: slot.ConfirmedFlush.String(), RetainedWALBytes: slot.RetainedBytes, WALStatus: slot.WALStatus,
		}
		if slot.WALStatus == "lost" {
			ps.Slot.Lost = true
			ps.Slot.Recovery = strings.ReplaceAll(replication.LostSlotRecovery, "--pipeline NAME", "--pipeline "+pc.Name)
		}
	} else {
		var s string
		if err := src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
			return fail(fmt.Errorf("read current WAL position: %w", err))
		}
		current, _ = cdc.ParseLSN(s)
	}
	ps.CurrentWAL = current.String()

	cpPool := src
	if pc.Checkpoints.DSN != pc.Source.DSN {
		if cpPool, err = assemble.NewPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn"); err != nil {
			return fail(err)
		}
		defer cpPool.Close()
	}
	cps, err := checkpoint.New(cpPool, pc.Checkpoints.Schema).Load(ctx, pc.Name)
	if err != nil {
		return fail(err)
	}
	backfills, err := backfill.NewStore(cpPool, pc.Checkpoints.Schema).Load(ctx, pc.Name)
	if err != nil {
		return fail(err)
	}
	var lags map[string]lag
	var lagErr error
	if slot.Exists && !slot.Active && !ps.Slot.Lost {
		lags, lagErr = countPending(ctx, src, pc, cps)
	}
	now := time.Now()
	for i := range pc.Sinks {
		sc := &pc.Sinks[i]
		ss := Sink{Name: sc.Name, Kind: sc.Kind}
		cp, ok := cps[sc.Name]
		// The slot confirms the minimum over the sinks, so a sink is at
		// least as far as the slot's confirmed position.
		effective := max(cp.Flush, slot.ConfirmedFlush)
		if ok {
			ss.Checkpoint = cp.Position.String()
			ss.FlushLSN = cp.Flush.String()
			ss.Delivered = cp.Events
			ss.Instance = cp.Instance
			ss.UpdatedAt = cp.UpdatedAt
			ss.State, ss.Since, ss.Error = cp.State, cp.Since, cp.Error
		}
		if ss.State == "" {
			ss.State = cdc.SinkOK
		}
		if b := backfills[sc.Name]; b != nil {
			ss.Backfill = &Backfill{State: string(b.State), From: b.Scope.From(), Tenants: b.Scope.Tenants, Done: b.Done, Total: b.Total,
				Rate: b.Rate, Segments: len(b.Segments), Started: b.StartedAt, Finished: b.FinishedAt, Instance: b.Instance, Error: b.Error}
			if len(b.Segments) > 0 {
				ss.Backfill.HandOffLSN = b.Segments[0].Start.String()
			}
		}
		if current > effective {
			ss.LagBytes = int64(current - effective)
		}
		switch l, counted := lags[sc.Name]; {
		case ps.Slot.Lost:
			ss.LagEventsUnknown = true
		case counted:
			ss.LagEvents, ss.LagEventsAtLeast = l.events, l.truncated
			if l.events > 0 {
				ss.LagSeconds = now.Sub(l.oldest).Seconds()
			}
		case lagErr == nil && ok && slot.Active:
			// The active instance reports what it holds with each save.
			ss.LagEvents = cp.Pending
			if cp.Pending > 0 && !cp.CommitTime.IsZero() {
				ss.LagSeconds = now.Sub(cp.CommitTime).Seconds()
			}
		}
		ps.Sinks = append(ps.Sinks, ss)
	}
	if lagErr != nil {
		ps.Error = "count pending events: " + lagErr.Error()
	}
	return ps
}

type lag struct {
	events    int64
	oldest    time.Time // commit time of the oldest pending event
	truncated bool
}

// countPending reads the inactive slot's pending changes and counts, per
// sink, the events after its checkpoint that its filters let through.
func countPending(ctx context.Context, pool *pgxpool.Pool, pc *config.Pipeline, cps map[string]cdc.Checkpoint) (map[string]lag, error) {
	dec := decoder.New(decoder.Config{Schema: pc.Source.Schema})
	out := make(map[string]lag, len(pc.Sinks))
	filters := make([]pipeline.Filter, len(pc.Sinks))
	for i, sc := range pc.Sinks {
		filters[i] = pipeline.Filter{Include: sc.Include, Exclude: sc.Exclude, Tenants: sc.Tenants}
		out[sc.Name] = lag{}
	}
	truncated, err := replication.Peek(ctx, pool, assemble.ReplicationConfig(pc, nil), peekLimit, func(data []byte) error {
		m, err := dec.Decode(data)
		if err != nil || m.Kind != decoder.KindEvent {
			return err
		}
		for i, sc := range pc.Sinks {
			if m.Position.Compare(cps[sc.Name].Position) <= 0 || !filters[i].Match(m.Event) {
				continue
			}
			l := out[sc.Name]
			if l.events == 0 {
				l.oldest = m.Event.CommitTime
			}
			l.events++
			out[sc.Name] = l
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if truncated {
		for k, l := range out {
			l.truncated = true
			out[k] = l
		}
	}
	return out, nil
}

// HumanBytes formats a byte count with a binary unit: "91.9 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
