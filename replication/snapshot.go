package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgerr"
)

// SnapshotSlot is a replication slot created with an exported snapshot. The
// two meet exactly at Point: the snapshot holds the transactions committed
// before Point (their commit record starts before it), and a slot decodes
// the transactions whose commit record starts at or after it. This is the
// boundary PostgreSQL's own table synchronisation relies on; cdc's backfill
// reads the table in the snapshot and takes the rest from a slot.
//
// The snapshot can be imported (SET TRANSACTION SNAPSHOT) by any number of
// transactions while the SnapshotSlot is open and its connection idle.
// Close ends it; a temporary slot is dropped with it.
type SnapshotSlot struct {
	Name     string  // the slot
	Snapshot string  // the snapshot's name, for SET TRANSACTION SNAPSHOT
	Point    cdc.LSN // the consistent point: the hand-off LSN
	conn     *pgconn.PgConn
}

// CreateSnapshotSlot creates slot name (temporary: dropped when it is
// closed) with an exported snapshot, on a replication connection to the
// database of dsn. cfg gives the connection settings (timeouts, application
// name); its slot is not touched.
func CreateSnapshotSlot(ctx context.Context, dsn string, cfg Config, name string, temporary bool) (*SnapshotSlot, error) {
	cfg.Slot = name
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	repl, err := replicationConnConfig(dsn, cfg)
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, repl)
	if err != nil {
		return nil, fmt.Errorf("connect for replication: %w", pgerr.Clean(err))
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary:      temporary,
		SnapshotAction: "EXPORT_SNAPSHOT",
		Mode:           pglogrepl.LogicalReplication,
	})
	if err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("create replication slot %s with a snapshot: %w", name, err)
	}
	point, err := cdc.ParseLSN(res.ConsistentPoint)
	if err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("create replication slot %s: consistent point: %w", name, err)
	}
	return &SnapshotSlot{Name: name, Snapshot: res.SnapshotName, Point: point, conn: conn}, nil
}

// Close ends the snapshot (and drops the slot if it is temporary).
func (s *SnapshotSlot) Close() {
	if s.conn != nil {
		closeConn(s.conn)
		s.conn = nil
	}
}

func closeConn(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
