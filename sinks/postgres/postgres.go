package postgres

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
)

// Mode says what the sink writes.
type Mode string

// Modes.
const (
	// ModeProjections applies the events to read models through Routes.
	// The default.
	ModeProjections Mode = "projections"
	// ModeEvents copies the events into Table (an archive or an outbox),
	// idempotent on the event id.
	ModeEvents Mode = "events"
)

// Modes returns every Mode, the default (ModeProjections) first: the
// spellings the configuration accepts.
func Modes() []Mode { return []Mode{ModeProjections, ModeEvents} }

// Defaults of Config.
const (
	// DefaultTable is the default of Config.Table.
	DefaultTable = "cdc_events"
	// DefaultCheckpointTable is the default of Config.CheckpointTable.
	DefaultCheckpointTable = "cdc_sink_checkpoints"
)

// Config configures a PostgreSQL sink.
type Config struct {
	// Pool reaches the target database. Required. The sink does not close
	// it: the caller owns it.
	Pool *pgxpool.Pool
	// Pipeline and Sink name the sink's row in the checkpoint table.
	// Required.
	Pipeline, Sink string
	// Mode is what the sink writes. Default ModeProjections.
	Mode Mode
	// Routes are the projections of ModeProjections, applied in this order
	// to each event whose type they match. At least one is required in
	// ModeProjections; none may be set in ModeEvents. Names must be unique.
	Routes []Route
	// Table is the table ModeEvents copies the events into, "name" or
	// "schema.name", created (with its schema) by Prepare if missing.
	// Default DefaultTable ("cdc_events"). Only for ModeEvents.
	Table string
	// CheckpointTable holds the sink's checkpoint in the target database,
	// "name" or "schema.name", created by Prepare if missing. Default
	// DefaultCheckpointTable ("cdc_sink_checkpoints").
	CheckpointTable string
	// Progress, when set, records the sink's progress in the transaction
	// of every batch that moves its checkpoint: Marten's
	// mt_event_progression rows (progression.Writer), when the target is
	// the Marten database. Redeliver does not record progress.
	Progress Progress
	// Logger receives the sink's logs: tables created (Info), batches sent
	// again event by event after a failure (Debug). The sink adds
	// component; the caller's logger should carry the pipeline and the
	// sink (package assemble's does). Default: none.
	Logger *slog.Logger
}

// Validate checks the configuration. Zero values stand for the defaults.
func (c *Config) Validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("postgres sink: no connection pool")
	case c.Pipeline == "":
		return errors.New("postgres sink: no pipeline name (it names the checkpoint row)")
	case c.Sink == "":
		return errors.New("postgres sink: no sink name (it names the checkpoint row)")
	}
	if _, err := parseTable(c.CheckpointTable, DefaultCheckpointTable); err != nil {
		return fmt.Errorf("postgres sink: checkpoint table: %w", err)
	}
	switch c.Mode {
	case "", ModeProjections:
		if c.Table != "" {
			return errors.New("postgres sink: table is for mode events only")
		}
		if len(c.Routes) == 0 {
			return errors.New("postgres sink: no projections")
		}
		names := map[string]bool{}
		for i := range c.Routes {
			if err := c.Routes[i].validate(); err != nil {
				return fmt.Errorf("postgres sink: %w", err)
			}
			if names[c.Routes[i].Name] {
				return fmt.Errorf("postgres sink: two projections named %s", c.Routes[i].Name)
			}
			names[c.Routes[i].Name] = true
		}
	case ModeEvents:
		if len(c.Routes) > 0 {
			return errors.New("postgres sink: projections are for mode projections only (mode is events)")
		}
		if _, err := parseTable(c.Table, DefaultTable); err != nil {
			return fmt.Errorf("postgres sink: table: %w", err)
		}
	default:
		return fmt.Errorf("postgres sink: mode %q: want projections or events", c.Mode)
	}
	return nil
}

