package pipeline

import (
	"time"

	"github.com/martencdc/cdc"
)

// SinkStatus is a snapshot of one sink's progress, for status output and
// metrics.
type SinkStatus struct {
	Name  string
	Flush cdc.LSN // saved flush LSN
	// Reached is the LSN before which every committed transaction is
	// durable in the sink (or filtered out for it): at least Flush, and
	// the server's WAL end once the sink has saved all the stream handed
	// it (see Config.Reached).
	Reached   cdc.LSN
	Saved     time.Time // commit time of the saved checkpoint's transaction; zero if unknown
	Delivered int64     // events written since the checkpoint row was created
	Pending   int64     // events received and not yet written
	Failing   bool      // the last write failed; retrying
	Detached  bool      // not receiving; catches up when it recovers
	Stopped   bool      // stopped on a rejected event (on_error stop)
	// State sums the above up; Since is when the sink entered it (zero for
	// SinkOK) and Error the failure behind it, or why it stopped.
	State cdc.SinkState
	Since time.Time
	Error string
}

// Status returns a snapshot of every sink. Safe for concurrent use.
func (p *Pipeline) Status() []SinkStatus {
	out := make([]SinkStatus, len(p.runners))
	for i, r := range p.runners {
		out[i] = r.snapshot()
	}
	return out
}

// Received returns how many events the pipeline decoded, and how many rows it
// skipped because they were not events. Safe for concurrent use.
func (p *Pipeline) Received() (events, skipped int64) {
	return p.received.Load(), p.skipped.Load()
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
