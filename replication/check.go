package replication

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MinServerVersion is the oldest PostgreSQL major version cdc supports.
const MinServerVersion = 14

// Check inspects the server for everything a Stream needs and returns one
// error per problem, each a single line that says what is wrong and how to fix
// it: the server version, wal_level, the role's replication privilege, the
// table and its required columns, and the state of an existing publication and
// slot. An empty result means the pipeline can start.
//
// Check stops early when the server cannot be queried at all.
func Check(ctx context.Context, pool *pgxpool.Pool, cfg Config, requiredColumns []string) []error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return []error{err}
	}
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	var (
		versionNum              string
		walLevel, role          string
		replication, superuser  bool
		maxSlots, usedSlots     int
		tableExists, isRelation bool
	)
	err = pool.QueryRow(ctx, `SELECT current_setting('server_version_num'), current_setting('wal_level'),
    current_user, r.rolreplication, r.rolsuper,
    current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
    to_regclass($1) IS NOT NULL,
    coalesce((SELECT relkind IN ('r', 'p') FROM pg_class WHERE oid = to_regclass($1)), false)
FROM pg_roles r WHERE r.rolname = current_user`, pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize()).Scan(
		&versionNum, &walLevel, &role, &replication, &superuser, &maxSlots, &usedSlots, &tableExists, &isRelation)
	if err != nil {
		return []error{fmt.Errorf("query server settings: %w", err)}
	}
	if v, _ := strconv.Atoi(versionNum); v/10000 < MinServerVersion {
		add("PostgreSQL %d.%d is too old: cdc needs %d or newer", v/10000, v%10000, MinServerVersion)
	} else if cfg.Filter != "" && v/10000 < 15 {
		add("source.filter needs PostgreSQL 15 or newer (publication row filters); this server is %d", v/10000)
	}
	if walLevel != "logical" {
		add("wal_level is %q, cdc needs wal_level=logical: ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL", walLevel)
	}
	if !replication && !superuser {
		add("role %q has neither REPLICATION nor SUPERUSER: ALTER ROLE %s REPLICATION", role, pgx.Identifier{role}.Sanitize())
	}
	switch {
	case !tableExists:
		add("table %s does not exist: check source.schema (Marten's DatabaseSchemaName) and that Marten has created its event store", cfg.qualifiedTable())
	case !isRelation:
		add("%s is not a table", cfg.qualifiedTable())
	default:
		if missing, err := missingColumns(ctx, pool, cfg, requiredColumns); err != nil {
			add("inspect columns of %s: %v", cfg.qualifiedTable(), err)
		} else if len(missing) > 0 {
			noun := "column"
			if len(missing) > 1 {
				noun = "columns"
			}
			add("table %s lacks required %s %s", cfg.qualifiedTable(), noun, joinQuoted(missing))
		}
	}
	if problem, exists, err := publicationProblem(ctx, pool, cfg); err != nil {
		add("%v", err)
	} else if problem != "" {
		add("%s", problem)
	} else if !exists && tableExists {
		// cdc run will create the publication: can it, with this filter?
		canCreate := superuser
		if !superuser {
			if problem, err := createPublicationProblem(ctx, pool, cfg, role); err != nil {
				add("%v", err)
			} else if problem != "" {
				add("%s", problem)
			} else {
				canCreate = true
			}
		}
		if v, _ := strconv.Atoi(versionNum); canCreate && cfg.Filter != "" && v/10000 >= 15 {
			if _, problem, err := probeFilter(ctx, pool, cfg); err != nil {
				add("%v", err)
			} else if problem != "" {
				add("%s", problem)
			}
		}
	}
	slot, err := Slot(ctx, pool, cfg.Slot)
	switch {
	case err != nil:
		add("%v", err)
	case slot.Exists:
		if p := slot.problem(cfg); p != "" {
			add("%s", p)
		}
	case usedSlots >= maxSlots:
		add("no free replication slot to create %s: max_replication_slots = %d, all in use", cfg.Slot, maxSlots)
	}
	return problems
}

func missingColumns(ctx context.Context, pool *pgxpool.Pool, cfg Config, required []string) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
		pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize())
	if err != nil {
		return nil, err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	present := make(map[string]bool, len(have))
	for _, c := range have {
		present[c] = true
	}
	var missing []string
	for _, c := range required {
		if !present[c] {
			missing = append(missing, c)
		}
	}
	return missing, nil
}

// IsAuthError reports whether err is an authentication or authorization
// failure that retrying will not fix.
func IsAuthError(err error) bool {
	switch pgErrCode(err) {
	case "28000", "28P01", "3D000", "42501":
		return true
	}
	return false
}

// createPublicationProblem says what keeps role from creating the missing
// publication of cfg, as cdc run would: it needs the CREATE privilege on
// the database and ownership of the table. The fix is the statement the
// table's owner must run once.
func createPublicationProblem(ctx context.Context, pool *pgxpool.Pool, cfg Config, role string) (string, error) {
	var canCreate, owns bool
	var owner, db string
	err := pool.QueryRow(ctx, `SELECT has_database_privilege(current_database(), 'CREATE'),
    pg_has_role(current_user, c.relowner, 'USAGE'), pg_get_userbyid(c.relowner), current_database()
FROM pg_class c WHERE c.oid = to_regclass($1)`, pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize()).Scan(&canCreate, &owns, &owner, &db)
	if err != nil {
		return "", fmt.Errorf("check the privileges to create publication %s: %w", cfg.Publication, err)
	}
	var lacks []string
	if !canCreate {
		lacks = append(lacks, "the CREATE privilege on database "+db)
	}
	if !owns {
		lacks = append(lacks, "ownership of "+cfg.qualifiedTable()+" (owned by "+owner+")")
	}
	if len(lacks) == 0 {
		return "", nil
	}
	return fmt.Sprintf("publication %s does not exist and role %s cannot create it: it lacks %s; let %s run once: %s;",
		cfg.Publication, role, strings.Join(lacks, " and "), owner, createPublicationSQL(cfg)), nil
}
