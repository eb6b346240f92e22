package assemble

import (
	"context"
	"io"
	"log/slog"

	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/replication"
)

// Validate returns the problems of one pipeline, one line each: its source
// and checkpoint databases, then each sink's target. It changes nothing: no
// slot, table or topic is created.
func Validate(ctx context.Context, pc *config.Pipeline) []string {
	return append(validateSource(ctx, pc), validateSinks(ctx, pc)...)
}

// validateSource checks the source and checkpoint databases.
func validateSource(ctx context.Context, pc *config.Pipeline) []string {
	src, err := NewPool(ctx, pc.Source.DSN, "source.dsn")
	if err != nil {
		return []string{err.Error()}
	}
	defer src.Close()
	if err := WaitReachable(ctx, src, "the source database", false, nil); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, p := range replication.Check(ctx, src, ReplicationConfig(pc, nil), decoder.RequiredColumns()) {
		problems = append(problems, p.Error())
	}
	if pc.Checkpoints.DSN != pc.Source.DSN {
		cp, err := NewPool(ctx, pc.Checkpoints.DSN, "checkpoints.dsn")
		if err != nil {
			return append(problems, err.Error())
		}
		defer cp.Close()
		if err := WaitReachable(ctx, cp, "the checkpoint database", false, nil); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

// validateSinks checks each sink's target, for the sinks that can tell
// (stdout and files need nothing checked).
func validateSinks(ctx context.Context, pc *config.Pipeline) []string {
	a := New(Options{Stdout: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	var problems []string
	for i := range pc.Sinks {
		sc := &pc.Sinks[i]
		s, err := a.newSink(ctx, pc.Name, sc, storeTraits{}, a.opts.Logger)
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
