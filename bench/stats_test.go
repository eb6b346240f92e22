package bench

import (
	"fmt"
	"testing"
	"time"
)

func TestLatency(t *testing.T) {
	commits, arrived := newArrivals(), newArrivals()
	t0 := time.Unix(1000, 0)
	for i := range 100 {
		id := fmt.Sprint(i)
		commits.mark(id, t0)
		if i < 98 {
			arrived.mark(id, t0.Add(time.Duration(i+1)*time.Millisecond))
			arrived.mark(id, t0.Add(time.Hour)) // a duplicate arrives later: ignored
		}
	}
	l := latency(commits, arrived)
	want := Latency{Events: 98, Missing: 2, P50: 49 * time.Millisecond, P99: 97 * time.Millisecond, Max: 98 * time.Millisecond}
	if l != want {
		t.Fatalf("latency = %+v, want %+v", l, want)
	}
	if arrived.hasAll(commits) {
		t.Fatal("hasAll with two missing")
	}
}
