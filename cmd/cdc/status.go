package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/replication"
)

// peekLimit bounds how many pending changes status reads from an inactive
// slot to count the events each sink lacks.
const peekLimit = 200000

type slotStatus struct {
	Name              string `json:"name"`
	Exists            bool   `json:"exists"`
	Active            bool   `json:"active"`
	ActivePID         int32  `json:"active_pid,omitempty"`
	Holder            string `json:"holder,omitempty"`
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn,omitempty"`
	RetainedWALBytes  int64  `json:"retained_wal_bytes"`
	WALStatus         string `json:"wal_status,omitempty"`
}

type sinkStatus struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Checkpoint string `json:"checkpoint,omitempty"` // position "LSN#index"
	FlushLSN   string `json:"flush_lsn,omitempty"`
	LagBytes   int64  `json:"lag_bytes"`
	LagEvents  int64  `json:"lag_events"`
	// LagEventsAtLeast is true when LagEvents is a lower bound (a long
	// backlog was counted only in part).
	LagEventsAtLeast bool      `json:"lag_events_at_least,omitempty"`
	LagSeconds       float64   `json:"lag_seconds"`
	Delivered        int64     `json:"delivered"`
	Instance         string    `json:"instance,omitempty"`
	UpdatedAt        time.Time `json:"updated_at,omitzero"`
}

type pipelineStatus struct {
	Name       string       `json:"name"`
	CurrentWAL string       `json:"current_wal_lsn,omitempty"`
	Slot       slotStatus   `json:"slot"`
	Sinks      []sinkStatus `json:"sinks"`
	Error      string       `json:"error,omitempty"`
}

// cmdStatus prints, per pipeline, the slot's state and each sink's
// checkpoint and lag.
func cmdStatus(ctx context.Context, args []string, e env) error {
	cc := newConfigCommand("status")
	asJSON := cc.fs.Bool("json", false, "print JSON")
	cfg, _, err := cc.parse(args, e)
	if err != nil {
		return err
	}
	var report []pipelineStatus
	failed := false
	for i := range cfg.Pipelines {
		ps := pipelineState(ctx, &cfg.Pipelines[i])
		failed = failed || ps.Error != ""
		report = append(report, ps)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"pipelines": report}); err != nil {
			return err
		}
	} else {
		printStatus(e.stdout, report)
	}
	if failed {
		return errReported
	}
	return nil
}

func pipelineState(ctx context.Context, pc *config.Pipeline) pipelineStatus {
	ps := pipelineStatus{Name: pc.Name, Slot: slotStatus{Name: pc.Source.Slot}}
	fail := func(err error) pipelineStatus {
		ps.Error = err.Error()
		return ps
	}
	src, err := newPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	slot, err := replication.Slot(ctx, src, pc.Source.Slot)
	if err != nil {
		return fail(err)
	}
	var current cdc.LSN
	if slot.Exists {
		current = slot.CurrentWAL
		ps.Slot = slotStatus{
			Name: pc.Source.Slot, Exists: true, Active: slot.Active, ActivePID: slot.ActivePID, Holder: slot.Holder,
			ConfirmedFlushLSN: slot.ConfirmedFlush.String(), RetainedWALBytes: slot.RetainedBytes, WALStatus: slot.WALStatus,
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
		if cpPool, err = newPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn"); err != nil {
			return fail(err)
		}
		defer cpPool.Close()
	}
	cps, err := checkpoint.New(cpPool, pc.Checkpoints.Schema).Load(ctx, pc.Name)
	if err != nil {
		return fail(err)
	}
	var lags map[string]lag
	var lagErr error
	if slot.Exists && !slot.Active {
		lags, lagErr = countPending(ctx, src, pc, cps)
	}
	now := time.Now()
	for i := range pc.Sinks {
		sc := &pc.Sinks[i]
		ss := sinkStatus{Name: sc.Name, Kind: sc.Kind}
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
		}
		if current > effective {
			ss.LagBytes = int64(current - effective)
		}
		switch l, counted := lags[sc.Name]; {
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
	truncated, err := replication.Peek(ctx, pool, replicationConfig(pc, nil), peekLimit, func(data []byte) error {
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

func printStatus(w io.Writer, report []pipelineStatus) {
	for _, ps := range report {
		fmt.Fprintf(w, "pipeline %s\n", ps.Name)
		if ps.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", ps.Error)
		}
		s := ps.Slot
		switch {
		case !s.Exists:
			fmt.Fprintf(w, "  slot %s: missing (created by cdc run)\n", s.Name)
		default:
			state := "inactive (no cdc run holds it)"
			if s.Active {
				state = fmt.Sprintf("active, held by %s (active_pid %d)", s.Holder, s.ActivePID)
			}
			fmt.Fprintf(w, "  slot %s: %s\n    confirmed_flush_lsn %s, current WAL %s, retained WAL %s, wal_status %s\n",
				s.Name, state, s.ConfirmedFlushLSN, ps.CurrentWAL, bytesHuman(s.RetainedWALBytes), s.WALStatus)
		}
		for _, ss := range ps.Sinks {
			cp := ss.Checkpoint
			if cp == "" {
				cp = "none"
			}
			events := fmt.Sprint(ss.LagEvents)
			if ss.LagEventsAtLeast {
				events = "at least " + events
			}
			fmt.Fprintf(w, "  sink %s (%s): checkpoint %s, lag %s / %s events / %.1fs, delivered %d\n",
				ss.Name, ss.Kind, cp, bytesHuman(ss.LagBytes), events, ss.LagSeconds, ss.Delivered)
		}
	}
}

func bytesHuman(n int64) string {
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
