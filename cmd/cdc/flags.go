package main

import (
	"flag"
	"log/slog"
	"os"
	"strings"

	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/internal/cli"
)

// loadConfig reads and parses the configuration file.
func loadConfig(path string, e env) (*config.Config, error) {
	if path == "" {
		return nil, cli.Usagef("--config FILE is required")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.Usagef("read config: %v", err)
	}
	cfg, err := config.Parse(path, data, e.lookupEnv)
	if err != nil {
		return nil, &cli.UsageError{Err: err}
	}
	return cfg, nil
}

// selectPipelines returns the pipelines named (all when names is empty).
func selectPipelines(cfg *config.Config, names []string) ([]*config.Pipeline, error) {
	if len(names) == 0 {
		out := make([]*config.Pipeline, len(cfg.Pipelines))
		for i := range cfg.Pipelines {
			out[i] = &cfg.Pipelines[i]
		}
		return out, nil
	}
	var out []*config.Pipeline
	for _, n := range names {
		p, ok := cfg.Pipeline(n)
		if !ok {
			known := make([]string, len(cfg.Pipelines))
			for i := range cfg.Pipelines {
				known[i] = cfg.Pipelines[i].Name
			}
			return nil, cli.Usagef("--pipeline %s: no such pipeline (configured: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, p)
	}
	return out, nil
}

// configCommand is the flag handling of the commands that read a
// configuration file: --config and the logging flags, plus the command's own.
type configCommand struct {
	fs   *flag.FlagSet
	path string
	logs cli.LogFlags
}

func newConfigCommand(name string) *configCommand {
	c := &configCommand{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.StringVar(&c.path, "config", "", "configuration file (YAML)")
	c.logs.Register(c.fs)
	return c
}

// parse parses args, builds the logger and loads the configuration.
func (c *configCommand) parse(args []string, e env) (*config.Config, *slog.Logger, error) {
	if err := cli.ParseFlags(c.fs, args, e.stderr); err != nil {
		return nil, nil, err
	}
	log, err := c.logs.Logger(e.stderr)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loadConfig(c.path, e)
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}
