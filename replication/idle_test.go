package replication_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/replication"
)

// idleConsumer makes durable what it received each time the stream goes
// idle: its confirmable position moves to the end LSN of the last commit,
// and it signals Advanced.
type idleConsumer struct {
	*consumer
	lastEnd     atomic.Uint64 // end LSN of the last commit received
	confirmable atomic.Uint64
	idles       atomic.Int64
	advanced    chan struct{}
}

func (c *idleConsumer) Message(_ context.Context, data []byte) error {
	// pgoutput Commit: 'C', flags, commit LSN, end LSN, commit time.
	if len(data) >= 18 && data[0] == 'C' {
		c.lastEnd.Store(binary.BigEndian.Uint64(data[10:18]))
	}
	return nil
}

func (c *idleConsumer) Idle() {
	c.idles.Add(1)
	c.confirmable.Store(c.lastEnd.Load())
	select {
	case c.advanced <- struct{}{}:
	default:
	}
}

func (c *idleConsumer) Advanced() <-chan struct{} { return c.advanced }
func (c *idleConsumer) Confirmable() cdc.LSN      { return cdc.LSN(c.confirmable.Load()) }

// TestIdleAndPromptConfirm: the stream calls Idle once a transaction is
// handed over and nothing follows, and when the consumer signals that its
// confirmable position moved, the slot confirms it long before the next
// status update is due.
func TestIdleAndPromptConfirm(t *testing.T) {
	dsn := pgtest.NewMartenDatabase(t, pg, "public")
	pool := poolFor(t, dsn)
	const statusInterval = 10 * time.Second
	cfg := replication.Config{Slot: "cdc_idle", Publication: "cdc_idle", StatusInterval: statusInterval}
	dropSlot(t, pool, cfg)
	if _, err := replication.Setup(t.Context(), pool, cfg); err != nil {
		t.Fatal(err)
	}
	s, err := replication.NewStream(dsn, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &idleConsumer{consumer: newConsumer(), advanced: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c) }()
	pgtest.Eventually(t, 10*time.Second, func() bool { return s.State() == replication.StateStreaming }, "streams")
	for round, txs := range []int{1, 20} { // one transaction, then a burst
		idles := c.idles.Load()
		for i := range txs {
			if _, err := pool.Exec(t.Context(), `SELECT public.mt_quick_append_events($1::uuid, 'incident', '*DEFAULT*', ARRAY[gen_random_uuid()],
  ARRAY['incident_logged']::varchar[], ARRAY['X']::varchar[], ARRAY['{"n":1}']::jsonb[], ARRAY[NULL]::varchar[], ARRAY[NULL]::varchar[], ARRAY[NULL]::jsonb[])`,
				fmt.Sprintf("00000000-0000-4000-8000-%06d%06d", round, i)); err != nil {
				t.Fatal(err)
			}
		}
		var end cdc.LSN
		pgtest.Eventually(t, statusInterval/2, func() bool {
			end = cdc.LSN(c.confirmable.Load())
			return c.idles.Load() > idles && end != 0 && end == cdc.LSN(c.lastEnd.Load())
		}, "round %d: idle after the last commit", round)
		pgtest.Eventually(t, statusInterval/2, func() bool {
			st, err := replication.Slot(t.Context(), pool, cfg.Slot)
			if err != nil {
				t.Fatal(err)
			}
			return st.ConfirmedFlush >= end
		}, "round %d: the slot confirms %s before the status interval is over", round, end)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
