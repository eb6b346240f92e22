package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/martencdc/cdc/assemble"
	"github.com/martencdc/cdc/internal/cli"
)

// cmdTeardown drops the slot and publication of pipelines (and with
// --checkpoints their checkpoint rows), so an uninstalled projector retains
// no WAL.
func cmdTeardown(ctx context.Context, args []string, e env) error {
	cc := newConfigCommand("teardown")
	var names cli.StringList
	cc.fs.Var(&names, "pipeline", "tear down only this pipeline (repeatable; default all)")
	withCheckpoints := cc.fs.Bool("checkpoints", false, "also delete the pipelines' checkpoint rows")
	cfg, _, err := cc.parse(args, e)
	if err != nil {
		return err
	}
	selected, err := selectPipelines(cfg, names)
	if err != nil {
		return err
	}
	var errs []error
	for _, pc := range selected {
		res, err := assemble.Teardown(ctx, pc, *withCheckpoints)
		if res.ReplicationDone {
			fmt.Fprintf(e.stdout, "pipeline %s: slot %s %s, publication %s %s\n", pc.Name,
				pc.Source.Slot, doneWord(res.SlotDropped, "dropped", "absent"),
				pc.Source.Publication, doneWord(res.PublicationDropped, "dropped", "absent"))
		}
		if res.CheckpointsDone {
			fmt.Fprintf(e.stdout, "pipeline %s: %d checkpoint rows deleted\n", pc.Name, res.CheckpointsDeleted)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pipeline %s: %w", pc.Name, err))
		}
	}
	return errors.Join(errs...)
}

func doneWord(done bool, yes, no string) string {
	if done {
		return yes
	}
	return no
}
