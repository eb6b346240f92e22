package replication

import (
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// Config describes the slot, the publication and the table a Stream reads.
type Config struct {
	Slot        string // replication slot name; required, [a-z0-9_]{1,63}
	Publication string // publication name; required, same rule as Slot
	Schema      string // schema of the events table; default "public"
	Table       string // events table; default "mt_events"
	// Filter is an optional publication row filter (PostgreSQL 15+), SQL
	// written by the operator in the configuration, e.g.
	// "tenant_id in ('acme','globex')". It is used only when the
	// publication is created.
	Filter string
	// StatusInterval is how often standby status updates are sent; default 1s.
	StatusInterval time.Duration
	// StandbyRetry is how often a standby retries the slot; default 1s.
	StandbyRetry time.Duration
	// ShutdownTimeout bounds how long Drain may take on shutdown; default 30s.
	ShutdownTimeout time.Duration
	// Timeout is how long the connection may carry nothing from the server
	// before the stream drops it and reconnects; halfway through a silence
	// the stream asks the server for a reply, so an idle stream is checked
	// too. The server is told the same (wal_sender_timeout), so it ends a
	// silent connection of cdc's, and frees the slot for a standby, after
	// as long. It also bounds connecting and starting. Default 30s.
	Timeout time.Duration
	// ApplicationName is reported to PostgreSQL (pg_stat_replication), so a
	// standby can tell who holds the slot; default "cdc".
	ApplicationName string
	// Logger receives lifecycle logs, which carry component=replication and
	// the slot; nil discards them.
	Logger *slog.Logger
}

var namePattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// withDefaults fills in defaults and checks the names, which are spliced into
// replication commands (they cannot be bound as parameters there).
func (c Config) withDefaults() (Config, error) {
	if c.Schema == "" {
		c.Schema = "public"
	}
	if c.Table == "" {
		c.Table = "mt_events"
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = time.Second
	}
	if c.StandbyRetry <= 0 {
		c.StandbyRetry = time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.ApplicationName == "" {
		c.ApplicationName = "cdc"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if !namePattern.MatchString(c.Slot) {
		return c, fmt.Errorf("slot name %q: want 1 to 63 of [a-z0-9_]", c.Slot)
	}
	if !namePattern.MatchString(c.Publication) {
		return c, fmt.Errorf("publication name %q: want 1 to 63 of [a-z0-9_]", c.Publication)
	}
	c.Logger = c.Logger.With("component", "replication", "slot", c.Slot)
	return c, nil
}
