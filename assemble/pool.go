package assemble

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/internal/pgerr"
	"github.com/martencdc/cdc/internal/retry"
	"github.com/martencdc/cdc/replication"
)

// ConfigError is a problem with the configuration found while assembling
// (a connection string that does not parse): retrying will not help, the
// file must change. The cdc command exits 2 on it.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// ProblemsError lists what is wrong with a pipeline's server, one problem
// per line, each prefixed with the pipeline.
type ProblemsError struct {
	Pipeline string
	Problems []error
}

func (e *ProblemsError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "pipeline " + e.Pipeline + ": " + OneLine(p.Error())
	}
	return strings.Join(lines, "\n")
}

// NewPool makes a connection pool; it does not connect yet. key names the
// configuration key in errors (the DSN itself is never shown).
func NewPool(ctx context.Context, dsn, key string) (*pgxpool.Pool, error) {
	return newPool(ctx, dsn, key, nil)
}

// newPool is NewPool with extra run-time parameters for the connections.
func newPool(ctx context.Context, dsn, key string, params map[string]string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, &ConfigError{fmt.Errorf("%s: %v", key, err)}
	}
	pc.MaxConns = 4
	pc.ConnConfig.RuntimeParams["application_name"] = "cdc"
	for k, v := range params {
		pc.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return pool, nil
}

// WaitReachable pings the server until it answers. With wait false it tries
// once. Authentication failures are returned at once. log may be nil when
// wait is false.
func WaitReachable(ctx context.Context, pool *pgxpool.Pool, what string, wait bool, log *slog.Logger) error {
	delay := retry.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return nil
		}
		if !wait || replication.IsAuthError(err) || ctx.Err() != nil {
			return fmt.Errorf("could not connect to %s: %s", what, pgerr.Describe(err))
		}
		d := delay.Next()
		log.Warn("database not reachable; retrying", "database", what, "err", pgerr.Describe(err), "retry_in", d)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// ReplicationConfig maps a pipeline's configuration to the replication
// package's. log may be nil.
func ReplicationConfig(pc *config.Pipeline, log *slog.Logger) replication.Config {
	host, _ := os.Hostname()
	return replication.Config{
		Slot:            pc.Source.Slot,
		Publication:     pc.Source.Publication,
		Schema:          pc.Source.Schema,
		Filter:          pc.Source.Filter,
		StatusInterval:  pc.StatusInterval,
		StandbyRetry:    pc.StandbyRetry,
		Timeout:         pc.Source.Timeout,
		ShutdownTimeout: pc.ShutdownTimeout,
		ApplicationName: truncate(fmt.Sprintf("cdc %s %s:%d", pc.Name, host, os.Getpid()), 63),
		Logger:          log,
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// InstanceID names this process in checkpoint rows and logs: host:pid.
func InstanceID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// OneLine joins the lines of a multi-line message (pgconn lists every
// address it tried on its own line) so that each problem prints as one line,
// and cuts it at MaxLine bytes: a huge configuration value quoted in an
// error is not echoed whole.
func OneLine(s string) string {
	if strings.Contains(s, "\n") {
		parts := strings.Split(s, "\n")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		s = strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), "; ")
	}
	return Shorten(s)
}

// MaxLine is the longest problem line cdc prints, in bytes.
const MaxLine = 1000

// Shorten cuts s at MaxLine bytes (on a UTF-8 boundary), saying how much
// it left out.
func Shorten(s string) string {
	if len(s) <= MaxLine {
		return s
	}
	cut := MaxLine
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d more bytes)", s[:cut], len(s)-cut)
}

// pools are a pipeline's connections: to the source and to the checkpoint
// database, which may be the same pool.
type pools struct {
	src, cp *pgxpool.Pool
}

// openPools makes the pools of pc without connecting. prefix starts the
// configuration key in errors.
func openPools(ctx context.Context, pc *config.Pipeline, prefix string) (pools, error) {
	var p pools
	var err error
	if p.src, err = NewPool(ctx, pc.Source.DSN, prefix+"source.dsn"); err != nil {
		return p, err
	}
	p.cp = p.src
	if pc.Checkpoints.DSN != pc.Source.DSN {
		if p.cp, err = NewPool(ctx, pc.Checkpoints.DSN, prefix+"checkpoints.dsn"); err != nil {
			p.src.Close()
			return pools{}, err
		}
	}
	return p, nil
}

func (p pools) close() {
	if p.cp != nil && p.cp != p.src {
		p.cp.Close()
	}
	if p.src != nil {
		p.src.Close()
	}
}
