package postgres

import (
	"context"
	"log/slog"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/examples/helpdesk"
)

// BenchmarkWrite writes batches of 1000 Helpdesk events, one transaction
// each, and reports events per second:
//
//   - helpdesk: the Helpdesk example's read models (2 to 3 statements per
//     event, inserts and updates of three tables), pipelined;
//   - upsert: one upsert per event into a table of the latest event of each
//     stream, pipelined;
//   - upsert_applied: the same projection applied event by event (what a Go
//     projection that is not a Batcher gets);
//   - events: ModeEvents, one INSERT ... SELECT FROM unnest per batch.
func BenchmarkWrite(b *testing.B) {
	const batch = 1000
	upsert, err := SQL("latest", []string{"*"}, `
INSERT INTO latest AS l (stream_id, version, type, data, lsn)
VALUES ($stream_id, $version, $type, $data, $lsn)
ON CONFLICT (stream_id) DO UPDATE
SET version = excluded.version, type = excluded.type, data = l.data || excluded.data, lsn = excluded.lsn`)
	if err != nil {
		b.Fatal(err)
	}
	routes, err := helpdeskRoutes()
	if err != nil {
		b.Fatal(err)
	}
	const latestDDL = `CREATE TABLE latest (stream_id uuid PRIMARY KEY, version bigint NOT NULL, type text NOT NULL, data jsonb NOT NULL, lsn pg_lsn NOT NULL)`
	for _, bc := range []struct {
		name string
		ddl  string
		cfg  Config
	}{
		{"helpdesk", helpdesk.DDL, Config{Routes: routes}},
		{"upsert", latestDDL, Config{Routes: []Route{upsert}}},
		{"upsert_applied", latestDDL, Config{Routes: []Route{{Name: "latest", On: []string{"*"}, Projection: applyOnly{upsert.Projection}}}}},
		{"events", "", Config{Mode: ModeEvents}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pool := newTarget(b, bc.ddl)
			bc.cfg.Logger = slog.New(slog.DiscardHandler)
			s := newSink(b, pool, bc.cfg)
			if err := s.Prepare(context.Background()); err != nil {
				b.Fatal(err)
			}
			f := newFeed(7)
			write(b, s, f.next(batch)) // warm up: connection, statement cache
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				events := f.next(batch)
				b.StartTimer()
				if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
