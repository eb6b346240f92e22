package stdout

import (
	"bytes"
	"sync"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// TestConformance runs the sink conformance suite over a writer that keeps
// what it is given. The stdout sink delivers at least once and refuses no
// event, so PartialFailure is skipped. Cancel/During is skipped: see
// blockedWriteLimitation.
func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Redelivery: sinktest.AtLeastOnce,
		New: func(t *testing.T) (cdc.Sink, sinktest.Target) {
			w := &output{}
			return New(w), sinktest.Target{Read: w.read, Block: w.block,
				Reopen: func(*testing.T) cdc.Sink { return New(w) }}
		},
		Skip: map[string]string{"Cancel/During": blockedWriteLimitation},
	})
}

// blockedWriteLimitation is why the stdout sink does not pass
// Cancel/During.
const blockedWriteLimitation = "limitation: Write hands the batch to an io.Writer, which takes no context; " +
	"a Write blocked in the writer (standard output piped to a reader that stopped reading) returns only when the writer does, " +
	"whatever its context; the pipeline's stall detection (5 s) detaches such a sink"

// output is the standard output of the tests: an io.Writer keeping what it
// is given, which can be made to hang.
type output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	gate chan struct{} // non-nil while blocked: closed by unblock
	hung chan struct{} // closed when a write waits at the gate
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	gate, hung := o.gate, o.hung
	if gate != nil {
		select {
		case <-hung:
		default:
			close(hung)
		}
	}
	o.mu.Unlock()
	if gate != nil {
		<-gate
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// read returns the lines written so far, the one ordering unit.
func (o *output) read(t testing.TB) []sinktest.Unit {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	records, err := sinktest.ParseLines(o.buf.Bytes())
	if err != nil {
		t.Fatalf("stdout: %v", err)
	}
	return []sinktest.Unit{{Name: "stdout", Records: records}}
}

// block makes writes wait until unblock is called: a pipe whose reader
// stopped reading.
func (o *output) block(testing.TB) (<-chan struct{}, func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	gate, hung := make(chan struct{}), make(chan struct{})
	o.gate, o.hung = gate, hung
	var once sync.Once
	return hung, func() {
		once.Do(func() {
			o.mu.Lock()
			o.gate = nil
			o.mu.Unlock()
			close(gate)
		})
	}
}
