package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/cli"
	"github.com/martencdc/cdc/status"
)

// cmdStatus prints, per pipeline, the slot's state and each sink's
// checkpoint and lag.
func cmdStatus(ctx context.Context, args []string, e env) error {
	cc := newConfigCommand("status")
	asJSON := cc.fs.Bool("json", false, "print JSON")
	var names cli.StringList
	cc.fs.Var(&names, "pipeline", "show only this pipeline (repeatable; default all)")
	cfg, _, err := cc.parse(args, e)
	if err != nil {
		return err
	}
	selected, err := selectPipelines(cfg, names)
	if err != nil {
		return err
	}
	var report []status.Pipeline
	failed := false
	for _, pc := range selected {
		ps := status.Read(ctx, pc)
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
		return cli.ErrReported
	}
	return nil
}

func printStatus(w io.Writer, report []status.Pipeline) {
	for _, ps := range report {
		fmt.Fprintf(w, "pipeline %s\n", ps.Name)
		if ps.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", ps.Error)
		}
		s := ps.Slot
		switch {
		case !ps.Connected:
			continue // the error says it could not connect; nothing else is known
		case !s.Exists:
			fmt.Fprintf(w, "  slot %s: missing (created by cdc run)\n", s.Name)
		default:
			state := "inactive (no cdc run holds it)"
			if s.Active {
				state = fmt.Sprintf("active, held by %s (active_pid %d)", s.Holder, s.ActivePID)
			}
			fmt.Fprintf(w, "  slot %s: %s\n    confirmed_flush_lsn %s, current WAL %s, retained WAL %s, wal_status %s\n",
				s.Name, state, s.ConfirmedFlushLSN, ps.CurrentWAL, status.HumanBytes(s.RetainedWALBytes), s.WALStatus)
			if s.Lost {
				fmt.Fprintf(w, "    LOST: %s\n", s.Recovery)
			}
		}
		for _, ss := range ps.Sinks {
			cp := ss.Checkpoint
			if cp == "" {
				cp = "none"
			}
			events := fmt.Sprint(ss.LagEvents)
			switch {
			case ss.LagEventsUnknown:
				events = "unknown"
			case ss.LagEventsAtLeast:
				events = "at least " + events
			}
			fmt.Fprintf(w, "  sink %s (%s): %s, checkpoint %s, lag %s / %s events / %.1fs, delivered %d\n",
				ss.Name, ss.Kind, sinkState(ss), cp, status.HumanBytes(ss.LagBytes), events, ss.LagSeconds, ss.Delivered)
			if ss.Error != "" {
				fmt.Fprintf(w, "    %s\n", ss.Error)
			}
			if b := ss.Backfill; b != nil {
				fmt.Fprintf(w, "    %s\n", backfillLine(b))
			}
		}
	}
}

// sinkState describes a sink's state: "ok", "failing since 15:04:05 (2m0s)".
func sinkState(ss status.Sink) string {
	if ss.State == cdc.SinkOK || ss.Since.IsZero() {
		return string(ss.State)
	}
	return fmt.Sprintf("%s since %s (%s)", ss.State, ss.Since.Local().Format(time.DateTime), time.Since(ss.Since).Round(time.Second))
}

// backfillLine describes a sink's backfill in one line.
func backfillLine(b *status.Backfill) string {
	scope := b.From
	if len(b.Tenants) > 0 {
		scope += " tenants " + strings.Join(b.Tenants, ",")
	}
	switch b.State {
	case "requested":
		return fmt.Sprintf("backfill from %s: requested, waiting for the instance that holds the slot", scope)
	case "done":
		return fmt.Sprintf("backfill from %s: done at %s, %d events", scope, b.Finished.Local().Format(time.DateTime), b.Done)
	}
	line := fmt.Sprintf("backfill from %s: %d/%d events, %.0f/s, hand-off at %s", scope, b.Done, b.Total, b.Rate, b.HandOffLSN)
	if b.Instance != "" {
		line += ", by " + b.Instance
	}
	if b.Error != "" {
		line += " (retrying: " + b.Error + ")"
	}
	return line
}
