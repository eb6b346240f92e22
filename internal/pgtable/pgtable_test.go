package pgtable_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtable"
	"github.com/martencdc/cdc/internal/pgtest"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }

// TestEnsureConcurrently: many instances ensuring one table at once all
// succeed; ensuring it again runs nothing.
func TestEnsureConcurrently(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t, pg))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	name := pgx.Identifier{"public", "cdc_things"}
	ddl := `CREATE TABLE IF NOT EXISTS ` + name.Sanitize() + ` (id int PRIMARY KEY)`
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgtable.Ensure(context.Background(), pool, name, ddl)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if c {
				created++
			}
		}()
	}
	wg.Wait()
	if created == 0 {
		t.Fatalf("none of %d callers ran the DDL", n)
	}
	if c, err := pgtable.Ensure(t.Context(), pool, name, ddl); err != nil || c {
		t.Fatalf("ensure an existing table: created %v, %v", c, err)
	}
}

// TestEnsureWithoutPrivilege: a role that may not create tables is fine
// once the table exists, and gets the server's refusal otherwise.
func TestEnsureWithoutPrivilege(t *testing.T) {
	dsn := pgtest.NewDatabase(t, pg)
	admin, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, sql := range []string{
		`DROP ROLE IF EXISTS pgtable_reader`,
		`CREATE ROLE pgtable_reader LOGIN`,
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		`CREATE TABLE present (id int)`,
	} {
		if _, err := admin.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = "pgtable_reader"
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if c, err := pgtable.Ensure(t.Context(), conn, pgx.Identifier{"public", "present"}, `CREATE TABLE public.present (id int)`); err != nil || c {
		t.Fatalf("existing table: created %v, %v", c, err)
	}
	if _, err := pgtable.Ensure(t.Context(), conn, pgx.Identifier{"public", "absent"}, `CREATE TABLE public.absent (id int)`); err == nil {
		t.Fatal("created a table without the privilege")
	}
}
