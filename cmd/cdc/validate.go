package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/martencdc/cdc/assemble"
	"github.com/martencdc/cdc/internal/cli"
)

// cmdValidate parses the configuration and checks every pipeline's server
// and sinks: one line per problem; exit 2 if any is the configuration's
// (a DSN that does not parse, SQL the target refuses), else 1 if any.
// Warnings (a NATS duplicate window too short) are printed too, prefixed
// "warning:", and do not change the exit code.
func cmdValidate(ctx context.Context, args []string, e env) error {
	cfg, _, err := newConfigCommand("validate").parse(args, e)
	if err != nil {
		return err
	}
	failed, configErrs := 0, 0
	for i := range cfg.Pipelines {
		pc := &cfg.Pipelines[i]
		var problems []error
		for _, p := range assemble.Validate(ctx, pc) {
			if w := (*assemble.Warning)(nil); errors.As(p, &w) {
				fmt.Fprintf(e.stderr, "cdc: pipeline %s: warning: %s\n", pc.Name, assemble.OneLine(w.Msg))
				continue
			}
			problems = append(problems, p)
		}
		if len(problems) == 0 {
			fmt.Fprintf(e.stdout, "pipeline %s: ok (slot %s, publication %s, table %s.mt_events, %d sinks)\n",
				pc.Name, pc.Source.Slot, pc.Source.Publication, pc.Source.Schema, len(pc.Sinks))
			continue
		}
		failed++
		for _, p := range problems {
			if ce := (*assemble.ConfigError)(nil); errors.As(p, &ce) {
				configErrs++
			}
			fmt.Fprintf(e.stderr, "cdc: pipeline %s: %s\n", pc.Name, assemble.OneLine(p.Error()))
		}
	}
	switch {
	case configErrs > 0:
		return &cli.UsageError{Err: cli.ErrReported}
	case failed > 0:
		return cli.ErrReported
	}
	return nil
}
