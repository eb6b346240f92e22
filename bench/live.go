package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc/bench/poller"
	"github.com/martencdc/cdc/bench/workload"
)

// live runs the workload at a fixed rate for LiveFor with cdc streaming
// (stdout, Kafka and Elasticsearch, as selected) and, with Polling, the
// Marten-style poller beside it, and adds a row per reader with the
// latency from each event's commit to its arrival.
func (b *run) live(ctx context.Context, rate int) error {
	kinds := slices.DeleteFunc(slices.Clone(b.o.Sinks), func(k string) bool { return len(kindsOf(k)) != 1 || k == SinkPostgres || k == SinkNATS })
	if len(kinds) == 0 {
		kinds = []string{SinkStdout}
	}
	suffix := fmt.Sprintf("live_%d", rate)
	name := "bench_" + suffix
	var sinks string
	for _, k := range kinds {
		sinks += b.sinkYAML(k, suffix)
	}
	cfg, err := b.writeConfig(name, "cdc_bench_live", sinks)
	if err != nil {
		return err
	}
	arrived := map[string]*arrivals{}
	for _, k := range kinds {
		arrived[k] = newArrivals()
	}
	if b.es != nil {
		arrived[SinkElastic] = b.es.arrived
	}
	pr, pw := io.Pipe()
	p, err := startProc(ctx, b.o.Command, b.o.Env, cfg, pw)
	if err != nil {
		return err
	}
	lines := make(chan struct{})
	go func() { defer close(lines); readIDs(pr, arrived[SinkStdout]) }()
	defer func() {
		_ = p.stop(time.Minute)
		pw.Close()
		<-lines
		b.drop(ctx, "cdc_bench_live")
	}()
	if _, err := p.waitStreaming(ctx, 2*time.Minute); err != nil {
		return fmt.Errorf("bench: live at %d/s: %w", rate, err)
	}
	lctx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	kafkaDone := make(chan error, 1)
	if a, ok := arrived[SinkKafka]; ok {
		go func() { kafkaDone <- b.kafka.consume(lctx, "bench_"+suffix, a) }()
	} else {
		kafkaDone <- nil
	}
	// Two pollers: Marten 8's daemon (a gap stale for 3 s is skipped) and
	// Marten 9.16.1+'s (a gap with a live transaction behind it is held).
	pollers := []*polling{{name: "Marten 8.x"}, {name: "Marten 9.16+", hold: true}}
	if b.o.Polling {
		var from int64
		_ = b.pool.QueryRow(ctx, `SELECT coalesce(max(seq_id), 0) FROM `+pgx.Identifier{b.o.Schema, "mt_events"}.Sanitize()).Scan(&from)
		for _, pl := range pollers {
			pl.arrived, pl.done = newArrivals(), make(chan struct{})
			go func() {
				defer close(pl.done)
				pl.stats, pl.err = poller.Run(lctx, b.pool, poller.Options{Schema: b.o.Schema, From: from, HoldLiveGaps: pl.hold},
					func(d poller.Delivery) { pl.arrived.mark(d.ID, d.At) })
			}()
		}
	}

	commits := newArrivals()
	w := b.o.Workload
	w.Rate = rate
	txPerSecond := float64(rate) / float64(w.TxEvents)
	w.SlowShare, w.RollbackShare = share(b.o.SlowEvery, txPerSecond), share(b.o.RollbackEvery, txPerSecond)
	wctx, stopWriting := context.WithTimeout(ctx, b.o.LiveFor)
	b.progress("live at %d events/s for %s (a transaction slow for %s every %s, one rolled back every %s, on average)...", rate, b.o.LiveFor, w.SlowFor, b.o.SlowEvery, b.o.RollbackEvery)
	res, err := workload.Run(wctx, b.wpool, w, 0, func(c workload.Commit) {
		for _, id := range c.IDs {
			commits.mark(id, c.At)
		}
	})
	stopWriting()
	if err != nil && ctx.Err() == nil && wctx.Err() == nil {
		return fmt.Errorf("bench: live workload: %w", err)
	}
	// Every cdc sink gets every committed event; the poller gets what its
	// high-water mark lets through, which can take the stale threshold.
	deadline := time.Now().Add(time.Minute)
	for _, k := range kinds {
		for !arrived[k].hasAll(commits) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if b.o.Polling {
		// A poller behind a stale gap waits 3 s per gap: give it until
		// it has everything or has delivered nothing for 6 s, at most
		// a minute.
		pdeadline := time.Now().Add(time.Minute)
		for _, pl := range pollers {
			quiet, last := time.Now(), pl.arrived.count()
			for !pl.arrived.hasAll(commits) && time.Since(quiet) < 6*time.Second && time.Now().Before(pdeadline) {
				time.Sleep(50 * time.Millisecond)
				if n := pl.arrived.count(); n != last {
					quiet, last = time.Now(), n
				}
			}
		}
	}
	stopReaders()
	if err := <-kafkaDone; err != nil {
		return fmt.Errorf("bench: live at %d/s: %w", rate, err)
	}
	for _, pl := range pollers {
		if pl.done != nil {
			<-pl.done
			if pl.err != nil && ctx.Err() == nil {
				return fmt.Errorf("bench: poller: %w", pl.err)
			}
		}
	}
	actual := float64(res.Committed) / b.o.LiveFor.Seconds()
	for _, k := range kinds {
		l := latency(commits, arrived[k])
		row := Row{Name: fmt.Sprintf("cdc %s @ %d/s", k, rate), Events: l.Events, P50: ms(l.P50), P99: ms(l.P99), Max: ms(l.Max), PeakRSS: p.peakRSS(), Missing: l.Missing,
			Note: fmt.Sprintf("commit to %s; writers reached %.0f/s", arrival(k), actual)}
		b.report.Rows = append(b.report.Rows, row)
		b.progress("%s: p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d missing", row.Name, row.P50, row.P99, row.Max, row.Missing)
	}
	if b.o.Polling {
		for _, pl := range pollers {
			l := latency(commits, pl.arrived)
			lost, err := poller.Lost(ctx, b.pool, b.o.Schema, pl.stats.Skipped)
			if err != nil {
				return fmt.Errorf("bench: poller: %w", err)
			}
			row := Row{Name: fmt.Sprintf("polling like %s's daemon @ %d/s", pl.name, rate), Events: l.Events, P50: ms(l.P50), P99: ms(l.P99), Max: ms(l.Max),
				Missing: l.Missing, Lost: len(lost),
				Note: fmt.Sprintf("commit to delivery; mark skipped %d gaps; missing = not delivered by the end", pl.stats.SkippedGaps)}
			b.report.Rows = append(b.report.Rows, row)
			b.progress("%s: p50 %.1f ms, p99 %.1f ms, %d missing, %d skipped for good", row.Name, row.P50, row.P99, row.Missing, row.Lost)
		}
	}
	return nil
}

// polling is one poller of a live run.
type polling struct {
	name    string
	hold    bool
	arrived *arrivals
	done    chan struct{}
	stats   poller.Stats
	err     error
}

func arrival(kind string) string {
	switch kind {
	case SinkStdout:
		return "the line read from cdc's stdout"
	case SinkKafka:
		return "a consumer's fetch"
	case SinkElastic:
		return "the bulk request"
	}
	return kind
}

// readIDs marks the id of each envelope line read from r (the first field
// of cdc's JSON envelope) in a, if a is not nil.
func readIDs(r io.Reader, a *arrivals) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	prefix := []byte(`{"id":"`)
	for sc.Scan() {
		line := sc.Bytes()
		if a == nil || !bytes.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		if end := bytes.IndexByte(rest, '"'); end > 0 {
			a.mark(string(rest[:end]), time.Now())
		}
	}
}

