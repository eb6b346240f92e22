package assemble

import (
	"context"
	"errors"
	"fmt"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/config"
)

// This file opens one sink for direct writes, outside a pipeline: the
// write path of cdc deadletters retry.

// redeliverer is a sink that has a write path for events at or below its
// own checkpoint (postgres.Sink.Redeliver), which its Write would skip.
type redeliverer interface {
	Redeliver(ctx context.Context, b cdc.Batch) error
}

// OpenSink builds the sink name of pipeline pc from its configuration, as
// cdc run does (same target, options, index or topic templates and, for
// Elasticsearch, the tenant prefix of conjoined tenancy, read from the
// source database), and prepares its target (a Kafka topic with
// create_topics, an Elasticsearch index with index_settings, the Postgres
// sink's tables). A target that is misconfigured (cdc.ErrMisconfigured) is
// an error; one that is not reachable yet is left to the first Write.
//
// The sink is for re-sending events the sink rejected before (dead
// letters), whose positions are behind the sink's checkpoint: its Write
// writes every event it is given and never moves a checkpoint. The
// pipeline's checkpoint (cdc_checkpoints) is not touched by any sink; the
// Postgres sink, which keeps its own checkpoint in its target, writes
// through postgres.Sink.Redeliver (at least once). The other kinds write
// as usual: Elasticsearch with external versions (idempotent), Kafka, the
// file and stdout sinks append new records. The sink is not decorated by
// Options.Wrap or Options.Metrics. Close it when done: that closes the
// connections it opened.
func (a *Assembler) OpenSink(ctx context.Context, pc *config.Pipeline, name string) (cdc.Sink, error) {
	sc, ok := pc.Sink(name)
	if !ok {
		return nil, fmt.Errorf("pipeline %s: no sink named %s", pc.Name, name)
	}
	log := a.opts.Logger.With("pipeline", pc.Name, "sink", name)
	var traits storeTraits
	if _, ok := sc.Options.(*config.ElasticOptions); ok {
		src, err := NewPool(ctx, pc.Source.DSN, "pipeline "+pc.Name+": source.dsn")
		if err != nil {
			return nil, err
		}
		traits, err = detectStore(ctx, src, pc.Source.Schema)
		src.Close()
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: sink %s: %w", pc.Name, name, err)
		}
	}
	s, err := a.newSink(ctx, pc.Name, sc, traits, log)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", pc.Name, err)
	}
	if p, ok := s.(preparer); ok {
		if err := p.Prepare(ctx); err != nil {
			if errors.Is(err, cdc.ErrMisconfigured) {
				_ = s.Close(context.WithoutCancel(ctx))
				return nil, fmt.Errorf("pipeline %s: sink %s: %w", pc.Name, name, err)
			}
			log.Warn("sink target not ready", "component", "assemble", "err", err)
		}
	}
	if r, ok := s.(redeliverer); ok {
		return redelivery{Sink: s, r: r}, nil
	}
	return s, nil
}

// redelivery is a sink whose Write is its Redeliver.
type redelivery struct {
	cdc.Sink
	r redeliverer
}

func (d redelivery) Write(ctx context.Context, b cdc.Batch) error { return d.r.Redeliver(ctx, b) }