// table is a table name, maybe schema-qualified.
type table struct {
	schema, name string
}

// parseTable parses "name" or "schema.name"; "" gives def. Names are taken
// as written (case included) and quoted in SQL.
func parseTable(s, def string) (table, error) {
	if s == "" {
		s = def
	}
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if p == "" || strings.TrimSpace(p) != p {
			return table{}, fmt.Errorf("%q: want name or schema.name", s)
		}
	}
	switch len(parts) {
	case 1:
		return table{name: parts[0]}, nil
	case 2:
		return table{schema: parts[0], name: parts[1]}, nil
	}
	return table{}, fmt.Errorf("%q: want name or schema.name", s)
}

// String returns the table as written in the configuration.
func (t table) String() string {
	if t.schema == "" {
		return t.name
	}
	return t.schema + "." + t.name
}

// ident returns the name as an identifier.
func (t table) ident() pgx.Identifier {
	if t.schema == "" {
		return pgx.Identifier{t.name}
	}
	return pgx.Identifier{t.schema, t.name}
}

// sql returns the quoted name for SQL text.
func (t table) sql() string { return t.ident().Sanitize() }

// Sink writes events to a PostgreSQL database: through projections, or as
// rows of an events table, each batch in one transaction that also moves
// the sink's checkpoint. Its methods are safe for concurrent use; Write
// calls are serialised.
type Sink struct {
	pool     *pgxpool.Pool
	pipeline string
	sink     string
	mode     Mode
	routes   []Route
	events   *eventsProjection // ModeEvents
	cpTable  table
	cpSQL    string // the checkpoint upsert
	log      *slog.Logger
	progress Progress // may be nil

	mu       sync.Mutex   // held by Write, Prepare, Checkpoint, Close
	current  []*cdc.Event // the batch being written
	closed   bool
	prepared bool
	// floor is the checkpoint stored in the target, as last read or
	// committed; valid only when floorKnown. hasFloor is false when the
	// target holds no row for the sink.
	floor      cdc.Position
	hasFloor   bool
	floorKnown bool
	byType     map[string][]int // event type -> indexes of the routes matching it
}

// Progress is what a batch's transaction records besides the checkpoint
// (Config.Progress).
type Progress interface {
	// Statement returns a statement recording that events are applied,
	// and false when there is nothing to record.
	Statement(events []*cdc.Event) (sql string, args []any, ok bool)
	// Committed says that the statement for events committed.
	Committed(events []*cdc.Event)
}

// errClosed is returned by the sink's methods after Close.
var errClosed = errors.New("postgres sink is closed")

// New returns a PostgreSQL sink. It validates cfg, starts no goroutine and
// does no I/O: the first Write, Check, Prepare or Checkpoint does.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cp, _ := parseTable(cfg.CheckpointTable, DefaultCheckpointTable)
	s := &Sink{
		pool:     cfg.Pool,
		pipeline: cfg.Pipeline,
		sink:     cfg.Sink,
		mode:     cfg.Mode,
		routes:   append([]Route(nil), cfg.Routes...),
		cpTable:  cp,
		cpSQL:    checkpointSQL(cp),
		log:      cfg.Logger,
		progress: cfg.Progress,
		byType:   map[string][]int{},
	}
	if s.mode == "" {
		s.mode = ModeProjections
	}
	if s.mode == ModeEvents {
		t, _ := parseTable(cfg.Table, DefaultTable)
		s.events = newEventsProjection(t)
		s.routes = []Route{{Name: t.String(), On: []string{"*"}, Projection: s.events}}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "postgres")
	return s, nil
}

// routesFor returns the indexes of the routes that match events of type
// typ, in route order.
func (s *Sink) routesFor(typ string) []int {
	if rs, ok := s.byType[typ]; ok {
		return rs
	}
	var rs []int
	for i := range s.routes {
		if s.routes[i].matches(typ) {
			rs = append(rs, i)
		}
	}
	s.byType[typ] = rs
	return rs
}
