package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/replication"
)

// cmdTeardown drops the slot and publication of pipelines (and with
// --checkpoints their checkpoint rows), so an uninstalled projector retains
// no WAL.
func cmdTeardown(ctx context.Context, args []string, e env) error {
	cc := newConfigCommand("teardown")
	var names stringList
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
		if err := teardownPipeline(ctx, pc.Name, pc.Source.DSN, pc.Checkpoints.DSN, pc.Checkpoints.Schema, replicationConfig(pc, nil), *withCheckpoints, e); err != nil {
			errs = append(errs, fmt.Errorf("pipeline %s: %w", pc.Name, err))
		}
	}
	return errors.Join(errs...)
}

func teardownPipeline(ctx context.Context, name, srcDSN, cpDSN, cpSchema string, rcfg replication.Config, withCheckpoints bool, e env) error {
	src, err := newPool(ctx, srcDSN, "source.dsn")
	if err != nil {
		return err
	}
	defer src.Close()
	slot, pub, err := replication.Teardown(ctx, src, rcfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "pipeline %s: slot %s %s, publication %s %s\n", name,
		rcfg.Slot, doneWord(slot, "dropped", "absent"), rcfg.Publication, doneWord(pub, "dropped", "absent"))
	if !withCheckpoints {
		return nil
	}
	pool := src
	if cpDSN != srcDSN {
		if pool, err = newPool(ctx, cpDSN, "checkpoints.dsn"); err != nil {
			return err
		}
		defer pool.Close()
	}
	n, err := checkpoint.New(pool, cpSchema).Delete(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "pipeline %s: %d checkpoint rows deleted\n", name, n)
	return nil
}

func doneWord(done bool, yes, no string) string {
	if done {
		return yes
	}
	return no
}
