package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The RSS rule of the soak: with A the median VmRSS of the cdc child over
// the samples of the first third of the run and B the median over the last
// third, the soak fails when B > rssGrowthFactor·A + rssGrowthSlack. The
// restarts and faults all happen in the middle third, so each of the two
// thirds is one process under steady load; a leak proportional to the
// events delivered shows as B far above A, while the slack absorbs the
// heap high-water mark a catch-up leaves behind (Go returns freed memory to
// the system gradually).
const (
	rssGrowthFactor = 1.5
	rssGrowthSlack  = 32 << 20
)

// soakSample is one row of the soak's table.
type soakSample struct {
	At        time.Duration  // since the start of the run
	Proc      string         // the cdc child sampled
	RSS       int64          // its VmRSS in bytes; 0 when it could not be read
	Committed int            // events committed so far
	Held      map[string]int // distinct events each sink holds
	Rate      map[string]int // events/s each sink received since the previous sample
	Event     string         `json:",omitempty"` // a fault or restart since the previous sample
}

// TestSoak runs a steady write load for -soak (skipped when unset) through
// every kind of sink but the file, with, in the middle third of the run, a
// cdc restart by SIGTERM, one by SIGKILL, a PostgreSQL crash and restart,
// and a Kafka outage. Every few seconds it samples the cdc child's RSS
// (VmRSS from /proc/<pid>/status) and the delivered-events throughput of
// each sink, and prints the table. It fails if any committed event is
// missing from a sink at the end, if a sink breaks its guarantee, or by
// the RSS rule above.
//
//	go test ./faults -run Soak -soak=10m -v -timeout 30m
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("the soak runs only when asked for: go test ./faults -run Soak -soak=10m -v (-soak is its duration)")
	}
	d := *soak
	if d < time.Minute {
		t.Fatalf("-soak=%v: give the soak at least a minute", d)
	}
	interval := min(max(d/60, 2*time.Second), 10*time.Second)
	e := NewEnv(t, Options{OwnCluster: true})
	e.Stdout("out")
	bus := e.Kafka("bus", KafkaOptions{WriteTimeout: "2s"})
	e.Elastic("search")
	e.Postgres("readmodel", PostgresOptions{})
	cfg := e.WriteConfig(Config{})
	var current atomic.Pointer[Proc]
	current.Store(e.StartStreaming("cdc-1", cfg, startDeadline))
	w := e.StartWorkload(WorkloadOptions{Writers: 2, Pause: 5 * time.Millisecond})
	began := time.Now()

	// The sampler runs beside the schedule, which blocks in waits.
	var mu sync.Mutex
	var samples []soakSample
	var pending []string // events to note in the next sample
	note := func(s string) {
		mu.Lock()
		pending = append(pending, s)
		mu.Unlock()
		t.Logf("%8v  %s", time.Since(began).Round(time.Second), s)
	}
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		prev := map[string]int{}
		prevAt := time.Now()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
			p := current.Load()
			s := soakSample{At: time.Since(began), Proc: p.Tag, Held: map[string]int{}, Rate: map[string]int{}, Committed: w.Counts().Committed}
			if rss, err := p.RSS(); err == nil {
				s.RSS = rss
			}
			now := time.Now()
			for _, k := range e.sinks {
				n := e.Held(k.Name())
				s.Held[k.Name()] = n
				s.Rate[k.Name()] = int(float64(n-prev[k.Name()]) / now.Sub(prevAt).Seconds())
				prev[k.Name()] = n
			}
			prevAt = now
			mu.Lock()
			s.Event = strings.Join(pending, "; ")
			pending = nil
			samples = append(samples, s)
			mu.Unlock()
		}
	}()
	defer func() { stopSampling(); <-sampled }()

	// at waits until the given fraction of the run.
	at := func(frac float64) {
		t.Helper()
		target := began.Add(time.Duration(frac * float64(d)))
		if wait := time.Until(target); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-t.Context().Done():
				timer.Stop()
				t.Fatal("test ended during the soak")
			}
		}
		e.checkChildren()
	}
	restart := func(tag string, f *Fault, stop func(p *Proc)) {
		stop(current.Load())
		current.Store(e.Start(tag, cfg))
		e.Lift(f)
		e.AwaitRecovery(f, recoverDeadline)
	}

	at(0.35)
	note("SIGTERM cdc-1, start cdc-2")
	restart("cdc-2", e.Inject("cdc SIGTERM and restart"), func(p *Proc) { p.StopOK() })
	at(0.42)
	note("SIGKILL cdc-2, start cdc-3")
	restart("cdc-3", e.Inject("cdc SIGKILL and restart"), func(p *Proc) { p.Kill() })
	at(0.50)
	note("PostgreSQL crash and restart")
	f := e.Inject("PostgreSQL crash and restart")
	mustDo(t, "crash PostgreSQL", e.Cluster.Crash())
	mustDo(t, "restart PostgreSQL", e.Cluster.Restart(t.Context()))
	e.Lift(f)
	e.AwaitRecovery(f, recoverDeadline)
	at(0.57)
	note("Kafka outage begins (produce refused)")
	f = e.Inject("Kafka outage")
	outage := bus.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	at(0.62)
	e.Eventually(recoverDeadline, func() bool { return outage.Hits() >= 3 }, "the Kafka sink is refused (%v so far)", lazy(func() any { return outage.Hits() }))
	outage.Remove()
	e.Lift(f)
	note(fmt.Sprintf("Kafka outage ends (%d produce requests refused)", outage.Hits()))
	e.AwaitRecovery(f, recoverDeadline)
	at(1)
	stopSampling()
	<-sampled

	e.WaitDelivered(deliverDeadline)
	last := current.Load()
	last.StopOK()
	r := e.Check()
	mu.Lock()
	r.Note("samples", samples)
	mu.Unlock()
	r.Log(e)
	t.Log("soak samples:\n" + soakTable(samples, e.sinks))
	first, lastThird := thirds(samples, d)
	if len(first) == 0 || len(lastThird) == 0 {
		t.Fatalf("too few RSS samples: %d in the first third, %d in the last", len(first), len(lastThird))
	}
	a, b := medianRSS(first), medianRSS(lastThird)
	limit := int64(rssGrowthFactor*float64(a)) + rssGrowthSlack
	r.Note("rss_first_third_median", a)
	r.Note("rss_last_third_median", b)
	t.Logf("RSS median: first third %.1f MiB (%s), last third %.1f MiB (%s); limit %.1f MiB (%.1f x first + %d MiB)",
		mib(a), first[0].Proc, mib(b), lastThird[0].Proc, mib(limit), rssGrowthFactor, rssGrowthSlack>>20)
	r.Assert(e, Expect{})
	if b > limit {
		t.Errorf("RSS grew from a median of %.1f MiB in the first third to %.1f MiB in the last: more than %.1f x + %d MiB",
			mib(a), mib(b), rssGrowthFactor, rssGrowthSlack>>20)
	}
}

// thirds returns the samples of the first and of the last third of a run
// of length d.
func thirds(samples []soakSample, d time.Duration) (first, last []soakSample) {
	for _, s := range samples {
		switch {
		case s.RSS == 0:
		case s.At < d/3:
			first = append(first, s)
		case s.At >= 2*d/3:
			last = append(last, s)
		}
	}
	return first, last
}

// medianRSS is the median RSS of samples.
func medianRSS(samples []soakSample) int64 {
	v := make([]int64, len(samples))
	for i, s := range samples {
		v[i] = s.RSS
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// soakTable formats the samples.
func soakTable(samples []soakSample, sinks []Sink) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %-6s %8s %9s", "t", "proc", "RSS MiB", "committed")
	for _, s := range sinks {
		fmt.Fprintf(&b, " %10s %7s", s.Name(), "ev/s")
	}
	b.WriteString("  event\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%8v %-6s %8.1f %9d", s.At.Round(time.Second), s.Proc, mib(s.RSS), s.Committed)
		for _, k := range sinks {
			fmt.Fprintf(&b, " %10d %7d", s.Held[k.Name()], s.Rate[k.Name()])
		}
		fmt.Fprintf(&b, "  %s\n", s.Event)
	}
	return b.String()
}
