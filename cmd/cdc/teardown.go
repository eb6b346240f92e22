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
		report := func(what string, st assemble.TeardownStep, done string) {
			switch {
			case !st.Ran:
			case st.Err != nil:
				fmt.Fprintf(e.stdout, "pipeline %s: %s: not done: %s\n", pc.Name, what, assemble.OneLine(st.Err.Error()))
			default:
				fmt.Fprintf(e.stdout, "pipeline %s: %s: %s\n", pc.Name, what, done)
			}
		}
		report("slot "+pc.Source.Slot, res.Slot, doneWord(res.Slot.Dropped, "dropped", "absent"))
		report("publication "+pc.Source.Publication, res.Publication, doneWord(res.Publication.Dropped, "dropped", "absent"))
		report("checkpoints", res.Checkpoints, fmt.Sprintf("%d rows deleted", res.Checkpoints.Deleted))
		if err != nil {
			errs = append(errs, fmt.Errorf("pipeline %s: teardown incomplete: %w", pc.Name, err))
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
