package backfill

import (
	"os"
	"testing"

	"github.com/martencdc/cdc/internal/pgcluster"
	"github.com/martencdc/cdc/internal/pgtest"
)

// pg is the package's throwaway PostgreSQL cluster; every test that needs
// a database takes its own with pgtest.NewDatabase.
var pg *pgcluster.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &pg)) }
