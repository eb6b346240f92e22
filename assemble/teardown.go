package assemble

import (
	"context"

	"github.com/martencdc/cdc/checkpoint"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/replication"
)

// TeardownResult says what Teardown did, step by step.
type TeardownResult struct {
	ReplicationDone    bool  // the slot and publication step ran
	SlotDropped        bool  // false: there was no slot
	PublicationDropped bool  // false: there was no publication
	CheckpointsDone    bool  // the checkpoint step ran
	CheckpointsDeleted int64 // checkpoint rows deleted
}

// Teardown drops the slot and publication of pc and, with checkpoints, its
// checkpoint rows, so that an uninstalled projector retains no WAL. On
// error, the result says which steps were done.
func Teardown(ctx context.Context, pc *config.Pipeline, checkpoints bool) (TeardownResult, error) {
	var res TeardownResult
	src, err := NewPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return res, err
	}
	defer src.Close()
	if res.SlotDropped, res.PublicationDropped, err = replication.Teardown(ctx, src, ReplicationConfig(pc, nil)); err != nil {
		return res, err
	}
	res.ReplicationDone = true
	if !checkpoints {
		return res, nil
	}
	pool := src
	if pc.Checkpoints.DSN != pc.Source.DSN {
		if pool, err = NewPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn"); err != nil {
			return res, err
		}
		defer pool.Close()
	}
	if res.CheckpointsDeleted, err = checkpoint.New(pool, pc.Checkpoints.Schema).Delete(ctx, pc.Name); err != nil {
		return res, err
	}
	res.CheckpointsDone = true
	return res, nil
}
