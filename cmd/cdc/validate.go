package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/replication"
)

// cmdValidate parses the configuration and checks every pipeline's server:
// one line per problem, exit 1 if any.
func cmdValidate(ctx context.Context, args []string, e env) error {
	cfg, _, err := newConfigCommand("validate").parse(args, e)
	if err != nil {
		return err
	}
	failed := 0
	for i := range cfg.Pipelines {
		pc := &cfg.Pipelines[i]
		problems := validatePipeline(ctx, pc)
		if len(problems) == 0 {
			fmt.Fprintf(e.stdout, "pipeline %s: ok (slot %s, publication %s, table %s.mt_events, %d sinks)\n",
				pc.Name, pc.Source.Slot, pc.Source.Publication, pc.Source.Schema, len(pc.Sinks))
			continue
		}
		failed++
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "cdc: pipeline %s: %s\n", pc.Name, oneLine(p))
		}
	}
	if failed > 0 {
		return errReported
	}
	return nil
}

// validatePipeline returns the problems of one pipeline, one line each: its
// source and checkpoint databases, then each sink's target.
func validatePipeline(ctx context.Context, pc *config.Pipeline) []string {
	return append(validateSource(ctx, pc), validateSinks(ctx, pc)...)
}

// validateSource checks the source and checkpoint databases.
func validateSource(ctx context.Context, pc *config.Pipeline) []string {
	src, err := newPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return []string{err.Error()}
	}
	defer src.Close()
	if err := waitReachable(ctx, src, "the source database", false, nil); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	rcfg := replicationConfig(pc, nil)
	for _, p := range replication.Check(ctx, src, rcfg, decoder.RequiredColumns()) {
		problems = append(problems, p.Error())
	}
	if pc.Source.Start == config.StartBeginning {
		problems = append(problems, "source.start: beginning (backfill from the table) is not available in this version; use now")
	}
	if pc.Checkpoints.DSN != pc.Source.DSN {
		cp, err := newPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn")
		if err != nil {
			return append(problems, err.Error())
		}
		defer cp.Close()
		if err := waitReachable(ctx, cp, "the checkpoint database", false, nil); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

// validateSinks checks each sink's target, for the sinks that can tell
// (stdout and files need nothing checked). It changes nothing: no topic is
// created.
func validateSinks(ctx context.Context, pc *config.Pipeline) []string {
	f := &sinkFactory{stdoutW: io.Discard, log: slog.New(slog.DiscardHandler)}
	var problems []string
	for i := range pc.Sinks {
		sc := &pc.Sinks[i]
		s, err := f.raw(ctx, sc, sinkContext{pipeline: pc.Name})
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if c, ok := s.(checker); ok {
			for _, p := range c.Check(ctx) {
				problems = append(problems, "sink "+sc.Name+": "+p)
			}
		}
		_ = s.Close(ctx)
	}
	return problems
}
