package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
)

// SQLSTATE codes this package branches on.
const (
	codeObjectInUse         = "55006" // the slot is active for another process
	codeDuplicateObject     = "42710" // the slot or publication already exists
	codeUniqueViolation     = "23505" // two CREATE PUBLICATION raced on the catalog's unique index
	codeFeatureNotSupported = "0A000" // e.g. a row filter PostgreSQL does not accept
	codeUndefinedObject     = "42704" // the slot or publication does not exist

	codeInsufficientPrivilege = "42501" // e.g. must be owner of publication

	codeObjectNotInPrerequisiteState = "55000" // e.g. a slot that lost its WAL
)

// LostSlotRecovery says what to do about a slot whose WAL PostgreSQL
// removed (wal_status lost, after max_slot_wal_keep_size).
const LostSlotRecovery = "PostgreSQL removed WAL it still needed (max_slot_wal_keep_size), so the events committed since the sinks' checkpoints can no longer be read from it. " +
	"Recover with cdc teardown --pipeline NAME (drops the slot), then either set source.start: beginning and start cdc run (every sink is filled again from mt_events, then goes on live), " +
	"or start cdc run and run cdc replay --pipeline NAME --sink SINK --from seq:N for each sink, N the first seq_id it lacks"

// Setup creates the publication and the slot when they are missing and checks
// that existing ones fit: the publication must publish inserts into the table
// through the partition root, the slot must use pgoutput in this database.
// It reports whether it created the slot.
func Setup(ctx context.Context, pool *pgxpool.Pool, cfg Config) (createdSlot bool, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return false, err
	}
	if err := ensurePublication(ctx, pool, cfg); err != nil {
		return false, err
	}
	return ensureSlot(ctx, pool, cfg)
}

func (c Config) qualifiedTable() string { return c.Schema + "." + c.Table }

func ensurePublication(ctx context.Context, pool *pgxpool.Pool, cfg Config) error {
	problem, exists, err := publicationProblem(ctx, pool, cfg)
	if err != nil {
		return err
	}
	if problem != "" {
		return errors.New(problem)
	}
	if exists {
		return nil
	}
	sql := createPublicationSQL(cfg)
	if _, err := pool.Exec(ctx, sql); err != nil {
		if code := pgErrCode(err); code != codeDuplicateObject && code != codeUniqueViolation {
			if code == codeFeatureNotSupported && cfg.Filter != "" {
				// PostgreSQL 15 refuses, for one, `varchar_column IN (...)`:
				// the list is compared as text[] through a cast it does not allow.
				return fmt.Errorf("create publication %s for %s: PostgreSQL refused source.filter %q: %w (publication row filters allow only columns, constants and built-in immutable operators; compare varchar columns as text, e.g. tenant_id::text in ('acme', 'globex'))",
					cfg.Publication, cfg.qualifiedTable(), cfg.Filter, err)
			}
			return fmt.Errorf("create publication %s for %s: %w", cfg.Publication, cfg.qualifiedTable(), err)
		}
		// Another instance created it at the same moment: check it.
		if problem, _, err := publicationProblem(ctx, pool, cfg); err != nil || problem != "" {
			return errors.Join(err, errorIf(problem))
		}
	}
	return nil
}

// publicationProblem returns a one-line description of what is wrong with an
// existing publication, or "" when it is fine or missing.
func publicationProblem(ctx context.Context, pool *pgxpool.Pool, cfg Config) (problem string, exists bool, err error) {
	var pubInsert, viaRoot, allTables bool
	err = pool.QueryRow(ctx, `SELECT pubinsert, pubviaroot, puballtables FROM pg_publication WHERE pubname = $1`,
		cfg.Publication).Scan(&pubInsert, &viaRoot, &allTables)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("inspect publication %s: %w", cfg.Publication, err)
	}
	var publishes bool
	err = pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables
WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`, cfg.Publication, cfg.Schema, cfg.Table).Scan(&publishes)
	if err != nil {
		return "", true, fmt.Errorf("inspect publication %s: %w", cfg.Publication, err)
	}
	fix := fmt.Sprintf("drop it (cdc teardown, or DROP PUBLICATION %s) to let cdc create it, or set source.publication", cfg.Publication)
	switch {
	case !publishes:
		return fmt.Sprintf("publication %s exists but does not publish %s: %s", cfg.Publication, cfg.qualifiedTable(), fix), true, nil
	case !pubInsert:
		return fmt.Sprintf("publication %s exists but does not publish inserts: %s", cfg.Publication, fix), true, nil
	case !viaRoot:
		return fmt.Sprintf("publication %s exists without publish_via_partition_root: ALTER PUBLICATION %s SET (publish_via_partition_root = true)", cfg.Publication, cfg.Publication), true, nil
	}
	problem, err = filterProblem(ctx, pool, cfg)
	return problem, true, err
}

// filterProblem compares the row filter of an existing publication with
// source.filter, both as PostgreSQL normalises them: a changed filter in the
// configuration must not be silently ignored.
func filterProblem(ctx context.Context, pool *pgxpool.Pool, cfg Config) (string, error) {
	var version int
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return "", fmt.Errorf("inspect publication %s: %w", cfg.Publication, err)
	}
	if version < 150000 {
		return "", nil // no row filters before PostgreSQL 15
	}
	table := pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize()
	const filterOf = `SELECT pg_get_expr(pr.prqual, pr.prrelid) FROM pg_publication_rel pr
JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1 AND pr.prrelid = $2::regclass`
	var current *string
	if err := pool.QueryRow(ctx, filterOf, cfg.Publication, table).Scan(&current); err != nil {
		return "", fmt.Errorf("read the row filter of publication %s: %w", cfg.Publication, err)
	}
	want, problem, err := probeFilter(ctx, pool, cfg)
	if errors.Is(err, errNoProbe) {
		// This role may not create publications (the owner made this
		// one): compare the filters through temporary views instead.
		want, problem, err = sameFilter(ctx, pool, cfg, current)
	}
	if problem != "" || err != nil {
		return problem, err
	}
	show := func(f *string) string {
		if f == nil {
			return "no row filter"
		}
		return "row filter WHERE " + *f
	}
	if (current == nil) != (want == nil) || (current != nil && *current != *want) {
		return fmt.Sprintf("publication %s has %s, but source.filter asks for %s: change it with ALTER PUBLICATION %s SET TABLE %s%s (it applies to changes committed after it), or drop the publication (cdc teardown) to let cdc create it",
			cfg.Publication, show(current), show(want), pgx.Identifier{cfg.Publication}.Sanitize(), table, whereClause(cfg.Filter)), nil
	}
	return "", nil
}

// probeFilter lets PostgreSQL check and normalise source.filter: it creates
// a probe publication with it in a transaction that is rolled back. want is
// the normalised filter (nil without one); problem says why PostgreSQL
// refuses it.
func probeFilter(ctx context.Context, pool *pgxpool.Pool, cfg Config) (want *string, problem string, err error) {
	if cfg.Filter == "" {
		return nil, "", nil
	}
	table := pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("check source.filter: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	probe := pgx.Identifier{"cdc_filter_probe"}.Sanitize()
	// The filter is operator-written SQL from the configuration file,
	// never event data.
	if _, err := tx.Exec(ctx, "CREATE PUBLICATION "+probe+" FOR TABLE "+table+" WHERE ("+cfg.Filter+")"); err != nil {
		if pgErrCode(err) == codeInsufficientPrivilege {
			return nil, "", fmt.Errorf("%w: %w", errNoProbe, err)
		}
		return nil, fmt.Sprintf("source.filter %q: PostgreSQL refuses it: %v", cfg.Filter, err), nil
	}
	const filterOf = `SELECT pg_get_expr(pr.prqual, pr.prrelid) FROM pg_publication_rel pr
JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1 AND pr.prrelid = $2::regclass`
	if err := tx.QueryRow(ctx, filterOf, "cdc_filter_probe", table).Scan(&want); err != nil {
		return nil, "", fmt.Errorf("check source.filter: %w", err)
	}
	return want, "", nil
}

// errNoProbe is why probeFilter could not check source.filter: the role
// may not create publications.
var errNoProbe = errors.New("this role may not create a probe publication")

// sameFilter compares source.filter with current, the row filter of the
// existing publication, for a role that may not create publications: each
// becomes the WHERE clause of a temporary view (rolled back), which
// PostgreSQL normalises alike. It returns current as the normalised filter
// when they are the same, and else the filter as written. When even a
// temporary view is refused (no TEMPORARY privilege), it cannot tell and
// takes the publication's filter as meant.
func sameFilter(ctx context.Context, pool *pgxpool.Pool, cfg Config, current *string) (want *string, problem string, err error) {
	if current == nil {
		return &cfg.Filter, "", nil
	}
	table := pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("check source.filter: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Both filters are operator-written SQL (the configuration file, the
	// publication's owner), never event data.
	for _, v := range []struct{ name, filter string }{{"cdc_filter_want", cfg.Filter}, {"cdc_filter_current", *current}} {
		if _, err := tx.Exec(ctx, "CREATE TEMPORARY VIEW "+v.name+" AS SELECT 1 FROM "+table+" WHERE ("+v.filter+")"); err != nil {
			if pgErrCode(err) == codeInsufficientPrivilege {
				return current, "", nil
			}
			if v.filter == cfg.Filter {
				return nil, fmt.Sprintf("source.filter %q: PostgreSQL refuses it: %v", cfg.Filter, err), nil
			}
			return nil, "", fmt.Errorf("check the row filter of publication %s: %w", cfg.Publication, err)
		}
	}
	var same bool
	if err := tx.QueryRow(ctx, `SELECT pg_get_viewdef('pg_temp.cdc_filter_want'::regclass) = pg_get_viewdef('pg_temp.cdc_filter_current'::regclass)`).Scan(&same); err != nil {
		return nil, "", fmt.Errorf("check source.filter: %w", err)
	}
	if same {
		return current, "", nil
	}
	return &cfg.Filter, "", nil
}

func whereClause(filter string) string {
	if filter == "" {
		return ""
	}
	return " WHERE (" + filter + ")"
}

func ensureSlot(ctx context.Context, pool *pgxpool.Pool, cfg Config) (bool, error) {
	slot, err := Slot(ctx, pool, cfg.Slot)
	if err != nil {
		return false, err
	}
	if slot.Exists {
		if p := slot.problem(cfg); p != "" {
			return false, errors.New(p)
		}
		return false, nil
	}
	_, err = pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, cfg.Slot)
	if err != nil {
		if pgErrCode(err) == codeDuplicateObject {
			return false, nil // created concurrently by another instance
		}
		return false, fmt.Errorf("create replication slot %s: %w", cfg.Slot, err)
	}
	return true, nil
}

// SlotState is what pg_replication_slots says about a slot.
type SlotState struct {
	Exists         bool
	Plugin         string
	Type           string // "logical" or "physical"
	Database       string
	ThisDatabase   bool // the slot belongs to the database of the connection
	Active         bool
	ActivePID      int32   // walsender pid while active
	Holder         string  // application_name and address of the holder while active
	ConfirmedFlush cdc.LSN // confirmed_flush_lsn
	RestartLSN     cdc.LSN // restart_lsn
	CurrentWAL     cdc.LSN // pg_current_wal_lsn() when read
	RetainedBytes  int64   // WAL the slot retains: current WAL minus restart_lsn
	WALStatus      string  // reserved, extended, unreserved or lost
	// SafeWALSize is safe_wal_size: bytes of WAL that may still be written
	// before the slot is in danger of losing WAL it needs (negative once
	// unreserved); nil when PostgreSQL reports NULL, that is when
	// max_slot_wal_keep_size is -1 (unlimited) or the slot is lost.
	SafeWALSize *int64
}

// Slot reads the state of a replication slot. A missing slot is not an error:
// Exists is false.
func Slot(ctx context.Context, pool *pgxpool.Pool, name string) (SlotState, error) {
	var (
		s                          SlotState
		pid                        *int32
		plugin, db, holder, status *string
		confirmed, restart         *string
		current                    string
		retained                   *int64
	)
	err := pool.QueryRow(ctx, `SELECT s.plugin, s.slot_type, s.database::text, s.active, s.active_pid,
    (SELECT coalesce(nullif(r.application_name, ''), 'unknown') || ' from ' || coalesce(host(r.client_addr) || ':' || r.client_port, 'local socket')
       FROM pg_stat_replication r WHERE r.pid = s.active_pid),
    s.confirmed_flush_lsn::text, s.restart_lsn::text, pg_current_wal_lsn()::text,
    (pg_current_wal_lsn() - s.restart_lsn)::bigint, s.wal_status, s.safe_wal_size,
    s.database IS NOT DISTINCT FROM current_database()
