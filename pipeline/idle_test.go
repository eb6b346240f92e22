package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgtest"
	"github.com/martencdc/cdc/pipeline"
)

// TestIdleRetainsNoWAL: with no new events but heavy writes to other tables,
// the slot's confirmed position follows the server's WAL end and the WAL it
// retains stays bounded.
func TestIdleRetainsNoWAL(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	h.start(pipeline.Config{Sinks: []pipeline.SinkConfig{{Name: "rec", Sink: rec}}})
	events := appendN(t, h, 1, 3)
	pgtest.Eventually(t, 10*time.Second, func() bool { return rec.count() == len(events) }, "events delivered")

	ctx := t.Context()
	if _, err := h.pool.Exec(ctx, `CREATE TABLE other_stuff (id bigserial PRIMARY KEY, payload text)`); err != nil {
		t.Fatal(err)
	}
	const rounds, perRound = 8, 4 << 20 // 32 MiB of payload in all
	for range rounds {
		if _, err := h.pool.Exec(ctx, `INSERT INTO other_stuff (payload) SELECT $1 FROM generate_series(1, 64)`,
			strings.Repeat("x", perRound/64)); err != nil {
			t.Fatal(err)
		}
	}
	var endText string
	if err := h.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&endText); err != nil {
		t.Fatal(err)
	}
	end, err := cdc.ParseLSN(endText)
	if err != nil {
		t.Fatal(err)
	}
	startRetained := slotState(t, h).RetainedBytes
	pgtest.Eventually(t, 15*time.Second, func() bool { return slotState(t, h).ConfirmedFlush >= end },
		"the idle slot confirms up to the WAL end %s", end)

	// restart_lsn follows once the server logs a running-transactions record
	// past the confirmed position (a checkpoint does).
	const bound = 4 << 20
	pgtest.Eventually(t, 15*time.Second, func() bool {
		if _, err := h.pool.Exec(ctx, `CHECKPOINT`); err != nil {
			t.Fatal(err)
		}
		return slotState(t, h).RetainedBytes < bound
	}, "retained WAL under %d bytes (it was %d after writing %d bytes elsewhere)", bound, startRetained, rounds*perRound)
	if n := rec.count(); n != len(events) {
		t.Fatalf("%d events delivered, want %d", n, len(events))
	}
}
