package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/martencdc/cdc/config"
)

// logFlags are the logging flags every command has.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text or json")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
}

// logger builds the logger the flags describe. Logs always go to stderr.
func (l *logFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := l.format
	if format == "auto" {
		format = "json"
		if isTerminal(stderr) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want auto, text or json", l.format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// parseFlags parses a command's flags; -h prints the usage and is not an
// error worth a message.
func parseFlags(fs *flag.FlagSet, args []string, e env) error {
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &usageError{errReported}
		}
		return &usageError{errReported} // flag already printed the problem
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// loadConfig reads and parses the configuration file.
func loadConfig(path string, e env) (*config.Config, error) {
	if path == "" {
		return nil, usagef("--config FILE is required")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("read config: %v", err)
	}
	cfg, err := config.Parse(path, data, e.lookupEnv)
	if err != nil {
		return nil, &usageError{err}
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
			return nil, usagef("--pipeline %s: no such pipeline (configured: %s)", n, strings.Join(known, ", "))
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
	logs logFlags
}

func newConfigCommand(name string) *configCommand {
	c := &configCommand{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.StringVar(&c.path, "config", "", "configuration file (YAML)")
	c.logs.register(c.fs)
	return c
}

// parse parses args, builds the logger and loads the configuration.
func (c *configCommand) parse(args []string, e env) (*config.Config, *slog.Logger, error) {
	if err := parseFlags(c.fs, args, e); err != nil {
		return nil, nil, err
	}
	log, err := c.logs.logger(e.stderr)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loadConfig(c.path, e)
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}