// bigTransaction appends BigTx events in one COPY transaction while cdc
// streams into Kafka, and measures from the commit to the sink's
// checkpoint, with cdc's peak RSS.
func (b *run) bigTransaction(ctx context.Context) error {
	name := "bench_bigtx"
	cfg, err := b.writeConfig(name, "cdc_bench_bigtx", b.sinkYAML(SinkKafka, "bigtx"))
	if err != nil {
		return err
	}
	out, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	p, err := startProc(ctx, b.o.Command, b.o.Env, cfg, out)
	if err != nil {
		return err
	}
	defer func() { _ = p.stop(time.Minute); b.drop(ctx, "cdc_bench_bigtx") }()
	if _, err := p.waitStreaming(ctx, 2*time.Minute); err != nil {
		return fmt.Errorf("bench: big transaction: %w", err)
	}
	b.progress("one transaction of %d events (COPY)...", b.o.BigTx)
	w := b.o.Workload
	w.Streams = max(1, b.o.BigTx/100)
	big, err := workload.BigTransaction(ctx, b.wpool, w, b.o.BigTx)
	at := big.At
	if err != nil {
		return fmt.Errorf("bench: big transaction: %w", err)
	}
	done, err := b.waitDelivered(ctx, name, 1, int64(b.o.BigTx), p, 30*time.Minute)
	if err != nil {
		return fmt.Errorf("bench: big transaction: %w", err)
	}
	row := Row{Name: fmt.Sprintf("one COPY transaction of %d events, into kafka", b.o.BigTx), Events: b.o.BigTx, Seconds: done.Sub(at).Seconds(), PeakRSS: p.peakRSS(),
		Note: "time from COMMIT to the sink's checkpoint"}
	b.report.Rows = append(b.report.Rows, row)
	b.progress("%s: %.2f s from commit to checkpoint, peak RSS %.1f MiB", row.Name, row.Seconds, float64(row.PeakRSS)/(1<<20))
	return nil
}

// share is the share of transactions that makes one every period at
// txPerSecond transactions per second (0 for no period).
func share(period time.Duration, txPerSecond float64) float64 {
	if period <= 0 || txPerSecond <= 0 {
		return 0
	}
	return min(0.5, 1/(txPerSecond*period.Seconds()))
}
