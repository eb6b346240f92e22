package assemble

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/backfill"
	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/replication"
)

// TeardownStep is the outcome of one step of Teardown.
type TeardownStep struct {
	Ran     bool  // the step was attempted
	Dropped bool  // the slot or publication was dropped (false without Err: it was absent)
	Deleted int64 // checkpoint rows deleted
	Err     error // why the step failed; a *replication.NotOwnerError names the owner's statement
}

// TeardownResult says what Teardown did, step by step.
type TeardownResult struct {
	Slot        TeardownStep
	Publication TeardownStep
	Checkpoints TeardownStep // only with checkpoints
}

// Teardown drops the slot and publication of pc and, with checkpoints, its
// checkpoint rows, so that an uninstalled projector retains no WAL. It does
// every step it can: a publication cdc's role does not own is left (its
// step's error names the statement the owner must run) and the checkpoint
// rows are still deleted. A slot that cannot be dropped (an instance streams
// from it) stops it: the checkpoints are kept with their slot. The error
// joins the failed steps' errors.
func Teardown(ctx context.Context, pc *config.Pipeline, checkpoints bool) (TeardownResult, error) {
	var res TeardownResult
	src, err := NewPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return res, err
	}
	defer src.Close()
	if err := WaitReachable(ctx, src, "the source database", false, nil); err != nil {
		return res, err
	}
	rc := ReplicationConfig(pc, nil)
	res.Slot.Ran = true
	if res.Slot.Dropped, res.Slot.Err = replication.DropSlot(ctx, src, rc); res.Slot.Err != nil {
		return res, res.Slot.Err
	}
	res.Publication.Ran = true
	res.Publication.Dropped, res.Publication.Err = replication.DropPublication(ctx, src, rc)
	if checkpoints {
		res.Checkpoints.Ran = true
		res.Checkpoints.Deleted, res.Checkpoints.Err = deleteCheckpoints(ctx, pc, src)
	}
	return res, errors.Join(res.Publication.Err, res.Checkpoints.Err)
}

// deleteCheckpoints deletes the pipeline's rows of cdc_checkpoints.
func deleteCheckpoints(ctx context.Context, pc *config.Pipeline, src *pgxpool.Pool) (int64, error) {
	pool := src
	if pc.Checkpoints.DSN != pc.Source.DSN {
		p, err := NewPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn")
		if err != nil {
			return 0, err
		}
		defer p.Close()
		pool = p
	}
	n, err := checkpoint.New(pool, pc.Checkpoints.Schema).Delete(ctx, pc.Name)
	if err != nil {
		return n, err
	}
	// A sink's backfill belongs with its checkpoint: a later start:
	// beginning fills it again.
	_, err = backfill.NewStore(pool, pc.Checkpoints.Schema).Delete(ctx, pc.Name)
	return n, err
}
