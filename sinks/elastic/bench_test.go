package elastic

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/internal/esfake"
	"github.com/martencdc/cdc/route"
)

// BenchmarkWrite writes batches of 1000 events of about 700 bytes (as
// envelopes) from 200 streams, 5 events each, in both modes, to servers in
// the same process:
//
//   - esfake: the fake Elasticsearch, which parses, maps and stores every
//     document; it is replaced every 50 batches to bound its memory.
//   - stub: a handler that reads the request and answers every item with
//     201 (and _mget with "not found"), so that the figures are those of
//     the sink and go-elasticsearch.
//
// Each iteration writes new seq_ids and stream versions, so nothing is a
// version conflict.
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []Mode{ModeEvents, ModeLatest} {
		for _, server := range []string{"esfake", "stub"} {
			b.Run(string(mode)+"/"+server, func(b *testing.B) {
				benchmarkWrite(b, mode, server)
			})
		}
	}
}

func benchmarkWrite(b *testing.B, mode Mode, server string) {
	var (
		srv  *esfake.Server
		stub *httptest.Server
		s    *Sink
	)
	start := func() {
		var addr string
		if server == "stub" {
			stub = httptest.NewServer(&esfake.Stub{})
			addr = stub.URL
		} else {
			srv = esfake.New()
			addr = srv.URL()
		}
		var err error
		s, err = New(Config{Addresses: []string{addr}, Index: route.MustParse("bench"), Mode: mode})
		if err != nil {
			b.Fatal(err)
		}
	}
	stop := func() {
		_ = s.Close(context.Background())
		if stub != nil {
			stub.Close()
		} else {
			srv.Close()
		}
	}
	start()
	defer func() { stop() }()

	const streams, versions = 200, 5
	events := makeEvents(streams, versions, 300, 1)
	var size int64
	for _, e := range events {
		size += int64(len(envelope.Append(nil, e)))
	}
	batch := make([]*cdc.Event, len(events))
	copies := make([]cdc.Event, len(events))
	ctx := context.Background()
	b.SetBytes(size)
	b.ReportAllocs()
	writes := 0
	for b.Loop() {
		b.StopTimer()
		if server == "esfake" && writes > 0 && writes%50 == 0 {
			stop()
			start()
		}
		for i, e := range events {
			copies[i] = *e
			copies[i].SeqID += int64(writes * len(events))
			copies[i].Version += int64(writes * versions)
			batch[i] = &copies[i]
		}
		b.StartTimer()
		if err := s.Write(ctx, cdc.Batch{Events: batch}); err != nil {
			b.Fatal(err)
		}
		writes++
	}
	b.ReportMetric(float64(writes*len(events))/b.Elapsed().Seconds(), "events/s")
}
