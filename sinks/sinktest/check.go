package sinktest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/martencdc/cdc"
)

// expect is what a target should hold after some writes.
type expect struct {
	// written are all the events written so far (and those of the
	// batch in progress): a record of any other event is an error.
	written []*cdc.Event
	// present must be held: exactly once by an idempotent sink, at least
	// once by the others.
	present []*cdc.Event
	// absent must not be held.
	absent []*cdc.Event
	// The other events written may be held or not (events after a
	// rejected one).
}

// maxProblems is the most problems one check reports one by one.
const maxProblems = 20

// check reads the target and fails the test (without stopping it) unless
// it holds what want says, with each stream's events in version order in
// every unit (first occurrences). when says at which point of the subtest.
func (s *suite) check(t *testing.T, when string, tg Target, want expect) {
	t.Helper()
	units := tg.Read(t)
	slices.SortStableFunc(units, func(a, b Unit) int { return strings.Compare(a.Name, b.Name) })
	problems := audit(units, want, s.h.Redelivery)
	for i, p := range problems {
		if i == maxProblems {
			t.Errorf("%s: ... and %d more problems", when, len(problems)-maxProblems)
			break
		}
		t.Errorf("%s: %s", when, p)
	}
	if len(problems) > 0 {
		t.Logf("the target holds:\n%s", describe(units))
	}
}

// key identifies an event by stream and version, for records without an
// event id.
type key struct {
	stream  string
	version int64
}

// audit returns the differences between what units hold and want, and the
// breaches of per-stream order, one line each.
func audit(units []Unit, want expect, redelivery Redelivery) []string {
	var problems []string
	byID := map[string]int{}
	byKey := map[key]int{}
	for i, e := range want.written {
		byID[e.ID] = i
		byKey[key{e.StreamID, e.Version}] = i
	}
	held := make([]int, len(want.written))
	for _, u := range units {
		seen := map[int]bool{}
		last := map[string]int64{}
		for pos, r := range u.Records {
			i, ok := byKey[key{r.StreamID, r.Version}]
			if r.ID != "" {
				i, ok = byID[r.ID]
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("%s holds %v at %d, which is no event written", u.Name, r, pos))
				continue
			}
			if e := want.written[i]; e.StreamID != r.StreamID || e.Version != r.Version {
				problems = append(problems, fmt.Sprintf("%s holds %v at %d, but event %s is of stream %s version %d", u.Name, r, pos, e.ID, e.StreamID, e.Version))
				continue
			}
			held[i]++
			if seen[i] {
				continue
			}
			seen[i] = true
			if v, ok := last[r.StreamID]; ok && r.Version <= v {
				problems = append(problems, fmt.Sprintf("%s holds %v at %d after version %d of the stream: out of order", u.Name, r, pos, v))
			}
			last[r.StreamID] = max(last[r.StreamID], r.Version)
		}
	}
	for _, e := range want.present {
		switch i := byID[e.ID]; {
		case held[i] == 0:
			problems = append(problems, fmt.Sprintf("%v is missing", RecordOf(e)))
		case held[i] > 1 && redelivery == Idempotent:
			problems = append(problems, fmt.Sprintf("%v is held %d times; the sink is idempotent: want once", RecordOf(e), held[i]))
		}
	}
	for _, e := range want.absent {
		if n := held[byID[e.ID]]; n > 0 {
			problems = append(problems, fmt.Sprintf("%v is held %d times, want none", RecordOf(e), n))
		}
	}
	return problems
}

// describe lists the units' records, for a failure message.
func describe(units []Unit) string {
	if len(units) == 0 {
		return "  nothing"
	}
	var b strings.Builder
	for _, u := range units {
		fmt.Fprintf(&b, "  %s: %d records\n", u.Name, len(u.Records))
		for _, r := range u.Records {
			fmt.Fprintf(&b, "    %v\n", r)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