FROM pg_replication_slots s WHERE s.slot_name = $1`, name).Scan(
		&plugin, &s.Type, &db, &s.Active, &pid, &holder, &confirmed, &restart, &current, &retained, &status, &s.SafeWALSize, &s.ThisDatabase)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read replication slot %s: %w", name, err)
	}
	s.Exists = true
	s.Plugin, s.Database, s.Holder, s.WALStatus = deref(plugin), deref(db), deref(holder), deref(status)
	if pid != nil {
		s.ActivePID = *pid
	}
	if retained != nil {
		s.RetainedBytes = *retained
	}
	for _, f := range []struct {
		dst *cdc.LSN
		src *string
	}{{&s.ConfirmedFlush, confirmed}, {&s.RestartLSN, restart}, {&s.CurrentWAL, &current}} {
		if f.src == nil {
			continue
		}
		if *f.dst, err = cdc.ParseLSN(*f.src); err != nil {
			return s, fmt.Errorf("read replication slot %s: %w", name, err)
		}
	}
	return s, nil
}

// problem describes why an existing slot cannot be used, or "".
func (s SlotState) problem(cfg Config) string {
	switch {
	case s.Type != "logical":
		return fmt.Sprintf("replication slot %s is a %s slot, not logical: choose another source.slot", cfg.Slot, s.Type)
	case !s.ThisDatabase:
		return fmt.Sprintf("replication slot %s belongs to database %s, not this one (slot names are shared by the whole server): choose another source.slot", cfg.Slot, s.Database)
	case s.Plugin != "pgoutput":
		return fmt.Sprintf("replication slot %s uses plugin %s, not pgoutput: drop it or choose another source.slot", cfg.Slot, s.Plugin)
	case s.WALStatus == "lost":
		return fmt.Sprintf("replication slot %s is lost: %s", cfg.Slot, LostSlotRecovery)
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Teardown drops the slot and then the publication of cfg: DropSlot, then
// DropPublication. It stops at the first error.
func Teardown(ctx context.Context, pool *pgxpool.Pool, cfg Config) (droppedSlot, droppedPublication bool, err error) {
	if droppedSlot, err = DropSlot(ctx, pool, cfg); err != nil {
		return false, false, err
	}
	droppedPublication, err = DropPublication(ctx, pool, cfg)
	return droppedSlot, droppedPublication, err
}

// DropSlot drops the replication slot of cfg, unless an instance streams
// from it. dropped is false when there was no slot.
func DropSlot(ctx context.Context, pool *pgxpool.Pool, cfg Config) (dropped bool, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return false, err
	}
	slot, err := Slot(ctx, pool, cfg.Slot)
	if err != nil {
		return false, err
	}
	if !slot.Exists {
		return false, nil
	}
	if slot.Active {
		return false, fmt.Errorf("replication slot %s is in use by %s (pid %d): stop cdc run first", cfg.Slot, slot.Holder, slot.ActivePID)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, cfg.Slot); err != nil && pgErrCode(err) != codeUndefinedObject {
		return false, fmt.Errorf("drop replication slot %s: %w", cfg.Slot, err)
	}
	return true, nil
}

// NotOwnerError is returned when cdc's role may not drop or create an
// object: Statement is what its owner (or a superuser) must run instead.
type NotOwnerError struct {
	What      string // e.g. "drop publication cdc_helpdesk"
	Role      string // cdc's role
	Statement string // the SQL the owner must run
	Err       error  // the server's refusal
}

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("%s: role %s may not (%v); its owner or a superuser must run: %s", e.What, e.Role, e.Err, e.Statement)
}

func (e *NotOwnerError) Unwrap() error { return e.Err }

// DropPublication drops the publication of cfg. dropped is false when there
// was none. When cdc's role does not own it, the error is a *NotOwnerError
// naming the statement its owner must run.
func DropPublication(ctx context.Context, pool *pgxpool.Pool, cfg Config) (dropped bool, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return false, err
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, cfg.Publication).Scan(&exists); err != nil {
		return false, fmt.Errorf("inspect publication %s: %w", cfg.Publication, err)
	}
	if !exists {
		return false, nil
	}
	stmt := "DROP PUBLICATION IF EXISTS " + pgx.Identifier{cfg.Publication}.Sanitize()
	if _, err := pool.Exec(ctx, stmt); err != nil {
		if pgErrCode(err) == codeInsufficientPrivilege {
			return false, &NotOwnerError{What: "drop publication " + cfg.Publication, Role: currentUser(ctx, pool), Statement: stmt + ";", Err: pgErrMessage(err)}
		}
		return false, fmt.Errorf("drop publication %s: %w", cfg.Publication, err)
	}
	return true, nil
}

// currentUser returns the role of pool's connections, or "cdc's role".
func currentUser(ctx context.Context, pool *pgxpool.Pool) string {
	var role string
	if err := pool.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil {
		return "cdc's role"
	}
	return role
}

// pgErrMessage returns the server's message of err without the SQLSTATE
// decoration, or err itself.
func pgErrMessage(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return errors.New(pgErr.Message)
	}
	return err
}

// errorIf returns msg as an error, or nil when msg is empty.
func errorIf(msg string) error {
	if msg == "" {
		return nil
	}
	return errors.New(msg)
}

func pgErrCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// joinQuoted formats names as "a", "b".
func joinQuoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `"`
	}
	return strings.Join(q, ", ")
}

// createPublicationSQL is the statement that creates the publication of
// cfg. The row filter is operator-written SQL from the configuration file,
// never event data.
func createPublicationSQL(cfg Config) string {
	sql := "CREATE PUBLICATION " + pgx.Identifier{cfg.Publication}.Sanitize() +
		" FOR TABLE " + pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize()
	if cfg.Filter != "" {
		sql += " WHERE (" + cfg.Filter + ")"
	}
	return sql + " WITH (publish = 'insert', publish_via_partition_root = true)"
}
