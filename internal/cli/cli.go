// Package cli is the command-line plumbing the cdc and cdc-demo commands
// share: exit codes, usage errors, the logging flags and flag parsing.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/martencdc/cdc/assemble"
)

// Exit codes (SPEC §6).
const (
	ExitOK      = 0
	ExitFailure = 1 // runtime failure
	ExitUsage   = 2 // usage or configuration error
)

// UsageError is a command-line or configuration problem: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// ErrReported means the command already printed its problems.
var ErrReported = errors.New("problems reported")

// ErrHelp means the command printed its usage because it was asked to
// (-h, --help): exit 0.
var ErrHelp = errors.New("help shown")

// ExitError carries the exit code of a command run on the user's behalf,
// which already reported its own problems.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode prints err (one line per problem, each prefixed with prog) unless
// it was reported already, and maps it to an exit code: 0 for nil, 2 for a
// usage or configuration error, 1 otherwise.
func ExitCode(prog string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, ErrHelp) {
		return ExitOK
	}
	if x := (*ExitError)(nil); errors.As(err, &x) {
		return x.Code
	}
	var ue *UsageError
	var ce *assemble.ConfigError
	isUsage := errors.As(err, &ue) || errors.As(err, &ce)
	if !errors.Is(err, ErrReported) {
		for _, line := range strings.Split(err.Error(), "\n") {
			if line != "" {
				fmt.Fprintf(stderr, "%s: %s\n", prog, assemble.Shorten(line))
			}
		}
	}
	if isUsage {
		return ExitUsage
	}
	return ExitFailure
}

// LogFlags are the logging flags every command has.
type LogFlags struct {
	Format string // auto, text or json
	Level  string // debug, info, warn or error
}

// Register adds --log-format and --log-level to fs, with l's values (or
// auto and info) as defaults.
func (l *LogFlags) Register(fs *flag.FlagSet) {
	if l.Format == "" {
		l.Format = "auto"
	}
	if l.Level == "" {
		l.Level = "info"
	}
	fs.StringVar(&l.Format, "log-format", l.Format, "log format: auto (text on a terminal, JSON otherwise), text or json")
	fs.StringVar(&l.Level, "log-level", l.Level, "log level: debug, info, warn or error")
}

// Logger builds the logger the flags describe, writing to stderr.
func (l *LogFlags) Logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, Usagef("--log-level %q: want debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := l.Format
	if format == "auto" {
		format = "json"
		if IsTerminal(stderr) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, Usagef("--log-format %q: want auto, text or json", l.Format)
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// StringList is a repeatable string flag.
type StringList []string

func (s *StringList) String() string     { return strings.Join(*s, ",") }
func (s *StringList) Set(v string) error { *s = append(*s, v); return nil }

// ParseFlags parses a command's flags, printing problems and -h's usage to
// stderr; either is a UsageError already reported. Arguments left over are
// an error.
func ParseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp // -h: flag printed the usage
		}
		return &UsageError{ErrReported} // flag printed the problem
	}
	if fs.NArg() > 0 {
		return Usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
